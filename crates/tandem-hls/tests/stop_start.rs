//! Outputs that stop and start: an ended output resumes when an encoder
//! starts again, across restarts of Tandem too, and a reset starts a fresh
//! output. Same harness as the failover scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tandem_core::Pipeline;
use tandem_core::Pipeline::{P0, P1};
use tandem_hls::merge::Event;
use tandem_hls::{MergeConfig, SwitchReason};

/// The playlist of `e` after segment `last`, ended.
fn ended(e: &Encoder, last: u64) -> String {
    format!("{}#EXT-X-ENDLIST\n", e.playlist(0, last))
}

fn resumes(h: &H) -> Vec<(Pipeline, u64)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Resumed {
                pipeline,
                media_sequence,
                ..
            } => Some((*pipeline, *media_sequence)),
            _ => None,
        })
        .collect()
}

fn pdt(ms: i64) -> String {
    format!(
        "#EXT-X-PROGRAM-DATE-TIME:{}\n",
        tandem_hls::playlist::format_pdt(BASE_PDT + ms)
    )
}

/// A channel stopped and started, as MediaLive channels are daily: both
/// encoders end their playlists, start again a minute later counting from
/// 0 with the same file names. The output carries on: its numbering
/// continues, one discontinuity marks the restart, ENDLIST goes, and the
/// pipeline that came back second joins the timeline by date-time, so a
/// later failover is seamless again.
#[test]
fn both_pipelines_stop_and_start_again_and_the_output_resumes_with_one_discontinuity() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(0));
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.0, P0, &ended(&e0, 3), &[]);
    h.feed(8.1, P1, &ended(&e1, 3), &[]);
    assert!(
        h.out().ends_with("p0/a3.ts\n#EXT-X-ENDLIST\n"),
        "{}",
        h.out()
    );
    assert!(resumes(&h).is_empty());
    // A minute later: P1 first, then P0, each from media sequence 0.
    let (r0, r1) = (Encoder::pdt(60_000), Encoder::pdt(60_000));
    h.feed(60.0, P1, &r1.playlist(0, 0), &[]);
    assert_eq!(
        h.out(),
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
             {}#EXTINF:2.000,\np0/a2.ts\n{}#EXTINF:2.000,\np0/a3.ts\n\
             #EXT-X-DISCONTINUITY\n{}#EXTINF:2.000,\np1/a0.ts\n",
            pdt(4000),
            pdt(6000),
            pdt(60_000)
        )
    );
    assert_eq!(resumes(&h), vec![(P1, 4)]);
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Resumed, true))
    );
    h.feed(60.1, P0, &r0.playlist(0, 0), &[]);
    h.feed(62.0, P1, &r1.playlist(0, 1), &[]);
    h.feed(62.1, P0, &r0.playlist(0, 1), &[]);
    // P1 dies; P0, back second, is aligned: no second discontinuity.
    h.feed(64.1, P0, &r0.playlist(0, 2), &[]);
    h.tick(65.1);
    assert_eq!(
        h.out(),
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-DISCONTINUITY\n{}#EXTINF:2.000,\np1/a0.ts\n{}#EXTINF:2.000,\np1/a1.ts\n\
             {}#EXTINF:2.000,\np0/a2.ts\n",
            pdt(60_000),
            pdt(62_000),
            pdt(64_000)
        )
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P1), P0, SwitchReason::Stalled, false))
    );
    assert_eq!(resumes(&h).len(), 1);
}

