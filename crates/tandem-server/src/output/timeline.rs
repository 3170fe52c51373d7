//! Which pipeline served each stretch of a channel's output, per rendition,
//! over the last hour: what the status page draws and `tandem status`
//! prints.
//!
//! The driver notes each switch, gap, end and resumption as it records the
//! event; [`Timeline::view`] turns the marks into stretches. No IO, time
//! passed in.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tandem_core::InputState;

use super::EventRecord;
use crate::util::rfc3339_millis;

/// How far back the timeline reaches.
pub const SPAN: Duration = Duration::from_secs(3600);
/// Marks kept per rendition at most (a flapping input cannot grow it).
const MARKS_KEPT: usize = 4096;

/// What the output of one rendition was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serving {
    /// Nothing known yet (before the first switch).
    Unknown,
    Pipeline(usize),
    /// Both pipelines ended; the output ended (after serving this one).
    Ended(Option<usize>),
}

#[derive(Debug, Clone, PartialEq)]
enum What {
    Switch {
        to: usize,
        reason: String,
        discontinuity: bool,
    },
    Gap,
    Ended,
    Resumed,
    /// An operator started the output afresh.
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
struct Mark {
    at: SystemTime,
    what: What,
}

#[derive(Debug)]
struct Rendition {
    /// What was served when the oldest kept mark happened.
    before: Serving,
    marks: VecDeque<Mark>,
}

impl Rendition {
    fn serving_after(s: Serving, m: &Mark) -> Serving {
        match (&m.what, s) {
            (What::Switch { to, .. }, _) => Serving::Pipeline(*to),
            (What::Ended, Serving::Pipeline(p)) => Serving::Ended(Some(p)),
            (What::Ended, _) => Serving::Ended(None),
            (What::Resumed, Serving::Ended(Some(p))) => Serving::Pipeline(p),
            (What::Resumed, Serving::Ended(None)) => Serving::Unknown,
            (What::Gap | What::Resumed | What::Reset, s) => s,
        }
    }

    /// Drops marks older than `cutoff` (and beyond the cap), folding them
    /// into `before`.
    fn prune(&mut self, cutoff: SystemTime) {
        while let Some(m) = self.marks.front() {
            if m.at >= cutoff && self.marks.len() <= MARKS_KEPT {
                break;
            }
            self.before = Self::serving_after(self.before, m);
            self.marks.pop_front();
        }
    }
}

/// One stretch of output from one pipeline (`null`: unknown or ended).
/// `start` and `end` are seconds from the timeline's `from`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stretch {
    pub from: String,
    pub to: String,
    pub start: f64,
    pub end: f64,
    pub pipeline: Option<usize>,
    /// The output had ended (both pipelines' playlists ended).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
}

/// A switch on the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SwitchMark {
    pub time: String,
    /// Seconds from the timeline's `from`.
    pub at: f64,
    pub to: usize,
    pub reason: String,
    pub discontinuity: bool,
}

/// A gap on the timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GapMark {
    pub time: String,
    /// Seconds from the timeline's `from`.
    pub at: f64,
}

/// One rendition's last hour.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RenditionView {
    pub rendition: String,
    pub stretches: Vec<Stretch>,
    pub switches: Vec<SwitchMark>,
    /// Positions neither pipeline delivered whole.
    pub gaps: Vec<GapMark>,
    /// Where an operator started the output afresh.
    pub resets: Vec<GapMark>,
}

/// A channel's timeline as the status API serves it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineView {
    pub from: String,
    pub to: String,
    pub renditions: Vec<RenditionView>,
}

/// The marks of every rendition of one channel.
#[derive(Debug, Default)]
pub struct Timeline {
    renditions: BTreeMap<String, Rendition>,
    /// Per rendition, both inputs' states as the merge engine last saw them.
    inputs: BTreeMap<String, [InputState; 2]>,
}

