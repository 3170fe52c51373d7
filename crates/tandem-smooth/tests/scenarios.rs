//! Redundancy scenarios on the Smooth engine with an injected clock: two
//! encoders push 2 s video fragments (`tfxd` times `tk(k)`); each test
//! checks which pipeline's copy the output serves for each time, the
//! events, and the manifest where the user would look at it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{D, H, T0, tk, video, vkey};
use tandem_core::{InputState, Pipeline};
use tandem_smooth::{Event, RejectReason, SmoothConfig, SmoothError, SmoothMerge, StreamStart};

fn both_started() -> H {
    let mut h = H::new(SmoothConfig::default());
    h.start(0.0, 0, None);
    h.start(0.0, 1, None);
    h
}

#[test]
fn the_second_copy_of_a_time_is_a_duplicate_and_the_first_complete_one_is_served() {
    let mut h = both_started();
    h.frag(2.0, 0, 0);
    // The output waits for the other encoder's first fragment: it might
    // start earlier.
    assert_eq!(h.out(), []);
    let ev = h.frag(2.1, 1, 0);
    assert!(ev.contains(&Event::Duplicate {
        at: h.at(2.1),
        track: vkey(),
        time: tk(0),
        pipeline: Pipeline::P1,
        storage_key: format!("p1/video/{}", tk(0)),
        kept: format!("p0/video/{}", tk(0)),
    }));
    h.frag(4.0, 0, 1);
    h.frag(4.1, 1, 1);
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0)]);
    let c = h.m.counters();
    assert_eq!((c.received, c.served, c.duplicates), ([2, 2], [2, 0], 2));
    assert_eq!((c.fills, c.gaps), (0, 0));
    assert_eq!(
        h.m.fragment(1_000_000, "video", tk(1)).unwrap().storage_key,
        format!("p0/video/{}", tk(1))
    );
}

#[test]
fn a_fragment_one_encoder_never_sent_is_filled_from_the_other() {
    let mut h = both_started();
    // P1 runs half a second behind P0 (MediaLive's sendDelayMs); P0 never
    // sends fragment 2.
    h.frag(2.0, 0, 0);
    h.frag(2.5, 1, 0);
    h.frag(4.0, 0, 1);
    h.frag(4.5, 1, 1);
    h.frag(6.5, 1, 2);
    h.frag(8.0, 0, 3);
    h.frag(8.5, 1, 3);
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0), (tk(2), 1), (tk(3), 0)]);
    assert_eq!(
        h.seen(|e| matches!(e, Event::Filled { .. })),
        [Event::Filled {
            at: h.at(8.0),
            track: vkey(),
            time: tk(2),
            from: Pipeline::P1
        }]
    );
    assert!(h.seen(|e| matches!(e, Event::Gap { .. })).is_empty());
}

#[test]
fn a_gap_is_reported_only_when_both_encoders_missed_the_fragment() {
    let mut h = both_started();
    for k in [0, 1] {
        h.frag(2.0 * k as f64 + 2.0, 0, k);
        h.frag(2.0 * k as f64 + 2.2, 1, k);
    }
    // Both skip fragment 2 (and send 3 early). P0's fragment 3 waits: P1
    // may still send 2.
    h.frag(6.5, 0, 3);
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0)]);
    assert!(h.seen(|e| matches!(e, Event::Gap { .. })).is_empty());
    // P1 moved past 2 without it: nobody has it.
    let ev = h.frag(6.7, 1, 3);
    assert!(ev.contains(&Event::Gap {
        at: h.at(6.7),
        track: vkey(),
        from: tk(2),
        to: tk(3)
    }));
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0), (tk(3), 0)]);
    assert_eq!(h.m.counters().gaps, 1);
    let manifest = h.m.client_manifest().unwrap();
    assert!(
        manifest.contains(&format!(
            "<c t=\"{}\" d=\"{D}\" r=\"2\"/>\n    <c t=\"{}\" d=\"{D}\"/>",
            tk(0),
            tk(3)
        )),
        "{manifest}"
    );
}

