//! Property tests of the redundancy engine.
//!
//! 1. Any interleaving of the two encoders' fragments, with losses that are
//!    not common (each fragment lost by at most one pipeline), gives an
//!    output timeline per track equal to the union of what they sent: each
//!    time once, in order. After every step the output is ordered, only
//!    appended to, and a subset of the union.
//! 2. Under any schedule of fragments (in order, resent, jumping back, off
//!    the grid), drops, reconnects, new events, ends, ticks and process
//!    restarts, every step keeps the engine's invariants and the output of
//!    a presentation only loses fragments at its front and gains them at
//!    its end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use support::{audio, pl, video};
use tandem_smooth::{
    EndOfStream, Event, FragmentNotice, SmoothConfig, SmoothMerge, StreamStart, TrackKey,
};

const D: u64 = 20_000_000;

fn keys() -> [TrackKey; 2] {
    [
        TrackKey::new("video", 1_000_000),
        TrackKey::new("audio", 128_000),
    ]
}

fn start(m: &mut SmoothMerge, now: Instant, p: usize, event: Option<String>) -> Vec<Event> {
    let s = StreamStart {
        pipeline: pl(p),
        stream: "s1".into(),
        event,
        tracks: vec![video(1_000_000), audio()],
    };
    m.on_stream_started(now, &s).unwrap()
}

fn outputs(m: &SmoothMerge) -> Vec<Vec<(u64, u64)>> {
    keys()
        .iter()
        .map(|k| m.timeline(k).map(|f| (f.time, f.duration)).collect())
        .collect()
}