impl Timeline {
    /// Notes an event as the API records it. Kinds that do not change the
    /// picture are ignored.
    pub fn note(&mut self, at: SystemTime, e: &EventRecord) {
        if let Some(inputs) = e.inputs {
            self.inputs.insert(e.rendition.clone(), inputs);
        }
        let what = match e.kind {
            "switch" => {
                let Some(to) = e.to.as_deref().and_then(|t| t.parse::<usize>().ok()) else {
                    return;
                };
                What::Switch {
                    to,
                    reason: e.reason.unwrap_or("").to_owned(),
                    discontinuity: e.discontinuity.unwrap_or(false),
                }
            }
            "segment_missing" => What::Gap,
            "ended" => What::Ended,
            "output_resumed" => What::Resumed,
            "output_reset" => What::Reset,
            _ => return,
        };
        let r = self
            .renditions
            .entry(e.rendition.clone())
            .or_insert_with(|| Rendition {
                before: Serving::Unknown,
                marks: VecDeque::new(),
            });
        r.marks.push_back(Mark { at, what });
        r.prune(at.checked_sub(SPAN).unwrap_or(SystemTime::UNIX_EPOCH));
    }

    /// Each input's state over all renditions, as the merge engine judges
    /// it (lost if any rendition lost it, receiving if any receives it);
    /// `None` before the engine has judged.
    pub fn inputs(&self) -> Option<[InputState; 2]> {
        let mut it = self.inputs.values();
        let first = *it.next()?;
        Some(it.fold(first, |acc, s| [0, 1].map(|i| worst(acc[i], s[i]))))
    }

    /// The last [`SPAN`] before `now`.
    pub fn view(&mut self, now: SystemTime) -> TimelineView {
        let start = now.checked_sub(SPAN).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut renditions = Vec::new();
        for (name, r) in &mut self.renditions {
            r.prune(start);
            let mut stretches = Vec::new();
            let mut switches = Vec::new();
            let mut gaps = Vec::new();
            let mut resets = Vec::new();
            let mut serving = r.before;
            let mut since = start;
            for m in &r.marks {
                let next = Rendition::serving_after(serving, m);
                let at = m.at.clamp(start, now);
                match &m.what {
                    What::Switch {
                        to,
                        reason,
                        discontinuity,
                    } => switches.push(SwitchMark {
                        time: rfc3339_millis(m.at),
                        at: secs(start, at),
                        to: *to,
                        reason: reason.clone(),
                        discontinuity: *discontinuity,
                    }),
                    What::Gap => gaps.push(GapMark {
                        time: rfc3339_millis(m.at),
                        at: secs(start, at),
                    }),
                    What::Reset => resets.push(GapMark {
                        time: rfc3339_millis(m.at),
                        at: secs(start, at),
                    }),
                    What::Ended | What::Resumed => {}
                }
                if next != serving {
                    push_stretch(&mut stretches, start, since, at, serving);
                    serving = next;
                    since = at;
                }
            }
            push_stretch(&mut stretches, start, since, now, serving);
            renditions.push(RenditionView {
                rendition: name.clone(),
                stretches,
                switches,
                gaps,
                resets,
            });
        }
        TimelineView {
            from: rfc3339_millis(start),
            to: rfc3339_millis(now),
            renditions,
        }
    }
}

fn worst(a: InputState, b: InputState) -> InputState {
    use InputState::{Idle, Lost, Receiving};
    match (a, b) {
        (Lost, _) | (_, Lost) => Lost,
        (Receiving, _) | (_, Receiving) => Receiving,
        (Idle, Idle) => Idle,
    }
}

fn secs(start: SystemTime, t: SystemTime) -> f64 {
    t.duration_since(start).unwrap_or_default().as_secs_f64()
}

