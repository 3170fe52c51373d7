//! The HLS playlist parser and serializer over arbitrary text: never a
//! panic, and a round trip: what parses and serializes parses again to the
//! same model. The URI scanner and the multivariant test never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_hls::playlist::{is_multivariant, parse_media, referenced_uris};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_multivariant(text);
    let _ = referenced_uris(text, true);
    let _ = referenced_uris(text, false);
    if let Ok(pl) = parse_media(text) {
        let out = pl.serialize();
        let again = parse_media(&out)
            .unwrap_or_else(|e| panic!("a serialized playlist parses again: {e}\n{out}"));
        assert_eq!(again.segments.len(), pl.segments.len());
        assert_eq!(again.media_sequence, pl.media_sequence);
        assert_eq!(again.target_duration, pl.target_duration);
        assert_eq!(again.endlist, pl.endlist);
        for (a, b) in again.segments.iter().zip(&pl.segments) {
            assert_eq!(a.uri, b.uri);
            assert_eq!(a.discontinuity, b.discontinuity);
            assert_eq!(a.program_date_time, b.program_date_time);
            assert!((a.duration - b.duration).abs() < 1e-9);
        }
        // Serializing is stable from then on.
        assert_eq!(again.serialize(), out);
    }
});
