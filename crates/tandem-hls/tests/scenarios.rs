//! Failover scenarios on the merge engine with an injected clock. Each
//! checks the exact output playlist at chosen instants; output URIs are
//! `p{pipeline}/{source uri}` so the text shows who served what.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;
use tandem_core::Pipeline::{P0, P1};
use tandem_core::{InputState, Pipeline};
use tandem_hls::merge::Event;
use tandem_hls::{MergeConfig, RenditionMerge, SwitchReason, parse_media};

#[test]
fn pipeline_0_dies_mid_stream_and_the_output_continues_from_1_seamlessly() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:2.000,\np0/a2.ts\n#EXTINF:2.000,\np0/a3.ts\n#EXTINF:2.000,\np0/a4.ts\n"
    );
    // P0 dies after segment 4 (t = 8). P1 keeps going.
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    assert!(
        h.out().ends_with("p0/a4.ts\n"),
        "before the loss threshold the output waits for P0"
    );
    h.tick(10.9);
    assert!(h.out().ends_with("p0/a4.ts\n"));
    // 1.5 × 2 s after P0's last advance (t = 8): switch.
    h.tick(11.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.000,\np0/a3.ts\n#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np1/a5.ts\n"
    );
    h.feed(12.1, P1, &e1.playlist(0, 6), &[]);
    assert!(h.out().ends_with("p1/a5.ts\n#EXTINF:2.000,\np1/a6.ts\n"));
    assert_eq!(
        h.switches(),
        vec![
            (None, P0, SwitchReason::Started, false),
            (Some(P0), P1, SwitchReason::Stalled, false)
        ]
    );
    assert_eq!(h.states(P0), vec![InputState::Receiving, InputState::Lost]);
    // What the server reads back for its status page and output pins.
    assert_eq!(h.m.active(), Some(P1));
    let window = h.window();
    assert_eq!(
        window,
        [
            (4, "p0/a4.ts".into()),
            (5, "p1/a5.ts".into()),
            (6, "p1/a6.ts".into())
        ]
    );
}

#[test]
fn the_engine_keeps_the_settings_it_was_given() {
    let cfg = MergeConfig {
        prefer: Some(P1),
        hold_down: Duration::from_secs(7),
        max_window: 9,
        ..MergeConfig::default()
    };
    let h = H::new(cfg.clone());
    assert_eq!(h.m.config(), &cfg);
    assert_eq!(h.m.active(), None);
}

#[test]
fn pipeline_0_comes_back_and_the_output_stays_on_1_unless_0_is_preferred() {
    for prefer in [None, Some(P0)] {
        let mut h = H::new(MergeConfig {
            prefer,
            hold_down: Duration::from_secs(6),
            ..MergeConfig::default()
        });
        let (e0, e1) = (Encoder::plain(), Encoder::plain());
        run_both(&mut h, &e0, &e1, 0, 3);
        h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
        h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
        assert!(h.out().ends_with("p1/a5.ts\n"), "{}", h.out());
        // P0 is back at t = 12 with the same numbering (a network outage,
        // not a restart).
        run_both(&mut h, &e0, &e1, 6, 9);
        let out = h.out();
        match prefer {
            None => {
                assert_eq!(
                    out,
                    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\np1/a7.ts\n#EXTINF:2.000,\np1/a8.ts\n#EXTINF:2.000,\np1/a9.ts\n"
                );
                assert_eq!(h.switches().len(), 2, "no switching back: no flapping");
            }
            Some(_) => {
                // Healthy since t = 12; hold-down 6 s: back on P0 from t = 18.
                assert_eq!(
                    out,
                    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\np1/a7.ts\n#EXTINF:2.000,\np1/a8.ts\n#EXTINF:2.000,\np0/a9.ts\n"
                );
                assert_eq!(
                    h.switches().last(),
                    Some(&(Some(P1), P0, SwitchReason::Preferred, false))
                );
            }
        }
    }
}

