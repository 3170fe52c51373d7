//! The Smooth push reader and the box reader over arbitrary bytes, cut into
//! arbitrary pieces: never a panic, the same items and error however the
//! body is cut, and the items are the body's own bytes, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_mp4::{BoxReader, BoxReaderConfig, Item, SmoothError, SmoothReader};

fn read<'a>(
    cfg: BoxReaderConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Item>, Option<SmoothError>) {
    let mut r = SmoothReader::new(cfg);
    let mut items = Vec::new();
    let drain = |r: &mut SmoothReader, items: &mut Vec<Item>| loop {
        match r.pull() {
            Ok(Some(i)) => items.push(i),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    };
    for p in pieces {
        r.push(p);
        if let Some(e) = drain(&mut r, &mut items) {
            return (items, Some(e));
        }
    }
    r.end();
    let e = drain(&mut r, &mut items);
    (items, e)
}

/// Piece lengths from a generator seeded by the input itself, so a crash
/// reproduces from the input alone.
fn pieces(data: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut x = seed ^ (data.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = match x % 4 {
            0 => 1,
            1 => (x >> 8) as usize % 16 + 1,
            2 => (x >> 8) as usize % 4096 + 1,
            _ => (x >> 8) as usize % 40000 + 1,
        }
        .min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

fn item_span(item: &Item) -> (u64, &[u8]) {
    match item {
        Item::FileType { raw, .. }
        | Item::Manifest { raw, .. }
        | Item::Movie { raw, .. }
        | Item::End { raw }
        | Item::Skipped { raw } => (raw.header.offset, &raw.bytes),
        Item::Fragment(f) => (f.offset, &f.bytes),
    }
}

fuzz_target!(|data: &[u8]| {
    let seed = data
        .iter()
        .take(16)
        .fold(0u64, |a, &b| a.rotate_left(5) ^ u64::from(b));
    for cfg in [
        BoxReaderConfig::default(),
        BoxReaderConfig { max_box_size: 4096 },
    ] {
        let whole = read(cfg, [data]);
        assert_eq!(read(cfg, pieces(data, seed)), whole);
        assert_eq!(read(cfg, pieces(data, !seed)), whole);
        if data.len() <= 4096 {
            assert_eq!(read(cfg, data.chunks(1)), whole);
        }
        // Items are the body's bytes, back to back, from the start.
        let mut at = 0usize;
        for item in &whole.0 {
            let (offset, bytes) = item_span(item);
            assert_eq!(offset, at as u64);
            assert_eq!(&data[at..at + bytes.len()], bytes);
            at += bytes.len();
            if let Item::Fragment(f) = item {
                assert!(f.moof_len < f.bytes.len());
                assert_eq!(&f.moof()[4..8], b"moof");
                assert!(f.mdat().len() >= 8);
            }
        }
        // A clean end means every byte came out as an item.
        if whole.1.is_none() {
            assert_eq!(at, data.len());
        }

        // The plain box reader: a prefix of the body, whole unless an error.
        let mut r = BoxReader::new(cfg);
        let mut out = Vec::new();
        for p in pieces(data, seed) {
            r.push(p);
            while let Ok(Some(b)) = r.next_box() {
                out.extend_from_slice(&b.bytes);
            }
        }
        r.end();
        let clean = loop {
            match r.next_box() {
                Ok(Some(b)) => out.extend_from_slice(&b.bytes),
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        assert_eq!(&data[..out.len()], out.as_slice());
        if clean {
            assert_eq!(out.len(), data.len());
        }
    }
});
