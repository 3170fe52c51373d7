//! For any schedule of segment arrivals, late or missing uploads, stalls,
//! encoder restarts, ends, clock steps and restarts of the process itself
//! (state saved, engine rebuilt) and resets by an operator, every playlist
//! the engine produces keeps the output contract: nothing goes out twice,
//! nothing goes back in time, an ended output resumes only with a
//! discontinuity and an event; and for fMP4 or encrypted inputs, every
//! segment of every playlist has its pipeline's init section (EXT-X-MAP)
//! and key (EXT-X-KEY) in effect, the first one included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tandem_core::Pipeline;
use tandem_hls::merge::Event;
use tandem_hls::{MergeConfig, RenditionMerge, parse_media};

#[derive(Debug, Clone)]
enum Op {
    /// Pipeline writes its next segment (stored now or left incomplete)
    /// and publishes its playlist.
    Segment { p: usize, stored: bool },
    /// A segment left incomplete earlier is stored after all.
    LateStore { p: usize },
    /// The encoder restarts: media sequence back to 0, new file names.
    Restart { p: usize },
    /// The encoder ends its playlist; its last segment may be short (as
    /// ffmpeg's usually is).
    End { p: usize, short: bool },
    /// Time passes with no input.
    Tick { ms: u64 },
    /// The process restarts: the engine's state is saved as JSON and a new
    /// engine continues from it.
    Reboot,
    /// An operator resets the output; its media sequence jumps ahead by
    /// `jump` (0: the base is the next number).
    Reset { jump: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, prop::bool::weighted(0.9)).prop_map(|(p, stored)| Op::Segment { p, stored }),
        1 => (0..2usize).prop_map(|p| Op::LateStore { p }),
        1 => (0..2usize).prop_map(|p| Op::Restart { p }),
        1 => (0..2usize, any::<bool>()).prop_map(|(p, short)| Op::End { p, short }),
        3 => (1u64..8000).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::Reboot),
        1 => (0u64..1000).prop_map(|jump| Op::Reset { jump }),
    ]
}

struct Encoder {
    p: usize,
    /// fMP4: `EXT-X-MAP` above the first segment listed (as ffmpeg writes
    /// it), an init section per pipeline and epoch.
    fmp4: bool,
    /// AES-128 with a key that rotates every 3 segments, named above the
    /// first segment listed and where it rotates.
    encrypted: bool,
    epoch: u32,
    next: u64,
    window: u64,
    pdt_base: Option<i64>,
    incomplete: Vec<String>,
    ended: bool,
    /// The last segment lasts 0.08 s (set when the encoder ends).
    short_last: bool,
}

impl Encoder {
    fn uri(&self, msn: u64) -> String {
        format!("e{}s{msn}.ts", self.epoch)
    }

    fn playlist(&self) -> String {
        let last = self.next - 1;
        let first = last.saturating_sub(self.window - 1);
        let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for k in first..=last {
            if self.fmp4 && k == first {
                t.push_str(&format!(
                    "#EXT-X-MAP:URI=\"{}\"\n",
                    init_uri(self.p, self.epoch)
                ));
            }
            if self.encrypted && (k == first || k % 3 == 0) {
                t.push_str(&format!("{}\n", key_line(self.p, self.epoch, k)));
            }
            if let Some(b) = self.pdt_base {
                t.push_str(&format!(
                    "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                    tandem_hls::playlist::format_pdt(b + 2000 * k as i64)
                ));
            }
            let d = if self.short_last && k == last {
                "0.080"
            } else {
                "2.000"
            };
            t.push_str(&format!("#EXTINF:{d},\n{}\n", self.uri(k)));
        }
        if self.ended {
            t.push_str("#EXT-X-ENDLIST\n");
        }
        t
    }
}

fn init_uri(p: usize, epoch: u32) -> String {
    format!("init{p}e{epoch}.mp4")
}

fn key_line(p: usize, epoch: u32, k: u64) -> String {
    format!(
        "#EXT-X-KEY:METHOD=AES-128,URI=\"p{p}e{epoch}k{}.key\"",
        k / 3
    )
}