#[test]
fn a_hole_waits_for_a_silent_encoder_only_until_it_is_lost() {
    let mut h = both_started();
    h.frag(2.0, 0, 0);
    h.frag(2.5, 1, 0);
    h.frag(4.0, 0, 1);
    h.frag(4.5, 1, 1);
    // P0 skips 2; P1 falls silent after 1.
    h.frag(6.0, 0, 3);
    assert_eq!(h.out().len(), 2);
    let lost_at = h.at(4.5) + Duration::from_secs(3);
    assert_eq!(h.m.next_deadline(), Some(lost_at));
    let ev = h.m.on_tick(lost_at);
    h.m.check_invariants();
    assert!(ev.contains(&Event::InputStateChanged {
        at: lost_at,
        pipeline: Pipeline::P1,
        from: InputState::Receiving,
        to: InputState::Lost,
        inputs: [InputState::Receiving, InputState::Lost],
    }));
    assert!(ev.contains(&Event::Gap {
        at: lost_at,
        track: vkey(),
        from: tk(2),
        to: tk(3)
    }));
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0), (tk(3), 0)]);
    // From now on P0 alone: each fragment goes out at once, as a fill.
    let ev = h.frag(8.0, 0, 4);
    assert!(ev.contains(&Event::Filled {
        at: h.at(8.0),
        track: vkey(),
        time: tk(4),
        from: Pipeline::P0
    }));
    assert_eq!(h.out().last(), Some(&(tk(4), 0)));
}

#[test]
fn an_encoder_that_reconnects_and_resends_from_its_cache_continues() {
    let mut h = both_started();
    h.frag(2.0, 0, 0);
    h.frag(2.2, 1, 0);
    h.frag(4.0, 0, 1);
    h.frag(4.2, 1, 1);
    h.drop_conn(5.0, 0);
    h.start(5.5, 0, None);
    // MediaLive resends its cache after connectionRetryInterval.
    let ev = h.frag(5.6, 0, 1);
    assert!(matches!(
        ev[..],
        [Event::Duplicate { pipeline: Pipeline::P0, time, .. }] if time == tk(1)
    ));
    h.frag(6.0, 0, 2);
    h.frag(6.2, 1, 2);
    assert_eq!(h.out(), [(tk(0), 0), (tk(1), 0), (tk(2), 0)]);
    assert!(h.seen(|e| matches!(e, Event::Restarted { .. })).is_empty());
    assert_eq!(h.m.counters().duplicates, 4);
}

#[test]
fn a_restarted_encoder_whose_times_jump_back_merges_only_past_the_output_end() {
    let mut h = both_started();
    for k in 0..4 {
        h.frag(2.0 * k as f64 + 2.0, 0, k);
        h.frag(2.0 * k as f64 + 2.2, 1, k);
    }
    // P1 falls silent; P0's encoder restarts with a clock half a fragment
    // off, three fragments back.
    h.drop_conn(9.0, 0);
    h.start(9.5, 0, None);
    let back = tk(1) + D / 2;
    let ev = h.frag_at(10.0, 0, "s1", vkey(), back, D);
    assert!(ev.contains(&Event::Restarted {
        at: h.at(10.0),
        pipeline: Pipeline::P0,
        track: vkey(),
        time: back,
        last: tk(3)
    }));
    h.frag_at(12.0, 0, "s1", vkey(), back + D, D);
    h.frag_at(14.0, 0, "s1", vkey(), back + 2 * D, D);
    assert_eq!(h.out().len(), 4, "nothing behind the output's end goes out");
    let behind = h.seen(|e| {
        matches!(
            e,
            Event::Rejected {
                reason: RejectReason::BehindOutput,
                ..
            }
        )
    });
    assert_eq!(behind.len(), 3);
    // Past the output's end (tk(4)): merged again, across the half
    // fragment nobody has.
    let past = back + 3 * D;
    let ev = h.frag_at(16.0, 0, "s1", vkey(), past, D);
    assert!(ev.contains(&Event::Gap {
        at: h.at(16.0),
        track: vkey(),
        from: tk(4),
        to: past
    }));
    assert_eq!(
        h.out(),
        [(tk(0), 0), (tk(1), 0), (tk(2), 0), (tk(3), 0), (past, 0)]
    );
    assert_eq!(h.seen(|e| matches!(e, Event::Restarted { .. })).len(), 1);
}

