//! The redundancy engine: two encoders push the same tracks to one
//! publishing point; one de-duplicated timeline per track comes out.
//!
//! Sans-IO: notices come in with `now` (monotonic; calls must not go back
//! in time), events come out, and [`SmoothMerge::next_deadline`] says when
//! to call [`SmoothMerge::on_tick`]. The driver owns clocks, timers, storage
//! and the HTTP side.
//!
//! Alignment. Redundant Smooth encoders are time-locked: the two pipelines
//! stamp the same moment with the same `tfxd` time, as IIS Media Services
//! and Unified Origin expect when two encoders post to one publishing
//! point. So a fragment's identity is its track and `tfxd` time, and the
//! two timelines need no mapping.
//!
//! Decisions. The first copy of a time stored whole goes out; the other is
//! a [`Event::Duplicate`] (its storage can go). A time only one pipeline
//! delivered is served from it and reported [`Event::Filled`]. The output
//! of a track only appends: a fragment after a hole waits until every
//! pipeline that can still deliver the track has moved past the hole, or
//! for the loss threshold; then the hole is an [`Event::Gap`] (a jump in
//! `t` in the manifest). An encoder that reconnects and continues is simply
//! accepted, and what it resends from its cache is duplicates. One whose
//! times jump back behind the output (it restarted) is reported
//! [`Event::Restarted`] and merged again once its times pass the output's
//! end. A new `Events({id})` starts a new presentation: a new, empty
//! timeline, as IIS does; streams of the old event are refused.
//!
//! Input state. A pipeline is receiving from its first push; it is lost
//! when nothing arrived for the loss threshold (a multiple of the longest
//! fragment duration). A lost pipeline is not waited for.
//!
//! Window. Each track keeps the fragments that end within the DVR window of
//! its output's end; older ones are reported [`Event::FragmentRemoved`], so
//! memory is bounded by the window (plus at most [`MAX_PENDING`] waiting
//! fragments a track).
//!
//! Invariants ([`SmoothMerge::check_invariants`]): per track, output times
//! are strictly increasing and never overlap; the output's end is where the
//! last fragment ends; only delivered copies are served; the window holds.
//! Across calls (checked by the property test): the output only appends at
//! its end and loses fragments at its front.
//!
//! [`MAX_PENDING`]: timeline::MAX_PENDING

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tandem_core::{InputState, Pipeline};

use crate::error::SmoothError;
use crate::manifest::{self, ManifestSettings};
use crate::notice::{EndOfStream, FragmentNotice, StreamStart};
use crate::track::{Track, TrackKey, TrackKind};

mod saved;
mod timeline;

pub use saved::{RestoreError, SavedFragment, SavedSmooth, SavedStream, SavedTimeline};
use timeline::Timeline;
pub use timeline::{MAX_PENDING, OutFragment};

/// How a publishing point merges. Defaults follow the channel contract.
#[derive(Debug, Clone, PartialEq)]
pub struct SmoothConfig {
    /// A pipeline that delivered nothing for this many fragment durations
    /// is lost, and a hole in the output waits at most this long for it.
    /// 1.5, as for HLS: one fragment may be late by half its duration
    /// (upload jitter, MediaLive's `sendDelayMs`) without a gap, and a
    /// missing one is decided before a player's buffer (about three
    /// fragments) drains.
    pub loss_after_fragments: f64,
    /// The fragment duration assumed before any fragment arrived. 2 s:
    /// the usual Smooth fragment (and ffmpeg's with a 2 s GOP).
    pub default_fragment_duration: Duration,
    /// How far back clients may seek, and how long a fragment stays in the
    /// output. 30 min: the usual "start over" reach; at 2 s fragments that
    /// is 900 fragments a track in memory.
    pub dvr_window: Duration,
    /// What the client manifest says beyond the timeline.
    pub manifest: ManifestSettings,
}

impl Default for SmoothConfig {
    fn default() -> Self {
        Self {
            loss_after_fragments: 1.5,
            default_fragment_duration: Duration::from_secs(2),
            dvr_window: Duration::from_secs(30 * 60),
            manifest: ManifestSettings::default(),
        }
    }
}