#[test]
fn both_die_then_1_returns_after_a_gap_with_a_discontinuity() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    h.tick(20.0);
    assert!(
        h.out().ends_with("p0/a4.ts\n"),
        "nothing to switch to: the output stands still"
    );
    assert_eq!(
        (h.states(P0).last(), h.states(P1).last()),
        (Some(&InputState::Lost), Some(&InputState::Lost))
    );
    // P1 returns at t = 22 with segments 10..=11 (5..=9 were never made).
    h.feed(22.0, P1, &e1.playlist(10, 10), &[]);
    h.feed(24.0, P1, &e1.playlist(10, 11), &[]);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.000,\np0/a4.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np1/a10.ts\n#EXTINF:2.000,\np1/a11.ts\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, true))
    );
    // The discontinuity leaves the window: the discontinuity sequence counts it.
    h.feed(26.0, P1, &e1.playlist(10, 12), &[]);
    h.feed(28.0, P1, &e1.playlist(10, 13), &[]);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:6\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:2.000,\np1/a11.ts\n#EXTINF:2.000,\np1/a12.ts\n#EXTINF:2.000,\np1/a13.ts\n"
    );
}

#[test]
fn pipeline_1_starts_late_and_nothing_switches() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    for k in 0..=3 {
        h.feed(2.0 * k as f64, P0, &e0.playlist(0, k), &[]);
    }
    run_both(&mut h, &e0, &e1, 4, 6);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n"
    );
    assert_eq!(h.switches(), vec![(None, P0, SwitchReason::Started, false)]);
    assert_eq!(h.states(P1), vec![InputState::Receiving]);
}

#[test]
fn one_segment_missing_on_0_only_is_filled_from_1() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 2);
    // P0 announces a3 but its upload never completes; P1 has it.
    h.feed(6.0, P0, &e0.playlist(0, 3), &["a3.ts"]);
    h.feed(6.1, P1, &e1.playlist(0, 3), &[]);
    assert!(
        h.out().ends_with("p0/a2.ts\n"),
        "waits for P0's a3 within the threshold"
    );
    h.feed(8.0, P0, &e0.playlist(0, 4), &["a3.ts"]);
    h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
    assert!(h.out().ends_with("p0/a2.ts\n"));
    h.tick(9.0); // a3 announced at t = 6, threshold 3 s
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXTINF:2.000,\np0/a2.ts\n#EXTINF:2.000,\np1/a3.ts\n#EXTINF:2.000,\np0/a4.ts\n"
    );
    assert_eq!(h.switches().len(), 1, "a fill is not a switch");
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::SegmentAdded {
            from: P1,
            filled: true,
            media_sequence: 3,
            ..
        }
    )));
}

#[test]
fn pipelines_offset_by_one_segment_align_by_program_date_time() {
    let mut h = H::new(MergeConfig::default());
    // P1 numbers every segment one higher than P0: a{k+1}.ts, msn k+1.
    let e0 = Encoder::pdt(0);
    let e1 = Encoder {
        msn_offset: 1,
        ..Encoder::pdt(0)
    };
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
    h.tick(9.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:04.000Z\n#EXTINF:2.000,\np0/a2.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:06.000Z\n#EXTINF:2.000,\np0/a3.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:08.000Z\n#EXTINF:2.000,\np1/a5.ts\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
}

#[test]
fn program_date_times_differing_by_less_than_the_tolerance_still_align() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(-400));
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
    h.tick(9.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:04.000Z\n#EXTINF:2.000,\np0/a2.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:06.000Z\n#EXTINF:2.000,\np0/a3.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:07.600Z\n#EXTINF:2.000,\np1/a4.ts\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
}

#[test]
fn an_encoder_restart_on_one_pipeline_does_not_break_the_output() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    // P1 restarts at t = 10: its media sequence is back at 0.
    h.feed(10.0, P0, &e0.playlist(0, 5), &[]);
    let restarted = Encoder {
        msn_offset: 0,
        ..Encoder::plain()
    };
    h.feed(10.1, P1, &restarted.playlist(0, 0), &[]);
    h.feed(12.0, P0, &e0.playlist(0, 6), &[]);
    h.feed(12.1, P1, &restarted.playlist(0, 1), &[]);
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::InputRestarted {
            pipeline: P1,
            media_sequence: 0,
            ..
        }
    )));
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n"
    );
    // Then P0 dies: P1 is on a new timeline, so the switch is marked.
    h.feed(14.1, P1, &restarted.playlist(0, 2), &[]);
    h.tick(15.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np1/a2.ts\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, true))
    );
}

