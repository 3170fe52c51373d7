//! Playlists no encoder should send, but a network peer can: numbers at the
//! edges of their types. The parser refuses what is out of range with a
//! typed error; whatever it accepts, at the very edge of its ranges, the
//! engine runs without a panic (a panic stops a channel's output) and keeps
//! its invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::H;
use tandem_core::Pipeline;
use tandem_hls::MergeConfig;
use tandem_hls::playlist::{PlaylistError, parse_media};

fn hostile(head: &str, seg: &str) -> String {
    format!("#EXTM3U\n{head}\n{seg}\na.ts\n{seg}\nb.ts\n")
}

#[test]
fn numbers_beyond_their_range_are_refused() {
    for (head, seg, tag) in [
        (
            "#EXT-X-TARGETDURATION:18446744073709551615",
            "#EXTINF:2.0,",
            "#EXT-X-TARGETDURATION",
        ),
        (
            "#EXT-X-TARGETDURATION:86401",
            "#EXTINF:2.0,",
            "#EXT-X-TARGETDURATION",
        ),
        (
            "#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615",
            "#EXTINF:2.0,",
            "#EXT-X-MEDIA-SEQUENCE",
        ),
        (
            "#EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY-SEQUENCE:4611686018427387905",
            "#EXTINF:2.0,",
            "#EXT-X-DISCONTINUITY-SEQUENCE",
        ),
        ("#EXT-X-TARGETDURATION:2", "#EXTINF:1e300,", "#EXTINF"),
        ("#EXT-X-TARGETDURATION:2", "#EXTINF:-5,", "#EXTINF"),
        ("#EXT-X-TARGETDURATION:2", "#EXTINF:inf,", "#EXTINF"),
    ] {
        match parse_media(&hostile(head, seg)) {
            Err(PlaylistError::BadValue { tag: t, .. }) => assert_eq!(t, tag, "{head} {seg}"),
            other => panic!("{head} {seg}: {other:?}"),
        }
    }
}

#[test]
fn numbers_at_the_edge_of_their_range_do_not_stop_the_engine() {
    let cases = [
        (
            "#EXT-X-TARGETDURATION:86400\n#EXT-X-MEDIA-SEQUENCE:0",
            "#EXTINF:86400,",
        ),
        (
            "#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4611686018427387904",
            "#EXTINF:2.0,",
        ),
        (
            "#EXT-X-TARGETDURATION:86400\n#EXT-X-MEDIA-SEQUENCE:4611686018427387904\n#EXT-X-PROGRAM-DATE-TIME:9999-12-31T23:59:59.999Z",
            "#EXTINF:86400,",
        ),
        (
            "#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PROGRAM-DATE-TIME:0000-01-01T00:00:00.000Z",
            "#EXTINF:0,",
        ),
        (
            "#EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY-SEQUENCE:4611686018427387904",
            "#EXT-X-DISCONTINUITY\n#EXTINF:2.0,",
        ),
    ];
    for (head, seg) in cases {
        let text = hostile(head, seg);
        let mut h = H::new(MergeConfig::default());
        h.feed(0.0, Pipeline::P0, &text, &[]);
        h.feed(0.5, Pipeline::P1, &text, &[]);
        for t in [1.0, 10.0, 1e6] {
            h.tick(t);
        }
        h.m.check_invariants();
        let out = h.out();
        assert!(out.contains("a.ts"), "{head}: {out}");
    }
}
