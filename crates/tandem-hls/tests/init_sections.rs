//! fMP4 (CMAF) and encrypted inputs: `EXT-X-MAP` and `EXT-X-KEY` apply to
//! every segment after them (RFC 8216 §4.3.2.4, §4.3.2.5), and an encoder
//! names them once, above the first segment of its playlist. The output
//! takes each segment while it is the newest of its playlist, so it must
//! name them itself: above its first segment in every window, and again
//! where they change, never twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tandem_core::Pipeline::{P0, P1};
use tandem_hls::{MergeConfig, RenditionMerge, SavedMerge, SwitchReason};

const MAP: &str = "#EXT-X-MAP:URI=\"init.mp4\"";

fn key(n: u64) -> String {
    format!("#EXT-X-KEY:METHOD=AES-128,URI=\"k{n}.key\"")
}

/// The segment counter of an output URI `p{x}/a{k}.m4s`.
fn counter(uri: &str) -> u64 {
    uri.split_once("/a")
        .and_then(|(_, k)| k.strip_suffix(".m4s"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Every segment of the output has `map` in effect, and the MAP is named
/// once, above the first segment.
fn assert_map_once_on_top(out: &str, map: &str) {
    let fx = in_effect(out);
    assert!(!fx.is_empty(), "{out}");
    for (uri, m, _) in &fx {
        assert_eq!(m.as_deref(), Some(map), "{uri} in\n{out}");
    }
    assert_eq!(out.matches("#EXT-X-MAP:").count(), 1, "{out}");
}

#[test]
fn every_window_names_the_init_section_above_its_first_segment_after_the_first_slid_out() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::fmp4("init.mp4"), Encoder::fmp4("init.mp4"));
    // Five windows of three segments each.
    for k in 0..=15 {
        run_both(&mut h, &e0, &e1, k, k);
        assert_map_once_on_top(&h.out(), MAP);
    }
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:13\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\np0/a13.m4s\n#EXTINF:2.000,\np0/a14.m4s\n#EXTINF:2.000,\np0/a15.m4s\n"
    );
}

#[test]
fn a_switch_to_a_pipeline_with_another_init_section_names_it_at_the_switch() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::fmp4("init0.mp4"), Encoder::fmp4("init1.mp4"));
    run_both(&mut h, &e0, &e1, 0, 4);
    // P0 dies after segment 4; the output switches seamlessly at t = 11.
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    h.tick(11.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.000,\np0/a3.m4s\n#EXTINF:2.000,\np0/a4.m4s\n#EXT-X-MAP:URI=\"init1.mp4\"\n#EXTINF:2.000,\np1/a5.m4s\n"
    );
    assert_eq!(
        h.switches().last(),
        Some(&(Some(P0), P1, SwitchReason::Stalled, false))
    );
    for k in 6..=9 {
        h.feed(2.0 * k as f64 + 0.1, P1, &e1.playlist(0, k), &[]);
        let out = h.out();
        let fx = in_effect(&out);
        for (uri, m, _) in &fx {
            let want = if uri.starts_with("p0/") {
                "#EXT-X-MAP:URI=\"init0.mp4\""
            } else {
                "#EXT-X-MAP:URI=\"init1.mp4\""
            };
            assert_eq!(m.as_deref(), Some(want), "{uri} in\n{out}");
        }
    }
    assert_map_once_on_top(&h.out(), "#EXT-X-MAP:URI=\"init1.mp4\"");
}

#[test]
fn a_seamless_switch_between_pipelines_with_the_same_init_section_names_it_once() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::fmp4("init.mp4"), Encoder::fmp4("init.mp4"));
    run_both(&mut h, &e0, &e1, 0, 4);
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    h.tick(11.0);
    assert!(h.out().ends_with("p1/a5.m4s\n"), "{}", h.out());
    assert_map_once_on_top(&h.out(), MAP);
}

#[test]
fn a_switch_to_a_restarted_encoder_names_the_init_section_again_after_the_discontinuity() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::fmp4("init.mp4"), Encoder::fmp4("init.mp4"));
    run_both(&mut h, &e0, &e1, 0, 4);
    // P1 restarts at t = 10 and rewrites init.mp4 (same name, new
    // timestamps); P0 dies after segment 6.
    let restarted = Encoder::fmp4("init.mp4");
    h.feed(10.0, P0, &e0.playlist(0, 5), &[]);
    h.feed(10.1, P1, &restarted.playlist(0, 0), &[]);
    h.feed(12.0, P0, &e0.playlist(0, 6), &[]);
    h.feed(12.1, P1, &restarted.playlist(0, 1), &[]);
    h.feed(14.1, P1, &restarted.playlist(0, 2), &[]);
    h.tick(15.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\np0/a5.m4s\n#EXTINF:2.000,\np0/a6.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\np1/a2.m4s\n"
    );
}