#[test]
fn a_restart_of_the_active_pipeline_switches_seamlessly_to_the_aligned_one() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    h.feed(10.0, P0, &Encoder::plain().playlist(0, 0), &[]);
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.000,\np0/a3.ts\n#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np1/a5.ts\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Restarted, false))
    );
}

#[test]
fn an_announced_segment_that_never_completes_anywhere_is_skipped_with_a_discontinuity() {
    let mut h = H::new(MergeConfig::default());
    let e0 = Encoder::plain();
    for k in 0..=2 {
        h.feed(2.0 * k as f64, P0, &e0.playlist(0, k), &[]);
    }
    h.feed(6.0, P0, &e0.playlist(0, 3), &["a3.ts"]);
    h.feed(8.0, P0, &e0.playlist(0, 4), &["a3.ts"]);
    assert!(h.out().ends_with("p0/a2.ts\n"));
    h.tick(9.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2.000,\np0/a1.ts\n#EXTINF:2.000,\np0/a2.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a4.ts\n"
    );
    assert!(h.events.iter().any(|e| matches!(e, Event::SegmentMissing { pipeline: P0, source_uri, .. } if source_uri == "a3.ts")));
}

#[test]
fn endlist_only_when_both_pipelines_ended() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 2);
    h.feed(
        6.0,
        P0,
        &format!("{}#EXT-X-ENDLIST\n", e0.playlist(0, 2)),
        &[],
    );
    assert!(!h.out().contains("ENDLIST"));
    h.feed(
        6.1,
        P1,
        &format!("{}#EXT-X-ENDLIST\n", e1.playlist(0, 2)),
        &[],
    );
    assert!(
        h.out().ends_with("p0/a2.ts\n#EXT-X-ENDLIST\n"),
        "{}",
        h.out()
    );
}

#[test]
fn a_resumed_output_never_goes_back_and_marks_its_first_segment() {
    let mut first = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut first, &e0, &e1, 0, 4);
    assert_eq!(first.m.resume_point(), (5, 0));
    // A new process; the encoders restarted too and count from 0 again.
    let mut h = H::new(MergeConfig::default());
    h.m.resume(5, 0);
    run_both(&mut h, &e0, &e1, 0, 0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a0.ts\n"
    );
    // Still in the window, the marked segment counts as if it had left.
    assert_eq!(h.m.resume_point(), (6, 1));
    run_both(&mut h, &e0, &e1, 1, 3);
    assert!(
        h.out().contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
        "{}",
        h.out()
    );
    assert_eq!(h.m.resume_point(), (9, 1));
}

/// ffmpeg ends a stream with a short last segment and ENDLIST on both
/// pipelines. The short segment (0.08 s, far less than the PDT tolerance)
/// must be output once, and the output must end, not ping-pong between two
/// ended pipelines re-adding the same moment.
#[test]
fn both_pipelines_end_on_a_short_segment_and_the_output_ends_once() {
    let mut h = H::new(MergeConfig::default());
    let text = |endlist: bool| {
        let mut t = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
        );
        for k in 0..3i64 {
            t.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,\na{k}.ts\n",
                tandem_hls::playlist::format_pdt(BASE_PDT + 2000 * k)
            ));
        }
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:0.080,\na3.ts\n",
            tandem_hls::playlist::format_pdt(BASE_PDT + 6000)
        ));
        if endlist {
            t.push_str("#EXT-X-ENDLIST\n");
        }
        t
    };
    h.feed(6.0, P0, &text(false), &[]);
    h.feed(6.0, P1, &text(false), &[]);
    h.feed(6.1, P0, &text(true), &[]);
    h.feed(6.1, P1, &text(true), &[]);
    h.tick(20.0);
    assert_eq!(
        h.out(),
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,\np0/a0.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,\np0/a1.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:2.000,\np0/a2.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:0.080,\np0/a3.ts\n#EXT-X-ENDLIST\n",
            tandem_hls::playlist::format_pdt(BASE_PDT),
            tandem_hls::playlist::format_pdt(BASE_PDT + 2000),
            tandem_hls::playlist::format_pdt(BASE_PDT + 4000),
            tandem_hls::playlist::format_pdt(BASE_PDT + 6000),
        )
    );
    assert_eq!(h.switches(), vec![(None, P0, SwitchReason::Started, false)]);
}