/// Why a fragment stays out of the output (its storage can go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Its time is behind the output: a hole there was already declared a
    /// gap, or it precedes the output's start or window.
    Late,
    /// Its pipeline restarted behind the output; it merges again once its
    /// times pass the output's end.
    BehindOutput,
    /// It overlaps a fragment of another time (the encoders are not
    /// time-locked).
    Misaligned,
    /// It lasts 0, or its end is past the largest time.
    BadDuration,
    /// Its push was never announced with [`SmoothMerge::on_stream_started`].
    UnknownStream,
    /// Its push did not declare that track.
    UnknownTrack,
    /// Its push belongs to an earlier presentation (`Events({id})`).
    OldPresentation,
    /// The output ended (both encoders sent end-of-stream, or the channel
    /// stopped).
    Ended,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Late => "late",
            Self::BehindOutput => "behind_output",
            Self::Misaligned => "misaligned",
            Self::BadDuration => "bad_duration",
            Self::UnknownStream => "unknown_stream",
            Self::UnknownTrack => "unknown_track",
            Self::OldPresentation => "old_presentation",
            Self::Ended => "ended",
        }
    }
}

/// What happened, in order. The driver logs, counts and stores them.
/// Times are `tfxd` times in the track's timescale.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    InputStateChanged {
        at: Instant,
        pipeline: Pipeline,
        from: InputState,
        to: InputState,
        inputs: [InputState; 2],
    },
    /// A fragment entered the output, served from `from`'s copy.
    FragmentAdded {
        at: Instant,
        track: TrackKey,
        time: u64,
        duration: u64,
        from: Pipeline,
        storage_key: String,
    },
    /// A second copy of a time: `storage_key` is not served, `kept` is.
    Duplicate {
        at: Instant,
        track: TrackKey,
        time: u64,
        pipeline: Pipeline,
        storage_key: String,
        kept: String,
    },
    /// An output fragment only `from` delivered: the other pipeline moved
    /// past it or could not deliver.
    Filled {
        at: Instant,
        track: TrackKey,
        time: u64,
        from: Pipeline,
    },
    /// Neither pipeline delivered `from..to`; the output jumps over it.
    Gap {
        at: Instant,
        track: TrackKey,
        from: u64,
        to: u64,
    },
    /// A pipeline's times went back from `last` to `time`.
    Restarted {
        at: Instant,
        pipeline: Pipeline,
        track: TrackKey,
        time: u64,
        last: u64,
    },
    /// A fragment that will not be served.
    Rejected {
        at: Instant,
        pipeline: Pipeline,
        track: TrackKey,
        time: u64,
        storage_key: String,
        reason: RejectReason,
    },
    /// A fragment left the output (DVR window, or a new presentation);
    /// delete it after the grace period for clients still reading.
    FragmentRemoved {
        at: Instant,
        track: TrackKey,
        time: u64,
        storage_key: String,
    },
    /// A new `Events({id})` started presentation number `presentation`.
    NewPresentation {
        at: Instant,
        presentation: u32,
        event: Option<String>,
        previous: Option<String>,
    },
    /// A push ended on purpose.
    StreamEnded {
        at: Instant,
        pipeline: Pipeline,
        stream: String,
        how: EndOfStream,
    },
    /// The presentation is over: the manifest says `IsLive="FALSE"`.
    Ended { at: Instant },
}

/// What the driver reports per publishing point (events API, `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    /// Fragments stored whole, per pipeline.
    pub received: [u64; 2],
    /// Fragments that went out, per serving pipeline.
    pub served: [u64; 2],
    pub duplicates: u64,
    pub fills: u64,
    pub gaps: u64,
    pub restarts: u64,
    pub rejected: u64,
}

/// Where a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Open,
    /// The connection broke; the encoder may reconnect.
    Dropped,
    Ended(EndOfStream),
}

#[derive(Debug, Clone)]
struct Stream {
    presentation: u32,
    event: Option<String>,
    tracks: Vec<TrackKey>,
    status: StreamStatus,
}

#[derive(Debug, Clone)]
struct Input {
    state: InputState,
    last_advance: Option<Instant>,
    streams: BTreeMap<String, Stream>,
}

