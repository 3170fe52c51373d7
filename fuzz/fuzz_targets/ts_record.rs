//! Cutting a live transport stream into archive files, over arbitrary
//! bytes in arbitrary chunks at arbitrary times: never a panic, every
//! byte goes into exactly one file in order, files are numbered on from
//! the first index, and each opens once and closes once.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tandem_ts::{Rollover, Step};

#[derive(Debug, Arbitrary)]
struct Chunk {
    advance_ms: u16,
    /// Whole 188-byte packets, with a partial one at the end allowed.
    packets: u8,
    tail: u8,
}

#[derive(Debug, Arbitrary)]
struct Input {
    rollover_ms: u16,
    first_index: u32,
    chunks: Vec<Chunk>,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let mut r = Rollover::new(
        Duration::from_millis(u64::from(input.rollover_ms)),
        u64::from(input.first_index),
    );
    let t0 = Instant::now();
    let mut now = t0;
    let mut source = input.bytes.iter().copied().cycle();
    let mut stream = Vec::new();
    let mut files: Vec<(u64, Vec<u8>, bool)> = Vec::new();
    let mut steps = Vec::new();
    for c in input.chunks.iter().take(200) {
        now += Duration::from_millis(u64::from(c.advance_ms));
        let len = usize::from(c.packets % 8) * 188 + usize::from(c.tail % 188);
        let chunk: Vec<u8> = if input.bytes.is_empty() {
            vec![0x47; len]
        } else {
            source.by_ref().take(len).collect()
        };
        stream.extend_from_slice(&chunk);
        r.push(now, &chunk, &mut steps);
        for s in steps.drain(..) {
            match s {
                Step::Open(i) => {
                    assert!(files.iter().all(|f| f.2), "a file opened while one is open");
                    let expected = u64::from(input.first_index) + files.len() as u64;
                    assert_eq!(i, expected, "files are numbered on");
                    files.push((i, Vec::new(), false));
                }
                Step::Write(range) => {
                    let f = files.last_mut().expect("a write with no file open");
                    assert!(!f.2, "a write to a closed file");
                    f.1.extend_from_slice(&chunk[range]);
                }
                Step::Close(i) => {
                    let f = files.last_mut().expect("a close with no file open");
                    assert_eq!((f.0, f.2), (i, false), "the open file closes once");
                    f.2 = true;
                }
            }
        }
    }
    r.finish(&mut steps);
    for s in steps.drain(..) {
        match s {
            Step::Close(i) => {
                let f = files.last_mut().expect("a close with no file open");
                assert_eq!((f.0, f.2), (i, false));
                f.2 = true;
            }
            other => panic!("finishing did {other:?}"),
        }
    }
    assert!(files.iter().all(|f| f.2), "every file is closed at the end");
    let all: Vec<u8> = files.iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(all, stream, "every byte once, in order");
});
