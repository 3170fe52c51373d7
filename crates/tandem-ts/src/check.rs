//! Is one transport stream file whole, cut short, or damaged?
//!
//! An archive file is judged on its own bytes, because that is all a bucket
//! holds: the size must be a whole number of 188-byte packets (or of
//! 192-byte BDAV packets, which `.m2ts` files from ffmpeg carry), every packet
//! must start with the sync byte and none may carry
//! `transport_error_indicator`, the PAT and a PMT it names must be present
//! and pass their CRC_32, each PID's `continuity_counter` must run without
//! unannounced jumps, and each elementary stream's decode timestamps and
//! each PCR must never go back (ISO/IEC 13818-1 §2.4.3, §2.4.4). A file cut
//! off mid-packet is [`TsState::Truncated`]; anything else wrong is
//! [`TsState::Corrupt`]. Null packets (PID 0x1FFF) are not checked.
//!
//! A file cut exactly at a packet boundary looks whole here; its
//! [`TsCheck::duration`] gives it away, and [`crate::archive`] compares that
//! with the rollover interval.
//!
//! [`TsChecker`] takes the bytes in pieces, so a caller can check an object
//! while it streams it; [`check_ts`] is the one-call form.

mod continuity;
mod psi;
mod timeline;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use mpeg2ts_reader::packet::Packet;
use mpeg2ts_reader::pes::{PesContents, PesHeader, PtsDts};
use serde::{Deserialize, Serialize};

use continuity::{CcOutcome, ContinuityTracker};
use psi::{SectionAssembler, Table};
use timeline::{Step, Timeline};

/// Size of a transport stream packet (ISO/IEC 13818-1 §2.4.3.2).
pub const PACKET_SIZE: usize = Packet::SIZE;

/// Bytes looked at to tell 188-byte packets from 192-byte ones.
const DETECT_LEN: usize = 2 * 192;

/// How packets sit in the file: plain 188-byte packets, or 192-byte BDAV
/// (`.m2ts`) packets, each a 4-byte arrival time code and a 188-byte
/// packet. ffmpeg writes the latter for any file name ending in `.m2ts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Framing {
    #[default]
    Ts,
    Bdav,
}

impl Framing {
    fn detect(head: &[u8]) -> Self {
        let sync = |i: usize| head.get(i) == Some(&0x47);
        if sync(4) && sync(196) && !(sync(0) && sync(188)) {
            Self::Bdav
        } else {
            Self::Ts
        }
    }

    fn size(self) -> usize {
        match self {
            Self::Ts => PACKET_SIZE,
            Self::Bdav => PACKET_SIZE + 4,
        }
    }

    fn prefix(self) -> usize {
        match self {
            Self::Ts => 0,
            Self::Bdav => 4,
        }
    }
}

/// Null packets (PID 0x1FFF) are stuffing: no counter, no content.
const NULL_PID: u16 = 0x1fff;

/// PID of the PAT.
const PAT_PID: u16 = 0;

/// How many problems a [`TsCheck`] lists; the rest are only counted, so a
/// file of random bytes does not produce one problem per packet in memory.
pub const MAX_LISTED_PROBLEMS: usize = 100;

/// Checks a whole file. Never panics, whatever the bytes.
///
/// ```
/// let check = tandem_ts::check_ts(&[]);
/// assert_eq!(check.state, tandem_ts::TsState::Truncated);
/// ```
pub fn check_ts(data: &[u8]) -> TsCheck {
    let mut checker = TsChecker::new();
    checker.push(data);
    checker.finish()
}

/// The verdict on one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TsState {
    /// Every check passed.
    Whole,
    /// The file is empty, or ends part-way through a packet, and nothing else
    /// is wrong with the packets it has. A missing PAT or PMT does not make
    /// such a file corrupt: it may have been cut before they arrived.
    Truncated,
    /// A packet, table, counter or clock is wrong.
    Corrupt,
}