fn pipeline(p: usize) -> Pipeline {
    if p == 0 { Pipeline::P0 } else { Pipeline::P1 }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn every_produced_playlist_keeps_the_output_contract(
        ops in prop::collection::vec(op(), 1..120),
        pdt in any::<bool>(),
        prefer in prop::option::of(0..2usize),
        window in 2u64..6,
        fmp4 in any::<bool>(),
        encrypted in any::<bool>(),
    ) {
        check(ops, pdt, prefer, window, fmp4, encrypted)?;
    }
}

/// A schedule found by the property test once: restarts, a reboot, both
/// ends, a reset with no jump and late stores. The output must resume
/// where its numbering left off.
#[test]
fn restart_reboot_end_reset_and_late_stores_resume_in_order() {
    use Op::*;
    let ops = vec![
        Restart { p: 1 },
        Segment {
            p: 0,
            stored: false,
        },
        Segment { p: 1, stored: true },
        Restart { p: 1 },
        Tick { ms: 1 },
        Tick { ms: 1 },
        Tick { ms: 1 },
        Segment { p: 1, stored: true },
        Reboot,
        End { p: 0, short: false },
        End { p: 1, short: true },
        Restart { p: 0 },
        Tick { ms: 2600 },
        Reset { jump: 0 },
        Segment {
            p: 1,
            stored: false,
        },
        Segment {
            p: 1,
            stored: false,
        },
        LateStore { p: 0 },
        LateStore { p: 0 },
        Segment { p: 0, stored: true },
    ];
    if let Err(e) = check(ops, false, None, 2, false, false) {
        panic!("{e}");
    }
}

/// A schedule found by the property test: a pipeline whose first
/// segments were never stored, a reboot, late stores and stalls. No moment
/// may go out after a later one.
#[test]
fn incomplete_segments_a_reboot_and_late_stores_never_send_a_moment_after_a_later_one() {
    use Op::*;
    let ops = vec![
        Segment {
            p: 1,
            stored: false,
        },
        Segment {
            p: 1,
            stored: false,
        },
        Segment {
            p: 1,
            stored: false,
        },
        Segment {
            p: 1,
            stored: false,
        },
        Segment { p: 1, stored: true },
        Segment { p: 1, stored: true },
        Reboot,
        Segment { p: 0, stored: true },
        Tick { ms: 2800 },
        LateStore { p: 1 },
        Segment {
            p: 1,
            stored: false,
        },
        Segment {
            p: 0,
            stored: false,
        },
        Tick { ms: 2900 },
        Segment { p: 0, stored: true },
    ];
    if let Err(e) = check(ops, false, None, 4, false, false) {
        panic!("{e}");
    }
}