#[test]
fn a_new_events_id_starts_a_new_presentation_and_refuses_the_old_one() {
    let mut h = H::new(SmoothConfig::default());
    h.start(0.0, 0, Some("1585232182"));
    h.start(0.0, 1, Some("1585232182"));
    h.frag(2.0, 0, 0);
    h.frag(2.2, 1, 0);
    h.frag(4.0, 0, 1);
    assert_eq!(h.out().len(), 2);
    let ev = h.start(5.0, 0, Some("1585239999"));
    assert!(ev.contains(&Event::NewPresentation {
        at: h.at(5.0),
        presentation: 1,
        event: Some("1585239999".into()),
        previous: Some("1585232182".into()),
    }));
    let removed = ev
        .iter()
        .filter(|e| matches!(e, Event::FragmentRemoved { .. }))
        .count();
    assert_eq!(
        removed, 2,
        "the old presentation's fragments are given back"
    );
    assert_eq!(h.out(), []);
    assert_eq!(h.m.presentation(), (1, Some("1585239999")));
    // The new event's encoder starts its times again from 0.
    h.frag_at(6.0, 0, "s1", vkey(), 0, D);
    assert_eq!(h.out(), [(0, 0)]);
    // P1 still pushes the old event: refused.
    let ev = h.frag(6.2, 1, 2);
    assert!(matches!(
        ev[..],
        [
            ..,
            Event::Rejected {
                reason: RejectReason::OldPresentation,
                ..
            }
        ]
    ));
    let old = StreamStart {
        pipeline: Pipeline::P1,
        stream: "s1".into(),
        event: Some("1585232182".into()),
        tracks: vec![video(1_000_000)],
    };
    assert!(matches!(
        h.m.on_stream_started(h.at(7.0), &old),
        Err(SmoothError::StaleEvent { .. })
    ));
    h.start(7.5, 1, Some("1585239999"));
    let ev = h.frag_at(7.6, 1, "s1", vkey(), 0, D);
    assert!(matches!(ev[..], [Event::Duplicate { .. }]));
}

#[test]
fn the_manifest_goes_from_live_to_ended_only_when_both_encoders_ended() {
    let mut h = both_started();
    h.frag(2.0, 0, 0);
    h.frag(2.2, 1, 0);
    h.frag(4.0, 0, 1);
    h.frag(4.2, 1, 1);
    h.end(5.0, 0);
    assert!(!h.m.is_ended());
    let live = h.m.client_manifest().unwrap();
    assert!(
        live.contains(
            " IsLive=\"TRUE\" LookAheadFragmentCount=\"2\" DVRWindowLength=\"18000000000\""
        ),
        "{live}"
    );
    let ev = h.end(5.5, 1);
    assert!(ev.contains(&Event::Ended { at: h.at(5.5) }));
    let done = h.m.client_manifest().unwrap();
    assert!(
        done.contains(
            "MinorVersion=\"2\" TimeScale=\"10000000\" Duration=\"40000000\" IsLive=\"FALSE\">"
        ),
        "{done}"
    );
    assert!(!done.contains("DVRWindowLength"));
    assert!(!done.contains("LookAheadFragmentCount"));
    let ev = h.frag(6.0, 0, 2);
    assert!(matches!(
        ev[..],
        [
            ..,
            Event::Rejected {
                reason: RejectReason::Ended,
                ..
            }
        ]
    ));
    assert_eq!(h.out().len(), 2);
}