#[test]
fn a_rotating_key_stays_in_effect_for_each_segment_across_windows_and_a_switch() {
    let mut h = H::new(MergeConfig::default());
    let enc = || Encoder {
        key_every: Some(2),
        ..Encoder::fmp4("init.mp4")
    };
    let (e0, e1) = (enc(), enc());
    let check = |h: &H| {
        let out = h.out();
        for (uri, m, k) in in_effect(&out) {
            assert_eq!(m.as_deref(), Some(MAP), "{uri} in\n{out}");
            assert_eq!(k, Some(key(counter(&uri) / 2)), "{uri} in\n{out}");
        }
        assert_eq!(out.matches("#EXT-X-MAP:").count(), 1, "{out}");
    };
    for k in 0..=5 {
        run_both(&mut h, &e0, &e1, k, k);
        check(&h);
    }
    // a3's key was named above a2 only; a4 carries its own.
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k1.key\"\n#EXTINF:2.000,\np0/a3.m4s\n#EXT-X-KEY:METHOD=AES-128,URI=\"k2.key\"\n#EXTINF:2.000,\np0/a4.m4s\n#EXTINF:2.000,\np0/a5.m4s\n"
    );
    // P0 dies; P1 carries on through further rotations.
    for k in 6..=11 {
        h.feed(2.0 * k as f64 + 0.1, P1, &e1.playlist(0, k), &[]);
        h.tick(2.0 * k as f64 + 1.0);
        check(&h);
    }
    assert!(h.out().ends_with("p1/a11.m4s\n"), "{}", h.out());
}

#[test]
fn a_switch_from_an_encrypted_pipeline_to_a_clear_one_ends_encryption() {
    let mut h = H::new(MergeConfig::default());
    let e0 = Encoder {
        key_every: Some(100),
        ..Encoder::fmp4("init.mp4")
    };
    let e1 = Encoder::fmp4("init.mp4");
    run_both(&mut h, &e0, &e1, 0, 4);
    h.feed(10.1, P1, &e1.playlist(0, 5), &[]);
    h.tick(11.0);
    assert_eq!(
        h.out(),
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k0.key\"\n#EXTINF:2.000,\np0/a3.m4s\n#EXTINF:2.000,\np0/a4.m4s\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:2.000,\np1/a5.m4s\n"
    );
}

#[test]
fn a_restarted_process_keeps_the_init_section_and_key_in_effect() {
    let mut h = H::new(MergeConfig::default());
    let enc = || Encoder {
        key_every: Some(2),
        ..Encoder::fmp4("init.mp4")
    };
    let (e0, e1) = (enc(), enc());
    run_both(&mut h, &e0, &e1, 0, 4);
    // `restart` checks the restored engine serves the same playlist.
    h.restart(9.0);
    for k in 5..=12 {
        run_both(&mut h, &e0, &e1, k, k);
        let out = h.out();
        for (uri, m, k) in in_effect(&out) {
            assert_eq!(m.as_deref(), Some(MAP), "{uri} in\n{out}");
            assert_eq!(k, Some(key(counter(&uri) / 2)), "{uri} in\n{out}");
        }
        if k == 8 {
            h.restart(17.0);
        }
    }
}

#[test]
fn a_state_saved_before_segments_recorded_their_init_section_still_loads() {
    let mut h = H::new(MergeConfig::default());
    let (e0, e1) = (Encoder::fmp4("init.mp4"), Encoder::fmp4("init.mp4"));
    run_both(&mut h, &e0, &e1, 0, 2);
    let before = h.out();
    // What an earlier version wrote: no record of what was in effect.
    let mut json = serde_json::to_value(h.m.save()).unwrap();
    json.as_object_mut().unwrap().remove("in_effect");
    for s in json["segments"].as_array_mut().unwrap() {
        let s = s.as_object_mut().unwrap();
        assert!(s.remove("map").is_some());
        s.remove("keys");
    }
    let saved: SavedMerge = serde_json::from_value(json).unwrap();
    h.m = RenditionMerge::restore(MergeConfig::default(), &saved, h.at(5.0)).unwrap();
    assert_eq!(h.out(), before);
    // The MAP the window's first segment carried stays in effect for the
    // segments after it once that one leaves.
    for k in 3..=8 {
        run_both(&mut h, &e0, &e1, k, k);
        assert_map_once_on_top(&h.out(), MAP);
    }
}