/// Only one encoder comes back (no program date-times): the output resumes
/// on it, and ends again when it ends.
#[test]
fn the_output_resumes_on_the_one_pipeline_that_starts_again_and_ends_with_it() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 2);
    h.feed(6.0, P0, &ended(&e0, 2), &[]);
    h.feed(6.1, P1, &ended(&e1, 2), &[]);
    assert!(h.out().ends_with("#EXT-X-ENDLIST\n"));
    let r0 = Encoder::plain();
    // Announced before it is stored whole: nothing changes yet.
    h.feed(30.0, P0, &r0.playlist(0, 0), &["a0.ts"]);
    assert!(h.out().ends_with("#EXT-X-ENDLIST\n"), "{}", h.out());
    let ev = h.m.on_segment_stored(h.at(30.5), P0, "a0.ts");
    h.events.extend(ev);
    h.feed(32.0, P0, &r0.playlist(0, 1), &[]);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:2.000,\np0/a2.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a0.ts\n#EXTINF:2.000,\np0/a1.ts\n"
    );
    assert_eq!(resumes(&h), vec![(P0, 3)]);
    // Resumed on the pipeline it was on: no switch.
    assert_eq!(h.switches().len(), 1);
    h.feed(34.0, P0, &ended(&r0, 2), &[]);
    assert!(
        h.out().ends_with("p0/a2.ts\n#EXT-X-ENDLIST\n"),
        "{}",
        h.out()
    );
    h.m.check_invariants();
}

/// Tandem restarts while the output is ended, and again between the
/// resume and the second pipeline's return: the ended state and the
/// pending join survive both.
#[test]
fn an_ended_output_resumes_across_restarts_of_tandem() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(0));
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.0, P0, &ended(&e0, 3), &[]);
    h.feed(8.1, P1, &ended(&e1, 3), &[]);
    h.restart(20.0);
    assert!(h.out().ends_with("#EXT-X-ENDLIST\n"));
    let (r0, r1) = (Encoder::pdt(60_000), Encoder::pdt(60_000));
    h.feed(60.0, P0, &r0.playlist(0, 0), &[]);
    assert_eq!(resumes(&h), vec![(P0, 4)]);
    h.restart(61.0);
    h.feed(62.0, P0, &r0.playlist(0, 1), &[]);
    h.feed(62.1, P1, &r1.playlist(0, 1), &[]);
    h.feed(64.1, P1, &r1.playlist(0, 2), &[]);
    h.tick(65.1);
    assert_eq!(
        h.out(),
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n\
             #EXT-X-DISCONTINUITY\n{}#EXTINF:2.000,\np0/a0.ts\n{}#EXTINF:2.000,\np0/a1.ts\n\
             {}#EXTINF:2.000,\np1/a2.ts\n",
            pdt(60_000),
            pdt(62_000),
            pdt(64_000)
        )
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
}

/// An operator resets a running output: the window empties at once, the
/// numbering jumps to the base, the next segment is marked, nothing goes
/// out again, the pipelines stay aligned, and a restart of Tandem right
/// after continues the new output.
#[test]
fn a_reset_starts_a_fresh_output_at_its_base() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    let ev = h.m.reset(h.at(9.0), 1_000);
    let removed: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::SegmentRemoved { media_sequence, .. } => Some(*media_sequence),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![2, 3, 4]);
    assert!(matches!(
        ev.last(),
        Some(Event::Reset {
            media_sequence: 1_000,
            ..
        })
    ));
    h.m.check_invariants();
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1000\n"
    );
    h.restart(9.5);
    // The encoders re-announce 2..=4 and go on with 5 and 6.
    run_both(&mut h, &e0, &e1, 5, 6);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1000\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n"
    );
    // P0 dies: P1 is still aligned with it.
    h.feed(14.1, P1, &e1.playlist(0, 7), &[]);
    h.tick(15.1);
    assert!(
        h.out().ends_with("p0/a6.ts\n#EXTINF:2.000,\np1/a7.ts\n"),
        "{}",
        h.out()
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
    // A base below the next number does not take the numbering back.
    let ev = h.m.reset(h.at(16.0), 5);
    assert!(matches!(
        ev.last(),
        Some(Event::Reset {
            media_sequence: 1_003,
            ..
        })
    ));
}