#[test]
fn one_encoder_ending_while_the_other_was_killed_keeps_the_output_live() {
    let mut h = both_started();
    h.frag(2.0, 0, 0);
    h.frag(2.2, 1, 0);
    h.drop_conn(3.0, 1);
    h.frag(4.0, 0, 1);
    h.end(5.0, 0);
    h.tick(60.0);
    assert!(!h.m.is_ended());
    assert_eq!(h.m.input_states(), [InputState::Lost, InputState::Lost]);
    assert!(h.m.client_manifest().unwrap().contains("IsLive=\"TRUE\""));
    h.m.stop(h.at(61.0));
    assert!(h.m.client_manifest().unwrap().contains("IsLive=\"FALSE\""));
}

#[test]
fn the_dvr_window_bounds_the_output_and_reports_what_leaves_it() {
    let mut h = H::new(SmoothConfig {
        dvr_window: Duration::from_secs(10),
        ..SmoothConfig::default()
    });
    // One encoder only: nothing to wait for.
    h.start(0.0, 0, None);
    for k in 0..8 {
        h.frag(2.0 * k as f64 + 2.0, 0, k);
    }
    // The output ends at tk(8); a fragment stays while it ends after
    // tk(8) - 10 s = tk(3).
    let kept: Vec<u64> = h.out().iter().map(|(t, _)| *t).collect();
    assert_eq!(kept, (3..8).map(tk).collect::<Vec<_>>());
    let removed: Vec<(u64, String)> = h
        .seen(|e| matches!(e, Event::FragmentRemoved { .. }))
        .into_iter()
        .map(|e| match e {
            Event::FragmentRemoved {
                time, storage_key, ..
            } => (time, storage_key),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        removed,
        (0..3)
            .map(|k| (tk(k), format!("p0/video/{}", tk(k))))
            .collect::<Vec<_>>()
    );
    assert!(h.m.fragment(1_000_000, "video", tk(2)).is_none());
    let m = h.m.client_manifest().unwrap();
    assert!(m.contains("DVRWindowLength=\"100000000\""), "{m}");
    assert!(
        m.contains(&format!("<c t=\"{}\" d=\"{D}\" r=\"5\"/>", tk(3))),
        "{m}"
    );
}

#[test]
fn a_restored_engine_continues_the_output_and_takes_resends_as_duplicates() {
    let mut h = both_started();
    for k in 0..3 {
        h.frag(2.0 * k as f64 + 2.0, 0, k);
        h.frag(2.0 * k as f64 + 2.2, 1, k);
    }
    let json = serde_json::to_string(&h.m.save()).unwrap();
    let saved = serde_json::from_str(&json).unwrap();
    let before = h.out();
    h.m = SmoothMerge::restore(SmoothConfig::default(), &saved, h.at(20.0)).unwrap();
    h.m.check_invariants();
    assert_eq!(h.out(), before);
    assert_eq!(h.m.input_states(), [InputState::Idle, InputState::Idle]);
    h.start(21.0, 1, None);
    let ev = h.frag(21.1, 1, 2);
    assert!(matches!(ev[..], [Event::Duplicate { .. }]));
    h.frag(22.0, 1, 3);
    h.start(22.5, 0, None);
    h.frag(22.6, 0, 3);
    assert_eq!(h.out()[3..], [(tk(3), 1)]);
    assert_eq!(h.m.counters().received, [4, 5]);
}

#[test]
fn a_track_that_contradicts_its_stream_index_is_refused() {
    let mut h = both_started();
    let mut other = video(2_000_000);
    other.timescale = 90_000;
    let start = StreamStart {
        pipeline: Pipeline::P1,
        stream: "s2".into(),
        event: None,
        tracks: vec![other],
    };
    assert_eq!(
        h.m.on_stream_started(h.at(1.0), &start),
        Err(SmoothError::TimescaleMismatch {
            track: "video@2000000".into(),
            name: "video".into(),
            expected: 10_000_000,
            found: 90_000
        })
    );
    // A fragment for a track its push did not declare is refused.
    let ev = h.frag_at(
        2.0,
        0,
        "s1",
        tandem_smooth::TrackKey::new("video", 5),
        T0,
        D,
    );
    assert!(matches!(
        ev[..],
        [Event::Rejected {
            reason: RejectReason::UnknownTrack,
            ..
        }]
    ));
}