fn check(
    ops: Vec<Op>,
    pdt: bool,
    prefer: Option<usize>,
    window: u64,
    fmp4: bool,
    encrypted: bool,
) -> Result<(), TestCaseError> {
    {
        let cfg = MergeConfig {
            prefer: prefer.map(pipeline),
            hold_down: Duration::from_secs(5),
            ..MergeConfig::default()
        };
        let mut m = RenditionMerge::new(cfg);
        let t0 = Instant::now();
        let mut now = t0;
        let base = pdt.then_some(1_795_579_200_000i64);
        let mut enc: Vec<Encoder> = (0..2)
            .map(|p| Encoder {
                p,
                fmp4,
                encrypted,
                epoch: 0,
                next: 0,
                window,
                pdt_base: base,
                incomplete: vec![],
                ended: false,
                short_last: false,
            })
            .collect();
        let mut stored: HashSet<(usize, String)> = HashSet::new();
        let mut seen: HashMap<u64, (String, f64, Option<i64>)> = HashMap::new();
        // Until an encoder restarts, both pipelines number the same
        // moments identically: each number goes out once, whichever
        // pipeline carries it, and never after a later one.
        let mut restarted = false;
        let mut moments: HashMap<u64, u64> = HashMap::new();
        let mut last_msn: Option<u64> = None;
        let mut last_dsn = 0u64;
        let mut target: Option<u64> = None;
        let mut was_ended = false;
        // Whether each pipeline's last published playlist had ENDLIST: all
        // the engine can know (a restarted encoder is silent until it
        // publishes).
        let mut published_ended = [false, false];
        // Every source segment a pipeline announced goes out at most once.
        let mut added: HashSet<(Pipeline, String)> = HashSet::new();
        // Whether each output position carried a discontinuity.
        let mut marked: HashMap<u64, bool> = HashMap::new();

        for op in ops {
            now += Duration::from_millis(50);
            // An op may store a segment (the engine decides) before it
            // publishes a playlist: both states count as what it knew.
            let ended_before = published_ended;
            let events = match op {
                Op::Segment { p, stored: s } => {
                    let e = &mut enc[p];
                    if e.ended {
                        continue;
                    }
                    let uri = e.uri(e.next);
                    e.next += 1;
                    let mut ev = Vec::new();
                    if s {
                        stored.insert((p, uri.clone()));
                        ev.extend(m.on_segment_stored(now, pipeline(p), &uri));
                    } else {
                        e.incomplete.push(uri);
                    }
                    let pl = parse_media(&e.playlist()).unwrap();
                    published_ended[p] = pl.endlist;
                    ev.extend(m.on_playlist(now, pipeline(p), &pl));
                    ev
                }
                Op::LateStore { p } => {
                    let Some(uri) = enc[p].incomplete.pop() else {
                        continue;
                    };
                    stored.insert((p, uri.clone()));
                    m.on_segment_stored(now, pipeline(p), &uri)
                }
                Op::Restart { p } => {
                    let e = &mut enc[p];
                    e.epoch += 1;
                    e.next = 0;
                    e.ended = false;
                    e.short_last = false;
                    e.incomplete.clear();
                    e.pdt_base = base.map(|b| b + 1000 * (now - t0).as_millis() as i64);
                    restarted = true;
                    continue;
                }
                Op::Reboot => {
                    let json = serde_json::to_string(&m.save()).unwrap();
                    let saved: tandem_hls::SavedMerge = serde_json::from_str(&json).unwrap();
                    let before = m
                        .playlist(|s| format!("p{}/{}", s.from, s.source_uri))
                        .map(|p| p.serialize());
                    m = RenditionMerge::restore(m.config().clone(), &saved, now).unwrap();
                    let after = m
                        .playlist(|s| format!("p{}/{}", s.from, s.source_uri))
                        .map(|p| p.serialize());
                    prop_assert_eq!(before, after, "a restored engine serves the same playlist");
                    Vec::new()
                }
                Op::End { p, short } => {
                    let e = &mut enc[p];
                    if e.next == 0 || e.ended {
                        continue;
                    }
                    let mut ev = Vec::new();
                    if short {
                        // A last, short segment, published with ENDLIST.
                        let uri = e.uri(e.next);
                        e.next += 1;
                        stored.insert((p, uri.clone()));
                        ev.extend(m.on_segment_stored(now, pipeline(p), &uri));
                    }
                    e.ended = true;
                    e.short_last = short;
                    let pl = parse_media(&e.playlist()).unwrap();
                    published_ended[p] = true;
                    ev.extend(m.on_playlist(now, pipeline(p), &pl));
                    ev
                }
                Op::Tick { ms } => {
                    now += Duration::from_millis(ms);
                    m.on_tick(now)
                }
                Op::Reset { jump } => {
                    let base = m.resume_point().0 + jump;
                    let ev = m.reset(now, base);
                    let next = ev.iter().find_map(|e| match e {
                        Event::Reset { media_sequence, .. } => Some(*media_sequence),
                        _ => None,
                    });
                    prop_assert_eq!(next, Some(base), "a reset starts at the base it was given");
                    ev
                }
            };
            m.check_invariants();
            for e in &events {
                if let Event::SegmentAdded {
                    from, source_uri, ..
                } = e
                {
                    prop_assert!(
                        added.insert((*from, source_uri.clone())),
                        "{} from {} went out twice",
                        source_uri,
                        from
                    );
                }
            }
            // Every decision due now was applied: a deadline is in the
            // future (a driver that sleeps until it never spins).
            if let Some(d) = m.next_deadline() {
                prop_assert!(d > now, "a deadline {:?} at or before now", now - d);
            }
            let Some(pl) = m.playlist(|s| format!("p{}/{}", s.from, s.source_uri)) else {
                continue;
            };
            for (i, s) in pl.segments.iter().enumerate() {
                marked
                    .entry(pl.media_sequence + i as u64)
                    .or_insert(s.discontinuity);
            }
            let reset_at = events.iter().find_map(|e| match e {
                Event::Reset { media_sequence, .. } => Some(*media_sequence),
                _ => None,
            });
            let reset = reset_at.is_some();
            // Whether position `msn` carried a discontinuity: in a served
            // playlist, or as it left the window during this step.
            let removed: HashMap<u64, bool> = events
                .iter()
                .filter_map(|e| match e {
                    Event::SegmentRemoved {
                        media_sequence,
                        discontinuity,
                        ..
                    } => Some((*media_sequence, *discontinuity)),
                    _ => None,
                })
                .collect();
            let was_marked = |msn: u64| marked.get(&msn).or(removed.get(&msn)).copied();
            let ended_now = was_ended || events.iter().any(|e| matches!(e, Event::Ended { .. }));
            for (i, e) in events.iter().enumerate() {
                if let Event::Resumed { media_sequence, .. } = e {
                    // Only an ended output resumes; its numbering carries on
                    // from what went out before it (this step's earlier
                    // segments included) and the first new segment is marked.
                    prop_assert!(ended_now, "resumed an output that had not ended");
                    let added_before = events[..i].iter().filter_map(|e| match e {
                        Event::SegmentAdded { media_sequence, .. } => Some(*media_sequence),
                        _ => None,
                    });
                    let next = seen
                        .keys()
                        .copied()
                        .chain(added_before)
                        .filter(|k| *k < *media_sequence)
                        .max()
                        .map(|k| k + 1);
                    prop_assert!(
                        next.is_none_or(|n| n == *media_sequence),
                        "resumed at {} after {:?}",
                        media_sequence,
                        next
                    );
                    prop_assert_eq!(
                        was_marked(*media_sequence),
                        Some(true),
                        "the first segment after a resume carries a discontinuity"
                    );
                }
            }
            // A reset output starts at its base with a discontinuity.
            if let Some(base) = reset_at {
                prop_assert!(
                    pl.media_sequence >= base,
                    "a reset output starts at its base"
                );
                prop_assert!(
                    was_marked(base).is_none_or(|d| d),
                    "the first segment after a reset carries a discontinuity"
                );
            }
            // The media sequence never goes backwards.
            if let Some(prev) = last_msn {
                prop_assert!(
                    pl.media_sequence >= prev,
                    "media sequence went from {} to {}",
                    prev,
                    pl.media_sequence
                );
            }
            last_msn = Some(pl.media_sequence);
            // The target duration never changes.
            prop_assert_eq!(
                *target.get_or_insert(pl.target_duration),
                pl.target_duration
            );
            // The discontinuity sequence counts exactly the discontinuities that left.
            let left = events
                .iter()
                .filter(|e| {
                    matches!(
                        e,
                        Event::SegmentRemoved {
                            discontinuity: true,
                            ..
                        }
                    )
                })
                .count() as u64;
            prop_assert_eq!(pl.discontinuity_sequence, last_dsn + left);
            last_dsn = pl.discontinuity_sequence;
            for (i, s) in pl.segments.iter().enumerate() {
                let msn = pl.media_sequence + i as u64;
                // A segment keeps its URI, duration and position.
                let first = seen
                    .entry(msn)
                    .or_insert_with(|| (s.uri.clone(), s.duration, s.program_date_time));
                prop_assert_eq!(&first.0, &s.uri);
                prop_assert_eq!(first.1, s.duration);
                // Program date-times strictly increase along the output:
                // no moment goes out twice, none goes back in time.
                if let (Some(t), Some((_, _, Some(prev)))) = (
                    s.program_date_time,
                    msn.checked_sub(1).and_then(|p| seen.get(&p)),
                ) {
                    prop_assert!(
                        t > *prev,
                        "output {} starts at {} after {} at {}",
                        msn,
                        t,
                        msn - 1,
                        prev
                    );
                }
                if let Some(k) = s
                    .uri
                    .split_once("/e0s")
                    .and_then(|(_, k)| k.strip_suffix(".ts"))
                    .and_then(|k| k.parse::<u64>().ok())
                    .filter(|_| !restarted)
                {
                    let at = *moments.entry(k).or_insert(msn);
                    prop_assert_eq!(at, msn, "moment {} went out at {} and at {}", k, at, msn);
                    if let Some((&later, &pos)) = moments.iter().find(|(l, p)| **l > k && **p < msn)
                    {
                        prop_assert!(
                            false,
                            "moment {} went out at {} after moment {} at {}",
                            k,
                            msn,
                            later,
                            pos
                        );
                    }
                }
                // Only complete segments are named.
                let (p, uri) = s.uri.split_once('/').unwrap();
                let p: usize = p.trim_start_matches('p').parse().unwrap();
                prop_assert!(
                    stored.contains(&(p, uri.to_owned())),
                    "{} named but never stored",
                    s.uri
                );
            }
            // ENDLIST appears only once both pipelines ended; it stays.
            if pl.endlist && !was_ended {
                prop_assert!(
                    published_ended.iter().all(|e| *e) || ended_before.iter().all(|e| *e),
                    "ENDLIST while a pipeline runs"
                );
            }
            let resumed = events.iter().any(|e| matches!(e, Event::Resumed { .. }));
            prop_assert!(
                pl.endlist || !was_ended || resumed || reset,
                "an ended output resumes only with an event"
            );
            prop_assert!(
                !(pl.endlist && resumed),
                "a resumed output carries no ENDLIST"
            );
            was_ended = pl.endlist;
            // The text is a valid playlist that parses back to the same.
            let text = pl.serialize();
            prop_assert_eq!(parse_media(&text).unwrap().serialize(), text.clone());
            // Each segment has its own pipeline's init section and key in
            // effect, as a reader of this playlist alone sees it; the
            // engine never names one twice above a segment.
            let (mut map, mut key) = (None::<String>, None::<String>);
            for s in &pl.segments {
                let maps = s
                    .tags
                    .iter()
                    .filter(|l| l.starts_with("#EXT-X-MAP:"))
                    .count();
                prop_assert!(maps <= 1, "{} has {} MAP lines", s.uri, maps);
                for l in &s.tags {
                    if let Some(u) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
                        map = u.strip_suffix('"').map(str::to_owned);
                    } else if l.starts_with("#EXT-X-KEY:") {
                        key = Some(l.clone());
                    }
                }
                let (p, src) = s.uri.split_once('/').unwrap();
                let p: usize = p.trim_start_matches('p').parse().unwrap();
                let (epoch, k) = src
                    .trim_start_matches('e')
                    .trim_end_matches(".ts")
                    .split_once('s')
                    .unwrap();
                let (epoch, k): (u32, u64) = (epoch.parse().unwrap(), k.parse().unwrap());
                let want_map = fmp4.then(|| init_uri(p, epoch));
                prop_assert_eq!(&map, &want_map, "MAP in effect for {} in\n{}", s.uri, text);
                let want_key = encrypted.then(|| key_line(p, epoch, k));
                prop_assert_eq!(&key, &want_key, "KEY in effect for {} in\n{}", s.uri, text);
            }
            // No discontinuity tag without a segment after it.
            let tail = text
                .trim_end()
                .lines()
                .rfind(|l| !l.starts_with("#EXT-X-ENDLIST"))
                .unwrap_or("");
            prop_assert!(
                tail != "#EXT-X-DISCONTINUITY",
                "a discontinuity with no segment after it"
            );
        }
    }
    Ok(())
}