/// The active pipeline never completes a segment and neither has it; the
/// output skips it with a discontinuity. The other pipeline, numbered
/// identically but behind (it only has segment 0), must not hand back
/// content from before the gap, and the skipped segment arriving late must
/// not go out after the ones that followed it.
#[test]
fn a_skipped_segment_brings_back_nothing_older() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    h.feed(0.0, P0, &e.playlist(0, 0), &[]);
    h.feed(0.05, P0, &e.playlist(0, 1), &["a1.ts"]);
    h.feed(1.0, P0, &e.playlist(0, 2), &["a1.ts"]);
    h.feed(2.0, P1, &e.playlist(0, 0), &[]);
    h.feed(
        2.1,
        P1,
        &format!("{}#EXT-X-ENDLIST\n", e.playlist(0, 0)),
        &[],
    );
    h.tick(4.0);
    h.feed(4.1, P0, &e.playlist(0, 3), &["a1.ts"]);
    let ev = h.m.on_segment_stored(h.at(4.2), P0, "a1.ts");
    h.events.extend(ev);
    h.tick(6.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXTINF:2.000,\np0/a0.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a2.ts\n\
         #EXTINF:2.000,\np0/a3.ts\n"
    );
    assert!(
        h.events.iter().any(
            |e| matches!(e, Event::SegmentMissing { source_uri, .. } if source_uri == "a1.ts")
        )
    );
}

/// Playlist text for the restore scenarios (no PDT).
const HEAD: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n";

#[test]
fn a_restored_engine_continues_the_same_input_without_a_discontinuity_or_a_repeat() {
    for e in [Encoder::plain(), Encoder::pdt(0)] {
        let mut h = H::new(MergeConfig::default());
        run_both(&mut h, &e, &e, 0, 4);
        h.restart(9.0);
        // The encoders carry on; their playlists still list 2..=4, which
        // went out before the restart.
        for k in 5..=6 {
            let t = 2.0 * k as f64;
            h.feed(t, P0, &e.playlist(0, k), &[]);
            h.feed(t + 0.1, P1, &e.playlist(0, k), &[]);
        }
        let out = h.out();
        let expected = "#EXT-X-MEDIA-SEQUENCE:4\n".to_owned()
            + "#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n";
        let body = out
            .split_once("#EXT-X-MEDIA-SEQUENCE")
            .map(|(_, b)| b)
            .unwrap();
        let body = body
            .lines()
            .filter(|l| !l.starts_with("#EXT-X-PROGRAM-DATE-TIME"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        assert_eq!(format!("#EXT-X-MEDIA-SEQUENCE{body}"), expected, "{out}");
        assert!(out.starts_with(HEAD));
        assert_eq!(h.switches().len(), 1, "the restart switches nothing");
    }
}

#[test]
fn a_restored_engine_marks_segments_that_passed_while_it_was_down_with_one_discontinuity() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    h.restart(9.0);
    // Down from t = 9 to t = 20: segments 5..=7 were sent to nobody.
    h.feed(20.0, P0, &e.playlist(0, 10), &[]);
    h.feed(20.1, P1, &e.playlist(0, 10), &[]);
    assert_eq!(
        h.out(),
        format!(
            "{HEAD}#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a8.ts\n#EXTINF:2.000,\np0/a9.ts\n#EXTINF:2.000,\np0/a10.ts\n"
        )
    );
    h.feed(22.0, P0, &e.playlist(0, 11), &[]);
    assert!(
        h.out().ends_with("p0/a10.ts\n#EXTINF:2.000,\np0/a11.ts\n"),
        "{}",
        h.out()
    );
    assert!(
        h.out().contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
        "{}",
        h.out()
    );
}

#[test]
fn a_restored_engine_sees_encoders_that_restarted_while_it_was_down() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    h.restart(9.0);
    // Both encoders restarted meanwhile and count from 0 again, with the
    // same file names: what they list now is new content.
    h.feed(9.5, P0, &e.playlist(0, 1), &[]);
    h.feed(9.6, P1, &e.playlist(0, 1), &[]);
    assert_eq!(
        h.out(),
        format!(
            "{HEAD}#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.000,\np0/a4.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a0.ts\n#EXTINF:2.000,\np0/a1.ts\n"
        )
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::InputRestarted { pipeline: P0, .. }))
    );
}