impl Input {
    fn new() -> Self {
        Self {
            state: InputState::Idle,
            last_advance: None,
            streams: BTreeMap::new(),
        }
    }
}

/// Pushes a pipeline may keep on record; past this, finished ones go.
const MAX_STREAMS: usize = 64;
/// Replaced event ids remembered, to refuse their streams.
const MAX_PREVIOUS_EVENTS: usize = 16;

/// One publishing point's two pipelines merged into one output.
#[derive(Debug, Clone)]
pub struct SmoothMerge {
    cfg: SmoothConfig,
    inputs: [Input; 2],
    timelines: BTreeMap<TrackKey, Timeline>,
    presentation: u32,
    event: Option<String>,
    previous_events: VecDeque<String>,
    ended: bool,
    /// The longest audio or video fragment of this presentation.
    fragment_duration: Option<Duration>,
    counters: Counters,
    /// The last instant every due decision was applied at; a deadline at
    /// or before it is not reported again.
    stepped_at: Option<Instant>,
}

impl SmoothMerge {
    pub fn new(cfg: SmoothConfig) -> Self {
        Self {
            cfg,
            inputs: [Input::new(), Input::new()],
            timelines: BTreeMap::new(),
            presentation: 0,
            event: None,
            previous_events: VecDeque::new(),
            ended: false,
            fragment_duration: None,
            counters: Counters::default(),
            stepped_at: None,
        }
    }

    pub fn config(&self) -> &SmoothConfig {
        &self.cfg
    }

    pub fn input_states(&self) -> [InputState; 2] {
        [self.inputs[0].state, self.inputs[1].state]
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The presentation number (0 for the first) and its `Events({id})`.
    pub fn presentation(&self) -> (u32, Option<&str>) {
        (self.presentation, self.event.as_deref())
    }

    /// Both encoders ended (or the channel stopped): the output is final.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The tracks of the current presentation, by name then bitrate.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.timelines.values().map(|t| &t.track)
    }

    /// A track's output, oldest first.
    pub fn timeline(&self, key: &TrackKey) -> impl Iterator<Item = &OutFragment> {
        self.timelines
            .get(key)
            .into_iter()
            .flat_map(|t| t.out.values())
    }

    /// The output fragment a client asks for with
    /// `QualityLevels({bitrate})/Fragments({name}={time})`, or `None`
    /// (answer 404): not (or no longer, or not yet) in the output.
    pub fn fragment(&self, bitrate: u32, name: &str, time: u64) -> Option<&OutFragment> {
        self.timelines
            .get(&TrackKey::new(name, bitrate))?
            .out
            .get(&time)
    }

    /// The client manifest to serve right now, or `None` while no fragment
    /// went out (answer 404).
    pub fn client_manifest(&self) -> Option<String> {
        manifest::write(
            self.timelines.values().map(|t| (&t.track, &t.out)),
            !self.ended,
            self.cfg.dvr_window,
            &self.cfg.manifest,
        )
    }

    fn threshold(&self) -> Duration {
        let d = self
            .fragment_duration
            .unwrap_or(self.cfg.default_fragment_duration);
        d.mul_f64(self.cfg.loss_after_fragments.max(0.0))
    }