/// Which clock went backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clock {
    /// Program clock reference, in 27 MHz ticks (`base * 300 + extension`).
    Pcr,
    /// Presentation time stamp of a PES header without a DTS, where the PTS
    /// is also the decode time (ISO/IEC 13818-1 §2.4.3.7), in 90 kHz ticks.
    Pts,
    /// Decode time stamp, in 90 kHz ticks. Decode order is the order in the
    /// file, so DTS is what must rise; PTS may go back across B-frames.
    Dts,
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Clock::Pcr => "PCR",
            Clock::Pts => "PTS",
            Clock::Dts => "DTS",
        })
    }
}

/// One thing wrong with a file, located by zero-based packet index and the
/// byte offset of that packet's first byte wherever one packet is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The file has no bytes.
    Empty,
    /// The file ends part-way through a packet.
    PartialPacket {
        /// Index the partial packet would have had.
        packet: u64,
        /// Where it starts.
        offset: u64,
        /// How many of its 188 bytes are present.
        len: usize,
    },
    /// A packet does not start with the sync byte 0x47.
    BadSync {
        /// Packet index.
        packet: u64,
        /// Byte offset of the packet.
        offset: u64,
        /// The byte found instead.
        found: u8,
    },
    /// A packet has `transport_error_indicator` set: something upstream
    /// knew it was damaged.
    TransportError {
        /// Packet index.
        packet: u64,
        /// Byte offset of the packet.
        offset: u64,
        /// The packet's PID.
        pid: u16,
    },
    /// A PID's `continuity_counter` skipped without a `discontinuity_indicator`.
    ContinuityJump {
        /// Index of the packet that came after the gap.
        packet: u64,
        /// Byte offset of that packet.
        offset: u64,
        /// The PID.
        pid: u16,
        /// Counter of the PID's previous payload packet.
        previous: u8,
        /// Counter that should have followed.
        expected: u8,
        /// Counter found.
        found: u8,
    },
    /// A clock went back without a `discontinuity_indicator`.
    ClockBackwards {
        /// Index of the packet carrying the earlier value.
        packet: u64,
        /// Byte offset of that packet.
        offset: u64,
        /// The PID whose clock it is.
        pid: u16,
        /// Which clock.
        clock: Clock,
        /// The value before, in the clock's ticks.
        previous: u64,
        /// The value found, in the clock's ticks.
        found: u64,
    },
    /// A PSI section ending in this packet failed its CRC_32.
    SectionCrc {
        /// Index of the packet where the section ends.
        packet: u64,
        /// Byte offset of that packet.
        offset: u64,
        /// The PID carrying the section.
        pid: u16,
        /// The section's `table_id` (0x00 PAT, 0x02 PMT).
        table_id: u8,
    },
    /// No valid PAT on PID 0 in the whole file.
    NoPat {
        /// Packets in the file.
        packets: u64,
    },
    /// The PAT names PMT PIDs but none carried a valid PMT.
    NoPmt {
        /// The PMT PIDs the PAT names.
        pmt_pids: Vec<u16>,
        /// Packets in the file.
        packets: u64,
    },
}