#[test]
fn a_restored_engine_switches_to_the_standby_only_after_the_loss_threshold() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    h.restart(9.0);
    // Only pipeline 1 reconnects; pipeline 0 counts as advancing at the
    // restart, so the output waits 1.5 target durations from there.
    h.feed(10.1, P1, &e.playlist(0, 5), &[]);
    h.tick(11.9);
    assert!(h.out().ends_with("p0/a4.ts\n"), "{}", h.out());
    h.tick(12.0);
    assert_eq!(
        h.out(),
        format!(
            "{HEAD}#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2.000,\np0/a3.ts\n#EXTINF:2.000,\np0/a4.ts\n#EXTINF:2.000,\np1/a5.ts\n"
        )
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
}

/// After a restore every pipeline re-announces segments from before it,
/// as if new. Those that went out before must not go out again, even from
/// a pipeline on another timeline, where arrival order is no guide.
#[test]
fn a_restored_engine_never_sends_out_again_what_went_out_before() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    // P1's encoder restarts (c0.ts, media sequence 0); P0 stalls; the
    // output moves to P1's new timeline.
    let restarted = |k: u64| {
        let mut t = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n".to_owned();
        for i in 0..=k {
            t.push_str(&format!("#EXTINF:2.000,\nc{i}.ts\n"));
        }
        t
    };
    h.feed(9.0, P1, &restarted(0), &[]);
    h.tick(11.0);
    h.feed(11.5, P1, &restarted(1), &[]);
    // P0 is back with its old numbering (an outage, not a restart).
    h.feed(12.0, P0, &e.playlist(0, 5), &[]);
    assert!(
        h.out().ends_with("p1/c0.ts\n#EXTINF:2.000,\np1/c1.ts\n"),
        "{}",
        h.out()
    );
    h.restart(12.5);
    // P0 lists a4 (out before at position 4), a5, a6; P1 is gone.
    h.feed(13.0, P0, &e.playlist(0, 6), &[]);
    h.tick(15.5);
    assert_eq!(
        h.out(),
        format!(
            "{HEAD}#EXT-X-MEDIA-SEQUENCE:6\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:2.000,\np1/c1.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\np0/a5.ts\n#EXTINF:2.000,\np0/a6.ts\n"
        )
    );
}

/// A saved state read from disk may be damaged: restoring it either fails
/// with a typed error or gives an engine that keeps working.
#[test]
fn a_damaged_saved_state_is_refused_or_harmless() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    let saved = h.m.save();
    let mut gapped = saved.clone();
    gapped.segments.remove(1);
    assert!(RenditionMerge::restore(MergeConfig::default(), &gapped, h.at(9.0)).is_err());
    let mut bad_pipeline = saved.clone();
    bad_pipeline.segments[0].from = 7;
    assert!(RenditionMerge::restore(MergeConfig::default(), &bad_pipeline, h.at(9.0)).is_err());
    let mut newer = saved.clone();
    newer.version = 99;
    assert!(RenditionMerge::restore(MergeConfig::default(), &newer, h.at(9.0)).is_err());
    let mut zero = saved.clone();
    zero.target_duration = Some(0);
    assert!(RenditionMerge::restore(MergeConfig::default(), &zero, h.at(9.0)).is_err());
    let mut extreme = saved;
    extreme.inputs[0].offset = Some(i64::MIN);
    extreme.inputs[1].offset = Some(i64::MAX);
    extreme.window = usize::MAX;
    h.m = RenditionMerge::restore(MergeConfig::default(), &extreme, h.at(9.0)).unwrap();
    for k in 5..=8 {
        let t = 2.0 * k as f64;
        h.feed(t + 9.0, P0, &e.playlist(0, k), &[]);
        h.feed(t + 9.1, P1, &e.playlist(0, k), &[]);
        h.tick(t + 10.0);
    }
    let out = parse_media(&h.out()).unwrap();
    assert!(
        out.media_sequence <= 2,
        "the window kept growing from position 2"
    );
}