    fn current<'a>(&self, inp: &'a Input) -> impl Iterator<Item = &'a Stream> {
        let n = self.presentation;
        inp.streams.values().filter(move |s| s.presentation == n)
    }

    fn took_part(&self, p: Pipeline) -> bool {
        self.current(p.of(&self.inputs)).next().is_some()
    }

    fn pipeline_ended(&self, p: Pipeline) -> bool {
        self.took_part(p)
            && self
                .current(p.of(&self.inputs))
                .all(|s| matches!(s.status, StreamStatus::Ended(_)))
    }

    /// Whether `p` can still deliver fragments of `key`: not lost, and a
    /// push of this presentation declaring the track has not ended.
    fn may_deliver(&self, p: Pipeline, key: &TrackKey) -> bool {
        let inp = p.of(&self.inputs);
        inp.state != InputState::Lost
            && self
                .current(inp)
                .any(|s| !matches!(s.status, StreamStatus::Ended(_)) && s.tracks.contains(key))
    }

    fn set_state(&mut self, now: Instant, p: Pipeline, to: InputState, ev: &mut Vec<Event>) {
        let inp = &mut self.inputs[p.index()];
        let from = inp.state;
        if from == to {
            return;
        }
        inp.state = to;
        ev.push(Event::InputStateChanged {
            at: now,
            pipeline: p,
            from,
            to,
            inputs: self.input_states(),
        });
    }

    fn heard_from(&mut self, now: Instant, p: Pipeline, ev: &mut Vec<Event>) {
        self.inputs[p.index()].last_advance = Some(now);
        self.set_state(now, p, InputState::Receiving, ev);
    }

    /// A pipeline opened a push. Refused (answer 4xx, publish nothing) when
    /// a track is malformed or contradicts the publishing point's other
    /// tracks, or when the push names an event that a newer one replaced.
    /// A new `Events({id})`, or any push after the output ended, starts a
    /// new presentation.
    pub fn on_stream_started(
        &mut self,
        now: Instant,
        start: &StreamStart,
    ) -> Result<Vec<Event>, SmoothError> {
        if start.tracks.is_empty() {
            return Err(SmoothError::NoTracks {
                pipeline: start.pipeline,
                stream: start.stream.clone(),
            });
        }
        for t in &start.tracks {
            t.validate()?;
        }
        let renew = match (&start.event, &self.event) {
            (Some(e), _) if self.previous_events.contains(e) => {
                return Err(SmoothError::StaleEvent {
                    pipeline: start.pipeline,
                    stream: start.stream.clone(),
                    event: e.clone(),
                });
            }
            (Some(e), Some(cur)) if e != cur => true,
            // The first event id of a publishing point that has shown
            // nothing yet is adopted, not a new presentation.
            (Some(_), None) => self.has_content(),
            _ => false,
        } || self.ended;
        let kept: Vec<&Track> = if renew {
            Vec::new()
        } else {
            self.timelines.values().map(|t| &t.track).collect()
        };
        for (k, t) in start.tracks.iter().enumerate() {
            let others = kept
                .iter()
                .copied()
                .chain(start.tracks.iter().take(k))
                .filter(|o| o.name == t.name);
            for o in others {
                if o.timescale != t.timescale {
                    return Err(SmoothError::TimescaleMismatch {
                        track: t.key().to_string(),
                        name: t.name.clone(),
                        expected: o.timescale,
                        found: t.timescale,
                    });
                }
                if o.kind() != t.kind() {
                    return Err(SmoothError::KindMismatch {
                        track: t.key().to_string(),
                        name: t.name.clone(),
                        expected: o.kind().as_str(),
                        found: t.kind().as_str(),
                    });
                }
            }
        }
        let inp = start.pipeline.of(&self.inputs);
        let keep = |s: &Stream| !renew && s.presentation == self.presentation;
        let live = inp
            .streams
            .iter()
            .filter(|(name, s)| **name != start.stream && keep(s) && s.status == StreamStatus::Open)
            .count();
        if live >= MAX_STREAMS {
            return Err(SmoothError::TooManyStreams {
                pipeline: start.pipeline,
                stream: start.stream.clone(),
                max: MAX_STREAMS,
            });
        }
        let mut ev = Vec::new();
        if renew {
            self.new_presentation(now, start.event.clone(), &mut ev);
        } else if self.event.is_none() {
            self.event = start.event.clone();
        }
        for t in &start.tracks {
            match self.timelines.get_mut(&t.key()) {
                // A reconnect repeats the header; the latest description wins.
                Some(tl) => tl.track = t.clone(),
                None => {
                    self.timelines.insert(t.key(), Timeline::new(t.clone()));
                }
            }
        }
        let inp = &mut self.inputs[start.pipeline.index()];
        if inp.streams.len() >= MAX_STREAMS {
            // Finished and earlier pushes go first; the check above left
            // room among the open ones.
            let n = self.presentation;
            inp.streams
                .retain(|_, s| s.presentation == n && s.status == StreamStatus::Open);
        }
        inp.streams.insert(
            start.stream.clone(),
            Stream {
                presentation: self.presentation,
                event: start.event.clone(),
                tracks: start.tracks.iter().map(Track::key).collect(),
                status: StreamStatus::Open,
            },
        );
        self.heard_from(now, start.pipeline, &mut ev);
        self.step(now, &mut ev);
        Ok(ev)
    }

    fn has_content(&self) -> bool {
        self.timelines
            .values()
            .any(|t| !t.out.is_empty() || !t.pending.is_empty())
    }

    fn new_presentation(&mut self, now: Instant, event: Option<String>, ev: &mut Vec<Event>) {
        for tl in self.timelines.values_mut() {
            tl.drain(now, ev);
        }
        self.timelines.clear();
        let previous = self.event.take();
        if let Some(prev) = previous.clone().filter(|p| event.as_ref() != Some(p)) {
            self.previous_events.push_back(prev);
            if self.previous_events.len() > MAX_PREVIOUS_EVENTS {
                self.previous_events.pop_front();
            }
        }
        self.presentation = self.presentation.wrapping_add(1);
        self.event = event.clone();
        self.ended = false;
        self.fragment_duration = None;
        ev.push(Event::NewPresentation {
            at: now,
            presentation: self.presentation,
            event,
            previous,
        });
    }

    /// A fragment is stored whole. Call in the order each push delivered
    /// its fragments.
    pub fn on_fragment(&mut self, now: Instant, n: FragmentNotice) -> Vec<Event> {
        let mut ev = Vec::new();
        let p = n.pipeline;
        self.counters.received[p.index()] += 1;
        self.heard_from(now, p, &mut ev);
        let reason = match p.of(&self.inputs).streams.get(&n.stream) {
            None => Some(RejectReason::UnknownStream),
            Some(s) if s.presentation != self.presentation => Some(RejectReason::OldPresentation),
            Some(s) if !s.tracks.contains(&n.track) => Some(RejectReason::UnknownTrack),
            Some(_) if self.ended => Some(RejectReason::Ended),
            Some(_) if n.duration == 0 || n.time.checked_add(n.duration).is_none() => {
                Some(RejectReason::BadDuration)
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            ev.push(Event::Rejected {
                at: now,
                pipeline: p,
                track: n.track,
                time: n.time,
                storage_key: n.storage_key,
                reason,
            });
        } else if let Some(tl) = self.timelines.get_mut(&n.track) {
            if tl.track.kind() != TrackKind::Text {
                let secs = n.duration as f64 / tl.track.timescale as f64;
                // Bounded: a bogus duration must not make loss undetectable.
                let d = Duration::from_secs_f64(secs.clamp(0.0, 60.0));
                self.fragment_duration = Some(self.fragment_duration.map_or(d, |f| f.max(d)));
            }
            tl.arrive(now, n, &mut ev);
        } else {
            ev.push(Event::Rejected {
                at: now,
                pipeline: p,
                track: n.track,
                time: n.time,
                storage_key: n.storage_key,
                reason: RejectReason::UnknownTrack,
            });
        }
        self.step(now, &mut ev);
        self.count(&ev);
        ev
    }

    /// A push ended on purpose (end-of-stream, or `mfra`). Once every push
    /// of both pipelines (of those that took part) ended, so does the output.
    pub fn on_stream_ended(
        &mut self,
        now: Instant,
        pipeline: Pipeline,
        stream: &str,
        how: EndOfStream,
    ) -> Vec<Event> {
        let mut ev = Vec::new();
        if let Some(s) = self.inputs[pipeline.index()].streams.get_mut(stream) {
            s.status = StreamStatus::Ended(how);
            ev.push(Event::StreamEnded {
                at: now,
                pipeline,
                stream: stream.to_owned(),
                how,
            });
        }
        self.step(now, &mut ev);
        self.count(&ev);
        ev
    }

    /// A push broke off (connection closed mid-body, timeout). The encoder
    /// may reconnect and resend; until the loss threshold passes, its
    /// pipeline is still waited for.
    pub fn on_connection_dropped(
        &mut self,
        now: Instant,
        pipeline: Pipeline,
        stream: &str,
    ) -> Vec<Event> {
        let mut ev = Vec::new();
        if let Some(s) = self.inputs[pipeline.index()].streams.get_mut(stream)
            && s.status == StreamStatus::Open
        {
            s.status = StreamStatus::Dropped;
        }
        self.step(now, &mut ev);
        self.count(&ev);
        ev
    }

    /// Nothing arrived; time passed. Safe to call early or twice.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        self.step(now, &mut ev);
        self.count(&ev);
        ev
    }

    /// The channel stopped: what waits goes out, and the output ends.
    pub fn stop(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        if !self.ended {
            self.finish(now, &mut ev);
        }
        self.count(&ev);
        ev
    }

    /// When `on_tick` must next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let threshold = self.threshold();
        let done = self.stepped_at;
        let lost_at = self
            .inputs
            .iter()
            .filter(|i| i.state != InputState::Lost)
            .filter_map(|i| i.last_advance)
            .map(|t| t + threshold);
        let holes = self
            .timelines
            .values()
            .filter(|_| !self.ended)
            .filter_map(|t| t.deadline(threshold));
        lost_at
            .chain(holes)
            .filter(|t| done.is_none_or(|s| *t > s))
            .min()
    }

    fn count(&mut self, ev: &[Event]) {
        for e in ev {
            match e {
                Event::FragmentAdded { from, .. } => self.counters.served[from.index()] += 1,
                Event::Duplicate { .. } => self.counters.duplicates += 1,
                Event::Filled { .. } => self.counters.fills += 1,
                Event::Gap { .. } => self.counters.gaps += 1,
                Event::Restarted { .. } => self.counters.restarts += 1,
                Event::Rejected { .. } => self.counters.rejected += 1,
                _ => {}
            }
        }
    }

    /// Applies every decision that is due at `now`.
    fn step(&mut self, now: Instant, ev: &mut Vec<Event>) {
        self.stepped_at = Some(self.stepped_at.map_or(now, |s| s.max(now)));
        let threshold = self.threshold();
        for p in Pipeline::BOTH {
            let inp = p.of(&self.inputs);
            let silent = inp
                .last_advance
                .is_some_and(|t| now.saturating_duration_since(t) >= threshold);
            if inp.state != InputState::Lost && silent {
                self.set_state(now, p, InputState::Lost, ev);
            }
        }
        if self.ended {
            return;
        }
        self.release_all(now, false, ev);
        let any = self.took_part(Pipeline::P0) || self.took_part(Pipeline::P1);
        let all_ended = Pipeline::BOTH
            .iter()
            .all(|&p| !self.took_part(p) || self.pipeline_ended(p));
        if any && all_ended {
            self.finish(now, ev);
        }
    }

    fn release_all(&mut self, now: Instant, force: bool, ev: &mut Vec<Event>) {
        let threshold = self.threshold();
        let window = self.cfg.dvr_window;
        let mays: Vec<[bool; 2]> = self
            .timelines
            .keys()
            .map(|k| {
                [
                    self.may_deliver(Pipeline::P0, k),
                    self.may_deliver(Pipeline::P1, k),
                ]
            })
            .collect();
        for (tl, may) in self.timelines.values_mut().zip(mays) {
            tl.release(now, threshold, may, force, window, ev);
        }
    }

    /// Nothing more will come: what waits goes out (across any holes), and
    /// the output ends.
    fn finish(&mut self, now: Instant, ev: &mut Vec<Event>) {
        self.release_all(now, true, ev);
        self.ended = true;
        ev.push(Event::Ended { at: now });
    }

    /// Asserts the contract on the current state (tests and fuzzers).
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn check_invariants(&self) {
        let mut timescales: BTreeMap<&str, (u64, TrackKind)> = BTreeMap::new();
        for (k, tl) in &self.timelines {
            assert_eq!(*k, tl.track.key(), "timeline keyed by its track");
            tl.check(self.cfg.dvr_window);
            let here = (tl.track.timescale, tl.track.kind());
            let first = *timescales.entry(&tl.track.name).or_insert(here);
            assert_eq!(first, here, "{k}: one timescale and type per stream index");
            if self.ended {
                assert!(
                    tl.pending.is_empty(),
                    "{k}: an ended output has nothing waiting"
                );
            }
        }
        assert!(self.previous_events.len() <= MAX_PREVIOUS_EVENTS);
        for inp in &self.inputs {
            assert!(inp.streams.len() <= MAX_STREAMS, "stream records bounded");
        }
    }
}