impl Problem {
    /// Byte offset of the packet the problem is in, for problems about one packet.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Problem::PartialPacket { offset, .. }
            | Problem::BadSync { offset, .. }
            | Problem::TransportError { offset, .. }
            | Problem::ContinuityJump { offset, .. }
            | Problem::ClockBackwards { offset, .. }
            | Problem::SectionCrc { offset, .. } => Some(*offset),
            Problem::Empty | Problem::NoPat { .. } | Problem::NoPmt { .. } => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("the file is empty"),
            Problem::PartialPacket {
                packet,
                offset,
                len,
            } => write!(
                f,
                "packet {packet} at byte {offset}: the file ends {len} bytes into it, \
                 so it was cut off mid-packet"
            ),
            Problem::BadSync {
                packet,
                offset,
                found,
            } => write!(
                f,
                "packet {packet} at byte {offset}: sync byte is {found:#04x}, expected 0x47"
            ),
            Problem::TransportError {
                packet,
                offset,
                pid,
            } => write!(
                f,
                "packet {packet} at byte {offset}: pid {pid:#06x} has transport_error_indicator \
                 set, so it was damaged before it was written"
            ),
            Problem::ContinuityJump {
                packet,
                offset,
                pid,
                previous,
                expected,
                found,
            } => write!(
                f,
                "packet {packet} at byte {offset}: pid {pid:#06x} continuity_counter goes from \
                 {previous} to {found}, expected {expected}; packets are missing"
            ),
            Problem::ClockBackwards {
                packet,
                offset,
                pid,
                clock,
                previous,
                found,
            } => write!(
                f,
                "packet {packet} at byte {offset}: pid {pid:#06x} {clock} goes back from \
                 {previous} to {found} with no discontinuity_indicator"
            ),
            Problem::SectionCrc {
                packet,
                offset,
                pid,
                table_id,
            } => write!(
                f,
                "packet {packet} at byte {offset}: section with table_id {table_id:#04x} on pid \
                 {pid:#06x} fails its CRC_32"
            ),
            Problem::NoPat { packets } => {
                write!(f, "no valid PAT on pid 0x0000 in {packets} packets")
            }
            Problem::NoPmt { pmt_pids, packets } if pmt_pids.is_empty() => write!(
                f,
                "no valid PMT in {packets} packets: the PAT names no program"
            ),
            Problem::NoPmt { pmt_pids, packets } => {
                let pids: Vec<String> = pmt_pids.iter().map(|p| format!("{p:#06x}")).collect();
                write!(
                    f,
                    "no valid PMT in {packets} packets on the pid(s) the PAT names: {}",
                    pids.join(", ")
                )
            }
        }
    }
}

/// Everything [`check_ts`] found out about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsCheck {
    /// The verdict.
    pub state: TsState,
    /// The longest elementary stream's timestamp span: from its first to its
    /// last decode timestamp, summed over runs split by discontinuities. That
    /// is one access unit short of play time (50 frames at 25 fps span
    /// 1.96 s); the last access unit's length is not in the stream, and an
    /// audio PES may hold any number of frames. Without any PES timestamp,
    /// the longest PCR span. `None` when the file carries neither.
    pub duration: Option<Duration>,
    /// Complete 188-byte packets in the file, null packets included.
    pub packets: u64,
    /// What is wrong, in file order, at most [`MAX_LISTED_PROBLEMS`] of them.
    pub problems: Vec<Problem>,
    /// Problems found beyond [`MAX_LISTED_PROBLEMS`]; they count towards
    /// `state` all the same.
    pub omitted_problems: u64,
}

/// Checks a file fed in pieces of any size, in order.
///
/// Bytes go in through [`TsChecker::push`]; [`TsChecker::finish`] gives the
/// verdict. Memory stays bounded by the number of PIDs, whatever the file size.
#[derive(Debug, Default)]
pub struct TsChecker {
    /// Decided from the first bytes.
    framing: Option<Framing>,
    carry: Vec<u8>,
    packets: u64,
    problems: Vec<Problem>,
    omitted_problems: u64,
    corrupt: bool,
    continuity: ContinuityTracker,
    sections: HashMap<u16, SectionAssembler>,
    pat_seen: bool,
    pmt_pids: BTreeSet<u16>,
    pmt_seen: bool,
    pes_clocks: HashMap<u16, Timeline>,
    pcr_clocks: HashMap<u16, Timeline>,
}