fn push_stretch(
    out: &mut Vec<Stretch>,
    start: SystemTime,
    from: SystemTime,
    to: SystemTime,
    s: Serving,
) {
    if to <= from {
        return;
    }
    out.push(Stretch {
        from: rfc3339_millis(from),
        to: rfc3339_millis(to),
        start: secs(start, from),
        end: secs(start, to),
        pipeline: match s {
            Serving::Pipeline(p) => Some(p),
            Serving::Unknown | Serving::Ended(_) => None,
        },
        ended: matches!(s, Serving::Ended(_)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn ev(kind: &'static str, to: Option<&str>, reason: Option<&'static str>) -> EventRecord {
        EventRecord {
            time: String::new(),
            rendition: "a.m3u8".into(),
            kind,
            pipeline: None,
            from: None,
            to: to.map(str::to_owned),
            reason,
            discontinuity: Some(false),
            inputs: None,
            media_sequence: None,
            uri: None,
            switch_delay_ms: None,
            smooth: None,
        }
    }

    fn pipelines(v: &TimelineView) -> Vec<(Option<usize>, bool)> {
        v.renditions[0]
            .stretches
            .iter()
            .map(|s| (s.pipeline, s.ended))
            .collect()
    }

    #[test]
    fn switches_cut_the_hour_into_stretches() {
        let mut tl = Timeline::default();
        tl.note(t(100), &ev("switch", Some("0"), Some("started")));
        tl.note(t(200), &ev("input_lost", None, None));
        tl.note(t(203), &ev("switch", Some("1"), Some("stalled")));
        tl.note(t(250), &ev("segment_missing", None, None));
        tl.note(t(300), &ev("ended", None, None));
        let v = tl.view(t(400));
        assert_eq!(
            pipelines(&v),
            [
                (None, false),
                (Some(0), false),
                (Some(1), false),
                (None, true)
            ]
        );
        let r = &v.renditions[0];
        assert_eq!(r.stretches[1].from, rfc3339_millis(t(100)));
        assert_eq!(r.stretches[1].to, rfc3339_millis(t(203)));
        assert_eq!(r.stretches[3].to, rfc3339_millis(t(400)));
        assert_eq!(r.switches.len(), 2);
        assert_eq!(r.switches[1].reason, "stalled");
        assert_eq!(r.gaps[0].time, rfc3339_millis(t(250)));
        assert_eq!(r.gaps[0].at, 3600.0 - 150.0);
        assert_eq!((r.stretches[1].start, r.stretches[1].end), (3300.0, 3403.0));
    }

    #[test]
    fn what_happened_before_the_hour_sets_its_first_stretch() {
        let mut tl = Timeline::default();
        tl.note(t(0), &ev("switch", Some("1"), Some("started")));
        tl.note(t(10), &ev("segment_missing", None, None));
        let v = tl.view(t(10_000));
        assert_eq!(pipelines(&v), [(Some(1), false)]);
        assert_eq!(v.renditions[0].stretches[0].from, v.from);
        assert!(v.renditions[0].switches.is_empty());
        assert!(v.renditions[0].gaps.is_empty());
    }

    #[test]
    fn a_resumed_output_serves_again() {
        let mut tl = Timeline::default();
        tl.note(t(0), &ev("switch", Some("0"), Some("started")));
        tl.note(t(50), &ev("ended", None, None));
        tl.note(t(60), &ev("output_resumed", None, None));
        tl.note(t(80), &ev("switch", Some("1"), Some("stalled")));
        tl.note(t(90), &ev("output_reset", None, None));
        let v = tl.view(t(100));
        assert_eq!(v.renditions[0].resets[0].time, rfc3339_millis(t(90)));
        assert_eq!(
            pipelines(&v),
            [
                (None, false),
                (Some(0), false),
                (None, true),
                (Some(0), false),
                (Some(1), false)
            ]
        );
    }

    #[test]
    fn an_input_lost_in_any_rendition_is_lost() {
        use InputState::{Idle, Lost, Receiving};
        let mut tl = Timeline::default();
        assert_eq!(tl.inputs(), None);
        let mut a = ev("input_state", None, None);
        a.inputs = Some([Receiving, Receiving]);
        let mut b = a.clone();
        b.rendition = "b.m3u8".into();
        b.inputs = Some([Receiving, Lost]);
        tl.note(t(0), &a);
        tl.note(t(0), &b);
        assert_eq!(tl.inputs(), Some([Receiving, Lost]));
        a.inputs = Some([Idle, Receiving]);
        b.inputs = Some([Idle, Receiving]);
        tl.note(t(1), &a);
        tl.note(t(1), &b);
        assert_eq!(tl.inputs(), Some([Idle, Receiving]));
    }

    #[test]
    fn marks_are_bounded() {
        let mut tl = Timeline::default();
        for i in 0..(MARKS_KEPT as u64 * 2) {
            let to = (i % 2).to_string();
            tl.note(t(i / 10), &ev("switch", Some(&to), Some("stalled")));
        }
        let r = tl.renditions.get("a.m3u8").unwrap();
        assert_eq!(r.marks.len(), MARKS_KEPT);
    }
}
