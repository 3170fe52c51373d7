//! The ST 2022-7 merge with 2022-1 FEC under arbitrary packet sequences:
//! valid media packets of a few streams (SSRC, sequence number near a
//! moving point, with wrap-around), garbage datagrams, FEC packets built
//! from what was sent (or garbage), ticks. After every step the merge's
//! invariants hold, output extended sequence numbers strictly increase,
//! every output packet is one that was sent (or rebuilt bit-exact), and no
//! sequence number of a stream goes out twice.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tandem_core::Pipeline;
use tandem_udp::fec::{FecDirection, FecPacket};
use tandem_udp::merge::{Merge, MergeConfig};

#[derive(Debug, Arbitrary)]
enum Op {
    Media {
        leg: bool,
        stream: u8,
        delta: i8,
        advance_us: u16,
    },
    Garbage {
        leg: bool,
        bytes: Vec<u8>,
    },
    Fec {
        leg: bool,
        stream: u8,
        row: bool,
        l: u8,
        d: u8,
        back: u8,
    },
    FecGarbage {
        leg: bool,
        bytes: Vec<u8>,
    },
    Tick {
        ms: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    window_ms: u8,
    start: u16,
    ops: Vec<Op>,
}

/// A stream's packet: like a real encoder's, each stream has its own RTP
/// timestamp base and its own content, and its timestamps run on where
/// the sequence number wraps.
fn packet(ssrc: u32, seq: u16) -> Bytes {
    let mut v = vec![0x80, 33];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(
        &ssrc
            .wrapping_mul(0x9e37_79b9)
            .wrapping_add(u32::from(seq))
            .to_be_bytes(),
    );
    v.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..7u16 {
        v.extend_from_slice(&[
            0x47,
            0x01,
            0x00,
            0x10 | ((seq.wrapping_mul(7).wrapping_add(i)) & 0x0f) as u8,
        ]);
        v.extend_from_slice(&seq.to_be_bytes());
        v.resize(v.len() + 182, (seq ^ i) as u8 ^ ssrc as u8);
    }
    Bytes::from(v)
}

fuzz_target!(|input: Input| {
    let cfg = MergeConfig {
        skew_window: Duration::from_millis(u64::from(input.window_ms % 100) + 1),
        capacity: 4096,
        history: 512,
        ..MergeConfig::default()
    };
    let mut m = Merge::new(cfg);
    let t0 = Instant::now();
    let mut now = t0;
    let mut cursor = [input.start; 3];
    let ssrcs = [0x1111_1111u32, 0x2222_2222, 0x3333_3333];
    let mut sent: HashMap<(u32, u16), Bytes> = HashMap::new();
    let mut last_ext: Option<u64> = None;
    let mut seen: HashSet<(u32, u64)> = HashSet::new();
    // XOR parity has no integrity: a forged FEC packet can rebuild a
    // packet nobody sent, but only one that is RTP carrying whole TS.
    let mut forged = false;
    // Likewise FEC computed over another stream than the one followed
    // (an encoder that restarted): it is refused when the rebuilt RTP
    // timestamp is far from those of its group or of the packets held
    // around it, but over an even number of packets the other stream's
    // timestamp base cancels out, and it passes.
    let mut foreign_fec = false;
    // The RTP timestamp of the last packet out, by SSRC.
    let mut last_ts: HashMap<u32, u32> = HashMap::new();
    for op in input.ops.into_iter().take(2000) {
        match op {
            Op::Media {
                leg,
                stream,
                delta,
                advance_us,
            } => {
                now += Duration::from_micros(u64::from(advance_us));
                let s = usize::from(stream % 3);
                let seq = cursor[s].wrapping_add(delta as i16 as u16);
                if delta > 0 {
                    cursor[s] = seq;
                }
                let p = packet(ssrcs[s], seq);
                sent.insert((ssrcs[s], seq), p.clone());
                m.on_packet(now, if leg { Pipeline::P1 } else { Pipeline::P0 }, p);
            }
            Op::Garbage { leg, bytes } => {
                m.on_packet(
                    now,
                    if leg { Pipeline::P1 } else { Pipeline::P0 },
                    Bytes::from(bytes),
                );
            }
            Op::Fec {
                leg,
                stream,
                row,
                l,
                d,
                back,
            } => {
                let s = usize::from(stream % 3);
                foreign_fec |= m.ssrc() != Some(ssrcs[s]);
                let l = u16::from(l % 20) + 1;
                let d = if row { 1 } else { u16::from(d % 17) + 4 };
                let (offset, na) = if row { (1, l) } else { (l, d) };
                let base = cursor[s].wrapping_sub(u16::from(back));
                let media: Vec<Bytes> = (0..na)
                    .map(|i| base.wrapping_add(i * offset))
                    .map(|q| {
                        // A packet not delivered on either leg was still
                        // sent (lost on both): the FEC protects it.
                        sent.entry((ssrcs[s], q))
                            .or_insert_with(|| packet(ssrcs[s], q))
                            .clone()
                    })
                    .collect();
                let dir = if row {
                    FecDirection::Row
                } else {
                    FecDirection::Column
                };
                if let Ok(f) = FecPacket::encode(dir, 0, base, offset as u8, &media) {
                    m.on_fec(now, if leg { Pipeline::P1 } else { Pipeline::P0 }, f);
                }
            }
            Op::FecGarbage { leg, bytes } => {
                forged = true;
                m.on_fec(
                    now,
                    if leg { Pipeline::P1 } else { Pipeline::P0 },
                    Bytes::from(bytes),
                );
            }
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(ms));
                m.on_tick(now);
            }
        }
        m.check_invariants();
        if let Some(d) = m.next_deadline() {
            // A deadline not in the future would spin the driver.
            assert!(d > now, "deadline {:?} not after now", d - t0);
        }
        while let Some(p) = m.poll_output() {
            if let Some(l) = last_ext {
                assert!(
                    p.extended_sequence > l,
                    "output went back: {l} then {}",
                    p.extended_sequence
                );
            }
            last_ext = Some(p.extended_sequence);
            assert!(seen.insert((p.ssrc, p.extended_sequence)), "sent twice");
            let ts = u32::from_be_bytes([
                p.datagram[4],
                p.datagram[5],
                p.datagram[6],
                p.datagram[7],
            ]);
            let previous = last_ts.insert(p.ssrc, ts);
            match sent.get(&(p.ssrc, p.sequence_number)) {
                Some(original) if *original == p.datagram => {}
                _ => {
                    assert!(
                        forged || foreign_fec,
                        "output is not a packet that was sent"
                    );
                    // What FEC over another stream rebuilt still has a
                    // timestamp of the stream's own, as its neighbours vouch.
                    if let (false, Some(prev)) = (forged, previous) {
                        let d = i64::from(ts.wrapping_sub(prev) as i32);
                        assert!(
                            d.abs() <= 2 * 90_000,
                            "a rebuilt packet's timestamp is {d} ticks from the one before it"
                        );
                    }
                    let payload = &p.datagram[12..];
                    assert!(
                        !payload.is_empty()
                            && payload.len() % 188 == 0
                            && payload.chunks(188).all(|c| c[0] == 0x47),
                        "a forged FEC packet rebuilt something that is not MPEG-TS"
                    );
                }
            }
        }
        while m.poll_event().is_some() {}
    }
});
