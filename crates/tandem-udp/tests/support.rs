//! Shared helpers: hand-built RTP/TS datagrams and a driver that collects output.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_udp::merge::{Merge, MergeEvent, MergedPacket};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An RTP datagram of seven TS packets, as ffmpeg's `rtp_mpegts` sends,
/// whose TS payload bytes identify `seq`. PID 0x100, continuity counters
/// running on from `seq`. The RTP timestamp is `seq` ticks: it steps back
/// by only 0.7 s where the sequence number wraps, within what FEC recovery
/// accepts of a live stream (a real sender's timestamp runs on).
pub fn rtp(seq: u16, ssrc: u32) -> Bytes {
    let mut v = vec![0x80, 33];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&u32::from(seq).to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..7u16 {
        let cc = ((u32::from(seq) * 7 + u32::from(i)) & 0x0f) as u8;
        v.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | cc]);
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend((0..182).map(|b| (b as u8) ^ (seq as u8) ^ (i as u8)));
    }
    Bytes::from(v)
}

pub fn drain(m: &mut Merge) -> (Vec<MergedPacket>, Vec<MergeEvent>) {
    let mut out = Vec::new();
    while let Some(p) = m.poll_output() {
        out.push(p);
    }
    let mut evs = Vec::new();
    while let Some(e) = m.poll_event() {
        evs.push(e);
    }
    (out, evs)
}

pub fn seqs(out: &[MergedPacket]) -> Vec<u16> {
    out.iter().map(|p| p.sequence_number).collect()
}

/// Runs ticks until no deadline is left before `until`.
pub fn tick_until(m: &mut Merge, until: Instant) {
    for _ in 0..10_000 {
        match m.next_deadline() {
            Some(d) if d <= until => m.on_tick(d),
            _ => break,
        }
        m.check_invariants();
    }
    m.on_tick(until);
    m.check_invariants();
}