/// One track's fragments: (time, duration), back to back from `base`.
fn fragments(base: u64, durations: &[u64]) -> Vec<(u64, u64)> {
    let mut t = base;
    durations
        .iter()
        .map(|&d| {
            let f = (t, d);
            t += d;
            f
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_with_uncommon_losses_serves_the_union_once_in_order(
        video_d in prop::collection::vec(prop_oneof![Just(D), Just(D / 2), Just(D + 333)], 1..30),
        audio_d in prop::collection::vec(prop_oneof![Just(D + 53_333), Just(D - 53_334)], 1..30),
        // 0: both send it, 1: P0 loses it, 2: P1 loses it.
        losses in prop::collection::vec(0u8..3, 60),
        order in prop::collection::vec(any::<bool>(), 240),
    ) {
        let t0 = Instant::now();
        let mut m = SmoothMerge::new(SmoothConfig::default());
        start(&mut m, t0, 0, None);
        start(&mut m, t0, 1, None);
        let base = 15_852_321_820_000_000u64;
        let tracks = [fragments(base, &video_d), fragments(base, &audio_d)];
        // Each pipeline's push, in time order across its tracks.
        let mut union: Vec<BTreeSet<(u64, u64)>> = vec![BTreeSet::new(), BTreeSet::new()];
        let mut pushes: Vec<Vec<(usize, u64, u64)>> = vec![Vec::new(), Vec::new()];
        for (ti, frags) in tracks.iter().enumerate() {
            for (k, &(t, d)) in frags.iter().enumerate() {
                let loss = losses[(k + ti * 30) % losses.len()];
                for p in 0..2 {
                    if loss != p as u8 + 1 {
                        pushes[p].push((ti, t, d));
                        union[ti].insert((t, d));
                    }
                }
            }
        }
        for push in &mut pushes {
            push.sort_by_key(|&(ti, t, _)| (t, ti));
        }
        let (mut next, mut step, mut prev) = ([0usize, 0], 0usize, outputs(&m));
        while next[0] < pushes[0].len() || next[1] < pushes[1].len() {
            let mut p = usize::from(order[step % order.len()]);
            if next[p] >= pushes[p].len() {
                p = 1 - p;
            }
            let (ti, time, duration) = pushes[p][next[p]];
            next[p] += 1;
            step += 1;
            // 5 ms a step: arrivals stay within the loss threshold, so
            // every hole waits for the other encoder.
            let now = t0 + Duration::from_millis(5 * step as u64);
            let key = keys()[ti].clone();
            m.on_fragment(now, FragmentNotice {
                pipeline: pl(p),
                stream: "s1".into(),
                storage_key: format!("p{p}/{key}/{time}"),
                track: key,
                time,
                duration,
                bytes: 1,
            });
            m.check_invariants();
            let out = outputs(&m);
            for ti in 0..2 {
                prop_assert!(out[ti].starts_with(&prev[ti]), "output only appends");
                prop_assert!(out[ti].windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0), "ordered, each time once");
                prop_assert!(out[ti].iter().all(|f| union[ti].contains(f)), "nothing but what was sent");
            }
            prev = out;
        }
        // A track's first fragment that one encoder lost waits the loss
        // threshold (1.5 × the longest fragment, < 2.1 s here) for that
        // encoder's first: it might start earlier.
        let later = t0 + Duration::from_millis(5 * step as u64) + Duration::from_secs(4);
        m.on_tick(later);
        m.check_invariants();
        let out = outputs(&m);
        for ti in 0..2 {
            prop_assert!(out[ti].starts_with(&prev[ti]), "output only appends");
            let want: Vec<(u64, u64)> = union[ti].iter().copied().collect();
            prop_assert_eq!(&out[ti], &want);
        }
        prop_assert_eq!(m.counters().gaps, 0);
        let end = later + Duration::from_millis(5);
        m.on_stream_ended(end, pl(0), "s1", EndOfStream::Eos);
        m.on_stream_ended(end, pl(1), "s1", EndOfStream::Mfra);
        m.check_invariants();
        prop_assert!(m.is_ended());
        prop_assert_eq!(outputs(&m), out);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Pipeline `p` sends its next fragment of track `ti`, or `back`
    /// fragments back (a resend or a restart), shifted off the grid by
    /// `skew` units.
    Frag {
        p: usize,
        ti: usize,
        back: u8,
        skew: u64,
        lose: bool,
    },
    Drop {
        p: usize,
    },
    Start {
        p: usize,
        event: Option<u8>,
    },
    End {
        p: usize,
    },
    Tick {
        ms: u64,
    },
    Reboot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..2usize, 0..2usize, prop_oneof![4 => Just(0u8), 1 => 1u8..6], prop_oneof![6 => Just(0u64), 1 => 1u64..D], prop::bool::weighted(0.1))
            .prop_map(|(p, ti, back, skew, lose)| Op::Frag { p, ti, back, skew, lose }),
        1 => (0..2usize).prop_map(|p| Op::Drop { p }),
        2 => (0..2usize, prop::option::weighted(0.3, 0u8..3)).prop_map(|(p, event)| Op::Start { p, event }),
        1 => (0..2usize).prop_map(|p| Op::End { p }),
        3 => (1u64..5000).prop_map(|ms| Op::Tick { ms }),
        1 => Just(Op::Reboot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn every_schedule_keeps_the_invariants_and_a_presentation_only_appends(
        ops in prop::collection::vec(op(), 1..150),
        window_s in 6u64..40,
    ) {
        let cfg = SmoothConfig { dvr_window: Duration::from_secs(window_s), ..SmoothConfig::default() };
        let t0 = Instant::now();
        let mut now = t0;
        let mut m = SmoothMerge::new(cfg.clone());
        // Per pipeline and track: the next fragment number.
        let mut pos = [[0u64; 2]; 2];
        let mut prev = (m.presentation().0, outputs(&m));
        for op in ops {
            now += Duration::from_millis(3);
            match op {
                Op::Frag { p, ti, back, skew, lose } => {
                    let k = pos[p][ti].saturating_sub(u64::from(back));
                    if back == 0 { pos[p][ti] += 1; }
                    if !lose {
                        let key = keys()[ti].clone();
                        let time = 1_000 * D + k * D + skew;
                        m.on_fragment(now, FragmentNotice { pipeline: pl(p), stream: "s1".into(), storage_key: format!("{p}/{time}"), track: key, time, duration: D, bytes: 1 });
                    }
                }
                Op::Drop { p } => { m.on_connection_dropped(now, pl(p), "s1"); }
                Op::Start { p, event } => {
                    let s = StreamStart { pipeline: pl(p), stream: "s1".into(), event: event.map(|e| e.to_string()), tracks: vec![video(1_000_000), audio()] };
                    let _ = m.on_stream_started(now, &s);
                }
                Op::End { p } => { m.on_stream_ended(now, pl(p), "s1", EndOfStream::Eos); }
                Op::Tick { ms } => { now += Duration::from_millis(ms); m.on_tick(now); }
                Op::Reboot => {
                    let json = serde_json::to_string(&m.save()).unwrap();
                    m = SmoothMerge::restore(cfg.clone(), &serde_json::from_str(&json).unwrap(), now).unwrap();
                }
            }
            m.check_invariants();
            if let Some(d) = m.next_deadline() {
                prop_assert!(d > t0, "deadlines are in the engine's time");
            }
            let out = outputs(&m);
            if m.presentation().0 == prev.0 {
                for ti in 0..2 {
                    let old: BTreeMap<u64, u64> = prev.1[ti].iter().copied().collect();
                    let kept: Vec<_> = out[ti].iter().filter(|f| old.contains_key(&f.0)).copied().collect();
                    let first_new = out[ti].iter().position(|f| !old.contains_key(&f.0)).unwrap_or(out[ti].len());
                    prop_assert!(prev.1[ti].ends_with(&kept), "only the front leaves");
                    prop_assert_eq!(first_new, kept.len(), "only the end grows");
                }
            }
            if let Some(xml) = m.client_manifest() {
                prop_assert!(xml.starts_with("<?xml"));
            }
            prev = (m.presentation().0, out);
        }
    }
}
