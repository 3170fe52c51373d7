//! Properties over generated input: no input panics the reader, and how a
//! body is cut into pieces never changes what comes out.

mod support;

use proptest::prelude::*;
use support::*;
use tandem_mp4::{BoxReader, BoxReaderConfig};

/// Cuts `data` at the given fractions.
fn cut<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut prev = 0;
    for a in at {
        pieces.push(&data[prev..a]);
        prev = a;
    }
    pieces.push(&data[prev..]);
    pieces
}

fn small_cfg() -> BoxReaderConfig {
    BoxReaderConfig { max_box_size: 512 }
}

/// Bytes that look like boxes often enough to get past the first header.
fn boxy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(any::<u8>(), 0..600).prop_map(|v| cat(&[&ftyp(), &v])),
        (prop::collection::vec(any::<u8>(), 0..200), 0usize..400).prop_map(|(noise, at)| {
            let mut s = push_stream(&[(1, 0, 10), (2, 0, 10), (1, 10, 10)]);
            let at = at % s.len();
            let end = (at + noise.len()).min(s.len());
            s[at..end].copy_from_slice(&noise[..end - at]);
            s
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_in_any_pieces_give_the_same_items_and_never_panic(
        data in boxy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        for cfg in [BoxReaderConfig::default(), small_cfg()] {
            let whole = read_pieces(cfg, [data.as_slice()]);
            let pieces = read_pieces(cfg, cut(&data, &cuts));
            prop_assert_eq!(&pieces, &whole);
            let bytes = read_pieces(cfg, data.chunks(1));
            prop_assert_eq!(&bytes, &whole);
        }
    }

    #[test]
    fn the_box_reader_hands_out_the_body_exactly_or_stops_with_an_error(
        data in boxy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut r = BoxReader::new(small_cfg());
        let mut out = Vec::new();
        let mut err = None;
        for p in cut(&data, &cuts) {
            r.push(p);
            prop_assert!(r.buffered_len() <= 512 + p.len());
            loop {
                match r.next_box() {
                    Ok(Some(b)) => out.extend_from_slice(&b.bytes),
                    Ok(None) => break,
                    Err(e) => { err = Some(e); break; }
                }
            }
        }
        r.end();
        while err.is_none() {
            match r.next_box() {
                Ok(Some(b)) => out.extend_from_slice(&b.bytes),
                Ok(None) => break,
                Err(e) => err = Some(e),
            }
        }
        // What came out is a prefix of the body; all of it unless an error.
        prop_assert_eq!(&data[..out.len()], out.as_slice());
        if err.is_none() {
            prop_assert_eq!(out.len(), data.len());
        }
    }
}