/// The driver sleeps until `next_deadline`: it must name the exact instant
/// the next decision falls due, and nothing once the output ended.
#[test]
fn the_next_deadline_is_the_instant_the_next_decision_falls_due() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    // P0 advanced last at 8.0, P1 at 8.1: P0's loss comes first.
    assert_eq!(h.m.next_deadline(), Some(h.at(11.0)));
    h.feed(10.1, P1, &e.playlist(0, 5), &[]);
    assert_eq!(h.m.next_deadline(), Some(h.at(11.0)));
    h.tick(11.0);
    assert!(h.out().ends_with("p1/a5.ts\n"), "{}", h.out());
    assert_eq!(h.m.next_deadline(), Some(h.at(13.1)), "P1's own loss");
    // An announced segment that is not yet whole: due at its threshold,
    // before P1's advance deadline from the same playlist's later time.
    h.feed(12.1, P1, &e.playlist(0, 6), &["a6.ts"]);
    h.tick(12.5);
    assert_eq!(h.m.next_deadline(), Some(h.at(15.1)));
    // It stays due at its own threshold after the pipeline moved on.
    h.feed(14.1, P1, &e.playlist(0, 7), &["a6.ts"]);
    assert_eq!(h.m.next_deadline(), Some(h.at(15.1)));
    let ev = h.m.stop(h.at(15.0));
    assert!(matches!(ev.as_slice(), [Event::Ended { .. }]), "{ev:?}");
    assert!(h.m.stop(h.at(15.5)).is_empty(), "stopping twice ends once");
    assert_eq!(h.m.next_deadline(), None, "an ended output has no deadline");
    assert!(h.out().ends_with("#EXT-X-ENDLIST\n"), "{}", h.out());
}

#[test]
fn program_date_times_differing_by_nearly_the_tolerance_still_align() {
    let mut h = H::new(MergeConfig::default());
    // 0.9 s apart; the tolerance is half of the 2 s target duration.
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(-900));
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
    h.tick(9.0);
    assert!(
        h.out().ends_with(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:07.100Z\n#EXTINF:2.000,\np1/a4.ts\n"
        ),
        "{}",
        h.out()
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
}

/// A playlist published again unchanged (an encoder retrying an upload, or
/// re-sending after a reconnect) is not an encoder restart, before or
/// after a restore.
#[test]
fn the_same_playlist_published_twice_is_not_a_restart() {
    let mut h = H::new(MergeConfig::default());
    let e = Encoder::plain();
    run_both(&mut h, &e, &e, 0, 4);
    let before = h.out();
    h.feed(8.5, P0, &e.playlist(0, 4), &[]);
    h.restart(9.0);
    h.feed(9.5, P0, &e.playlist(0, 4), &[]);
    h.feed(9.6, P1, &e.playlist(0, 4), &[]);
    assert_eq!(h.out(), before);
    assert!(
        !h.events
            .iter()
            .any(|e| matches!(e, Event::InputRestarted { .. })),
        "{:?}",
        h.events
    );
    h.feed(10.0, P0, &e.playlist(0, 5), &[]);
    assert!(
        h.out().ends_with("p0/a4.ts\n#EXTINF:2.000,\np0/a5.ts\n"),
        "{}",
        h.out()
    );
}