impl TsChecker {
    /// A checker that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the file.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.framing.is_none() {
            self.carry.extend_from_slice(bytes);
            if self.carry.len() < DETECT_LEN {
                return;
            }
            self.frame_carry();
            return;
        }
        self.push_framed(bytes);
    }

    /// Decides the packet framing from the bytes held so far, then checks
    /// them.
    fn frame_carry(&mut self) {
        self.framing = Some(Framing::detect(&self.carry));
        let held = std::mem::take(&mut self.carry);
        self.push_framed(&held);
    }

    fn push_framed(&mut self, mut bytes: &[u8]) {
        let size = self.framing.unwrap_or_default().size();
        if !self.carry.is_empty() {
            let wanted = size.saturating_sub(self.carry.len());
            let (head, tail) = bytes.split_at(wanted.min(bytes.len()));
            self.carry.extend_from_slice(head);
            bytes = tail;
            if self.carry.len() < size {
                return;
            }
            let packet = std::mem::take(&mut self.carry);
            self.on_framed(&packet);
            self.carry = packet;
            self.carry.clear();
        }
        let mut chunks = bytes.chunks_exact(size);
        for packet in &mut chunks {
            self.on_framed(packet);
        }
        self.carry.extend_from_slice(chunks.remainder());
    }

    /// Strips a BDAV time code, then checks the 188-byte packet.
    fn on_framed(&mut self, framed: &[u8]) {
        let skip = self.framing.unwrap_or_default().prefix();
        if let Some(packet) = framed.get(skip..) {
            self.on_packet(packet);
        }
    }

    /// The verdict on all the bytes pushed.
    pub fn finish(mut self) -> TsCheck {
        if self.framing.is_none() {
            self.frame_carry();
        }
        let cut = !self.carry.is_empty();
        if self.packets == 0 && !cut {
            self.note(Problem::Empty, false);
        }
        if cut {
            let offset = self.byte_offset(self.packets);
            self.note(
                Problem::PartialPacket {
                    packet: self.packets,
                    offset,
                    len: self.carry.len(),
                },
                false,
            );
        }
        // A cut file may simply have ended before its tables arrived.
        if self.packets > 0 && !self.pat_seen {
            self.note(
                Problem::NoPat {
                    packets: self.packets,
                },
                !cut,
            );
        } else if self.packets > 0 && !self.pmt_seen {
            self.note(
                Problem::NoPmt {
                    pmt_pids: self.pmt_pids.iter().copied().collect(),
                    packets: self.packets,
                },
                !cut,
            );
        }
        let state = if self.corrupt {
            TsState::Corrupt
        } else if cut || self.packets == 0 {
            TsState::Truncated
        } else {
            TsState::Whole
        };
        let pes = self
            .pes_clocks
            .values()
            .filter(|t| t.has_values())
            .map(Timeline::span)
            .max();
        let pcr = || {
            self.pcr_clocks
                .values()
                .filter(|t| t.has_values())
                .map(Timeline::span)
                .max()
        };
        TsCheck {
            state,
            duration: pes.or_else(pcr),
            packets: self.packets,
            problems: self.problems,
            omitted_problems: self.omitted_problems,
        }
    }

    fn byte_offset(&self, packet: u64) -> u64 {
        packet.saturating_mul(self.framing.unwrap_or_default().size() as u64)
    }

    fn note(&mut self, problem: Problem, corrupt: bool) {
        self.corrupt |= corrupt;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(problem);
        } else {
            self.omitted_problems = self.omitted_problems.saturating_add(1);
        }
    }

    fn on_packet(&mut self, buf: &[u8]) {
        let packet = self.packets;
        self.packets = self.packets.saturating_add(1);
        let offset = self.byte_offset(packet);
        // `buf` is always PACKET_SIZE bytes, so `try_new` only checks the sync byte.
        let Some(pk) = Packet::try_new(buf) else {
            let found = buf.first().copied().unwrap_or_default();
            self.note(
                Problem::BadSync {
                    packet,
                    offset,
                    found,
                },
                true,
            );
            return;
        };
        let pid = u16::from(pk.pid());
        if pid == NULL_PID {
            return;
        }
        if pk.transport_error_indicator() {
            self.note(
                Problem::TransportError {
                    packet,
                    offset,
                    pid,
                },
                true,
            );
            return;
        }
        let adaptation_field = pk.adaptation_field();
        let discontinuity = adaptation_field
            .as_ref()
            .is_some_and(|af| af.discontinuity_indicator());
        if discontinuity {
            // On the PCR PID this starts a new time base; the PTS and DTS
            // of every stream may restart with it (§2.4.3.5).
            self.pes_clocks
                .values_mut()
                .chain(self.pcr_clocks.values_mut())
                .for_each(Timeline::on_discontinuity);
        }
        let payload = pk.payload();
        if pk.adaptation_control().has_payload() {
            let counter = pk.continuity_counter().count();
            match self.continuity.on_payload_packet(
                pid,
                counter,
                payload.unwrap_or_default(),
                discontinuity,
            ) {
                CcOutcome::InSequence => {}
                CcOutcome::Duplicate => return,
                CcOutcome::Jump { previous, expected } => self.note(
                    Problem::ContinuityJump {
                        packet,
                        offset,
                        pid,
                        previous,
                        expected,
                        found: counter,
                    },
                    true,
                ),
            }
        }
        if let Some(pcr) = adaptation_field.and_then(|af| af.pcr().ok()) {
            let step = self
                .pcr_clocks
                .entry(pid)
                .or_insert_with(Timeline::pcr)
                .on_value(u64::from(pcr));
            self.on_step(step, packet, pid, Clock::Pcr, u64::from(pcr));
        }
        let Some(payload) = payload else {
            return;
        };
        if pid == PAT_PID || self.pmt_pids.contains(&pid) {
            self.on_section_payload(packet, pid, payload, pk.payload_unit_start_indicator());
        } else if pk.payload_unit_start_indicator()
            && !pk.transport_scrambling_control().is_scrambled()
        {
            self.on_pes_start(packet, pid, payload);
        }
    }

    fn on_section_payload(&mut self, packet: u64, pid: u16, payload: &[u8], unit_start: bool) {
        let sections = self
            .sections
            .entry(pid)
            .or_default()
            .push(payload, unit_start);
        for section in sections {
            match psi::parse_section(&section) {
                Ok(Table::Pat { pmt_pids }) if pid == PAT_PID => {
                    self.pat_seen = true;
                    self.pmt_pids.extend(pmt_pids);
                }
                Ok(Table::Pmt { .. }) if pid != PAT_PID => self.pmt_seen = true,
                Ok(_) => {}
                Err(e) => {
                    let offset = self.byte_offset(packet);
                    self.note(
                        Problem::SectionCrc {
                            packet,
                            offset,
                            pid,
                            table_id: e.table_id,
                        },
                        true,
                    );
                }
            }
        }
    }

    fn on_pes_start(&mut self, packet: u64, pid: u16, payload: &[u8]) {
        let Some(header) = PesHeader::from_bytes(payload) else {
            return;
        };
        let PesContents::Parsed(Some(parsed)) = header.contents() else {
            return;
        };
        let (clock, value) = match parsed.pts_dts() {
            Ok(PtsDts::PtsOnly(Ok(pts))) => (Clock::Pts, pts.value()),
            Ok(PtsDts::Both { dts: Ok(dts), .. }) => (Clock::Dts, dts.value()),
            _ => return,
        };
        let step = self
            .pes_clocks
            .entry(pid)
            .or_insert_with(Timeline::pes)
            .on_value(value);
        self.on_step(step, packet, pid, clock, value);
    }

    fn on_step(&mut self, step: Step, packet: u64, pid: u16, clock: Clock, found: u64) {
        if let Step::Backward { previous } = step {
            let offset = self.byte_offset(packet);
            self.note(
                Problem::ClockBackwards {
                    packet,
                    offset,
                    pid,
                    clock,
                    previous,
                    found,
                },
                true,
            );
        }
    }
}

#[cfg(test)]
mod tests;