/// A reset while both encoders are stopped: the playlist is live (no
/// ENDLIST) and empty until an encoder starts; its first segment is marked.
#[test]
fn a_reset_output_waits_live_for_the_encoders_to_start() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 2);
    h.feed(6.0, P0, &ended(&e0, 2), &[]);
    h.feed(6.1, P1, &ended(&e1, 2), &[]);
    let ev = h.m.reset(h.at(10.0), 500);
    h.events.extend(ev);
    h.tick(40.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500\n"
    );
    h.feed(60.0, P1, &Encoder::plain().playlist(0, 0), &[]);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:500\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np1/a0.ts\n"
    );
    assert!(resumes(&h).is_empty(), "a reset output is not resumed");
}

/// What ffmpeg sends at the end of a 5 s source with `-hls_time 2`: two
/// 2 s segments and a last one of 1 s, the second encoder's clock
/// `skew_ms` behind the first's, then ENDLIST.
fn short_end(skew_ms: i64, last: u64) -> String {
    let mut t = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for k in 0..=last {
        let d = if k == 2 { "1.000" } else { "2.000" };
        t.push_str(&format!(
            "{}#EXTINF:{d},\na{k}.ts\n",
            pdt(2000 * k as i64 + skew_ms)
        ));
    }
    if last == 2 {
        t.push_str("#EXT-X-ENDLIST\n");
    }
    t
}

/// The encoders' last segment is shorter than the date-time tolerance and
/// their clocks differ by 300 ms: the other encoder's copy of it carries the
/// same moment, so it never follows the first copy, whether it is stored
/// before the output ends or only after (and then a reset must not bring it
/// out either).
#[test]
fn the_other_encoders_copy_of_a_short_last_segment_never_goes_out_after_it() {
    for late in [false, true] {
        let mut h = H::new(MergeConfig::default());
        for k in 0..=2 {
            let t = 2.0 * k as f64;
            h.feed(t, P0, &short_end(0, k), &[]);
            let missing: &[&str] = if late && k == 2 { &["a2.ts"] } else { &[] };
            h.feed(t + 0.3, P1, &short_end(300, k), missing);
        }
        if late {
            let ev = h.m.on_segment_stored(h.at(4.6), P1, "a2.ts");
            h.events.extend(ev);
        }
        let out = h.out();
        assert_eq!(out.matches("a2.ts").count(), 1, "late: {late}\n{out}");
        assert!(
            out.ends_with("p0/a2.ts\n#EXT-X-ENDLIST\n"),
            "late: {late}\n{out}"
        );
        let ev = h.m.reset(h.at(10.0), 1_000);
        h.events.extend(ev);
        h.m.check_invariants();
        assert_eq!(
            h.out(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1000\n",
            "late: {late}"
        );
    }
}

/// An encoder that comes back with several segments already stored: the
/// output resumes and takes all of them at once, not one per event.
#[test]
fn a_resumed_output_takes_every_segment_already_stored_at_once() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(0));
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.0, P0, &ended(&e0, 3), &[]);
    h.feed(8.1, P1, &ended(&e1, 3), &[]);
    assert!(h.out().ends_with("#EXT-X-ENDLIST\n"), "{}", h.out());
    let r1 = Encoder::pdt(60_000);
    h.feed(64.0, P1, &r1.playlist(0, 2), &[]);
    assert_eq!(resumes(&h), vec![(P1, 4)]);
    let window = h.window();
    assert_eq!(
        window,
        [
            (4, "p1/a0.ts".into()),
            (5, "p1/a1.ts".into()),
            (6, "p1/a2.ts".into())
        ]
    );
}

/// Both encoders end, and the last segment they announced was never stored
/// anywhere: the output still ends, after what it has.
#[test]
fn an_output_whose_last_announced_segment_never_completes_still_ends() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.0, P0, &ended(&e0, 4), &["a4.ts"]);
    h.feed(8.1, P1, &ended(&e1, 4), &["a4.ts"]);
    assert!(!h.m.ended(), "waiting for a4 until its threshold");
    h.tick(12.0);
    assert!(h.m.ended());
    assert!(
        h.out().ends_with("p0/a3.ts\n#EXT-X-ENDLIST\n"),
        "{}",
        h.out()
    );
    assert_eq!(
        h.events
            .iter()
            .filter(|e| matches!(e, Event::Ended { .. }))
            .count(),
        1
    );
}