#[test]
fn a_restarted_pipeline_whose_date_times_overlap_the_output_joins_after_its_last_moment() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::pdt(0), Encoder::pdt(0));
    run_both(&mut h, &e0, &e1, 0, 4);
    // P1's encoder restarted: numbering from 0 again (another timeline),
    // its first segments carrying moments 3 and 4, which already went out.
    let restarted = Encoder::pdt(6000);
    h.feed(9.0, P1, &restarted.playlist(0, 2), &[]);
    // P0 dies after a4 (moment 4): P1 takes over on its own timeline.
    h.tick(12.0);
    let out = parse_media(&h.out()).unwrap();
    let uris: Vec<&str> = out.segments.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, ["p0/a3.ts", "p0/a4.ts", "p1/a2.ts"]);
    // The switch is marked, and the output's date-times go forward: the
    // restarted encoder's moment 5 follows moment 4.
    let last = &out.segments[2];
    assert!(last.discontinuity);
    assert_eq!(last.program_date_time, Some(BASE_PDT + 10_000));
    assert!(
        out.segments
            .windows(2)
            .all(|w| w[1].program_date_time > w[0].program_date_time)
    );
}

#[test]
fn a_preferred_pipeline_that_is_back_falls_due_when_its_hold_down_ends() {
    let mut h = H::new(MergeConfig {
        prefer: Some(P0),
        hold_down: Duration::from_secs(1),
        ..MergeConfig::default()
    });
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 3);
    h.feed(8.1, P1, &e1.playlist(0, 4), &[]);
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    assert!(h.out().ends_with("p1/a5.ts\n"), "{}", h.out());
    // P0 is back at 12: its hold-down ends at 13, before either loss
    // threshold (P1's at 13.1, P0's at 15).
    h.feed(12.0, P0, &e0.playlist(0, 6), &[]);
    assert_eq!(h.m.next_deadline(), Some(h.at(13.0)));
    // What the status page shows as each input's last advance.
    assert_eq!(h.m.last_advance(P0), Some(h.at(12.0)));
    assert_eq!(h.m.last_advance(P1), Some(h.at(10.1)));
}

#[test]
fn a_segment_the_other_pipeline_listed_only_briefly_still_fills_a_gap() {
    // Encoders whose playlists list only their newest segment: the other
    // pipeline's copy has left its playlist by the time it is needed.
    let e = Encoder {
        window: 1,
        ..Encoder::plain()
    };
    let mut h = H::new(MergeConfig::default());
    run_both(&mut h, &e, &e, 0, 3);
    h.feed(8.0, P0, &e.playlist(0, 4), &["a4.ts"]);
    h.feed(8.1, P1, &e.playlist(0, 4), &[]);
    h.feed(10.0, P0, &e.playlist(0, 5), &[]);
    h.feed(10.1, P1, &e.playlist(0, 5), &[]);
    h.tick(11.0);
    let added: Vec<(u64, Pipeline, String, bool)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SegmentAdded {
                media_sequence,
                from,
                source_uri,
                filled,
                ..
            } => Some((*media_sequence, *from, source_uri.clone(), *filled)),
            _ => None,
        })
        .skip(4)
        .collect();
    assert_eq!(
        added,
        [
            (4, P1, "a4.ts".into(), true),
            (5, P0, "a5.ts".into(), false)
        ]
    );
    assert!(!h.out().contains("DISCONTINUITY"), "{}", h.out());
}

/// Both encoders restart, 2 s apart, each counting from 0 with the same
/// names: their new numbers do not name the same moments, so the engine
/// keeps no relation between them and a switch is marked.
#[test]
fn after_both_encoders_restart_apart_a_switch_between_them_is_marked() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::plain(), Encoder::plain());
    run_both(&mut h, &e0, &e1, 0, 4);
    let r = Encoder::plain();
    h.feed(10.0, P0, &e0.playlist(0, 5), &[]);
    h.feed(10.1, P1, &r.playlist(0, 0), &[]);
    h.feed(12.0, P0, &r.playlist(0, 0), &[]);
    h.feed(12.1, P1, &r.playlist(0, 1), &[]);
    h.feed(14.0, P0, &r.playlist(0, 1), &[]);
    h.feed(14.1, P1, &r.playlist(0, 2), &[]);
    // P0 dies after its a1.
    h.feed(16.1, P1, &r.playlist(0, 3), &[]);
    h.tick(17.0);
    assert_eq!(h.switches().last().map(|s| (s.1, s.3)), Some((P1, true)));
}
