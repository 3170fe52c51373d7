//! Cutting a live transport stream into archive files.
//!
//! A recorder feeds the stream in as it is forwarded; [`Rollover`] says
//! where each file starts and ends, the caller writes the bytes. Files are
//! cut the way an archive output cuts them, so that each stands alone and
//! `tandem archive verify` finds it whole:
//!
//! - on the stream's own clock: once its latest PCR is the rollover
//!   interval past the file's start (the PCR when the file opened, or its
//!   first one), so files last the interval whatever pace the packets
//!   arrive at, and the boundaries do not drift;
//! - right before a PAT (PID 0 with `payload_unit_start_indicator`), so
//!   each file opens with the tables a reader needs first.
//!
//! A stream whose PCR is missing or broken is still cut: once twice the
//! interval has passed on the caller's clock, at the next PAT; once three
//! times, at the next packet.
//!
//! The counter that names the files (`name.000042.ts`) is the caller's to
//! choose at the start, so that a recording resumed after a restart goes on
//! from the last index it wrote.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::check::PACKET_SIZE;

/// The PCR's base runs at 90 kHz and wraps at 2^33.
const PCR_HZ: u64 = 90_000;
const PCR_WRAP: u64 = 1 << 33;

/// What the caller does next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start file `index`.
    Open(u64),
    /// Append these bytes of the pushed chunk to the open file.
    Write(Range<usize>),
    /// File `index` is complete: publish it.
    Close(u64),
}

/// Where the next file boundary falls in a forwarded transport stream.
#[derive(Debug)]
pub struct Rollover {
    interval: Duration,
    next_index: u64,
    pcr_pid: Option<u16>,
    /// The latest PCR base on that PID.
    clock: Option<u64>,
    file: Option<OpenFile>,
}

#[derive(Debug)]
struct OpenFile {
    index: u64,
    opened: Instant,
    /// The stream's clock when the file opened (or at its first PCR).
    start: Option<u64>,
}

impl Rollover {
    /// Files of `interval` each, the first one numbered `first_index`.
    pub fn new(interval: Duration, first_index: u64) -> Self {
        Self {
            interval: interval.max(Duration::from_millis(1)),
            next_index: first_index,
            pcr_pid: None,
            clock: None,
            file: None,
        }
    }

    /// The index the next file opened will have.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Takes the next chunk of the stream (whole 188-byte packets; a
    /// partial packet at the end is written with the packet before it) and
    /// says what to do with it.
    pub fn push(&mut self, now: Instant, ts: &[u8], out: &mut Vec<Step>) {
        let mut written = 0;
        let mut at = 0;
        while at < ts.len() {
            let packet = ts
                .get(at..(at + PACKET_SIZE).min(ts.len()))
                .unwrap_or_default();
            let cut = match &self.file {
                None => true,
                Some(f) => self.due(f, now, is_pat_start(packet)),
            };
            if cut {
                if at > written {
                    out.push(Step::Write(written..at));
                    written = at;
                }
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                self.file = Some(OpenFile {
                    index,
                    opened: now,
                    start: self.clock,
                });
                out.push(Step::Open(index));
            }
            if let Some(pcr) = self.pcr_of(packet) {
                self.clock = Some(pcr);
                if let Some(f) = self.file.as_mut() {
                    f.start.get_or_insert(pcr);
                }
            }
            at += PACKET_SIZE;
        }
        if ts.len() > written {
            out.push(Step::Write(written..ts.len()));
        }
    }

    /// The stream ended (the flow stopped): closes the open file.
    pub fn finish(&mut self, out: &mut Vec<Step>) {
        self.close(out);
    }

    fn close(&mut self, out: &mut Vec<Step>) {
        if let Some(f) = self.file.take() {
            out.push(Step::Close(f.index));
        }
    }

    /// Whether the open file ends before a packet that is (`pat`) or is
    /// not a PAT's start.
    fn due(&self, f: &OpenFile, now: Instant, pat: bool) -> bool {
        let interval_ticks =
            u64::try_from(self.interval.as_micros() * u128::from(PCR_HZ) / 1_000_000)
                .unwrap_or(u64::MAX);
        let waited = now.saturating_duration_since(f.opened);
        let by_stream = match (f.start, self.clock) {
            // Modulo the wrap: a PCR that jumped back ends the file too.
            (Some(start), Some(clock)) => clock.wrapping_sub(start) % PCR_WRAP >= interval_ticks,
            _ => false,
        };
        let by_clock = waited >= self.interval.saturating_mul(2);
        (pat && (by_stream || by_clock)) || waited >= self.interval.saturating_mul(3)
    }

    /// The PCR base (90 kHz) `packet` carries, if it is on the PID the
    /// recording keeps time by (the first PID seen carrying a PCR).
    fn pcr_of(&mut self, packet: &[u8]) -> Option<u64> {
        let (pid, pcr) = pcr(packet)?;
        match self.pcr_pid {
            Some(p) if p != pid => None,
            _ => {
                self.pcr_pid = Some(pid);
                Some(pcr)
            }
        }
    }
}

/// A packet that starts a PAT section: PID 0 with
/// `payload_unit_start_indicator` (ISO/IEC 13818-1 §2.4.3.2).
fn is_pat_start(packet: &[u8]) -> bool {
    matches!(packet, [0x47, b1, b2, ..] if b1 & 0x40 != 0 && (u16::from(b1 & 0x1f) << 8 | u16::from(*b2)) == 0)
}

/// A packet's PID and PCR base, if its adaptation field carries a PCR
/// (ISO/IEC 13818-1 §2.4.3.4).
fn pcr(packet: &[u8]) -> Option<(u16, u64)> {
    let [0x47, b1, b2, b3, af_len, flags, p0, p1, p2, p3, p4, ..] = *packet else {
        return None;
    };
    let has_af = b3 & 0x20 != 0;
    if !has_af || af_len < 7 || flags & 0x10 == 0 {
        return None;
    }
    let pid = u16::from(b1 & 0x1f) << 8 | u16::from(b2);
    let base = u64::from(p0) << 25
        | u64::from(p1) << 17
        | u64::from(p2) << 9
        | u64::from(p3) << 1
        | u64::from(p4 >> 7);
    Some((pid, base))
}

#[cfg(test)]
mod tests;
