//! MPEG-TS packets in a datagram, per ISO/IEC 13818-1 §2.4.3.2–§2.4.3.5.
//!
//! A datagram (or an RTP payload, RFC 2250 §2) carries whole 188-byte
//! transport packets: ffmpeg sends seven per datagram when it can, fewer
//! when it flushes. [`TsDatagram::parse`] checks the length and every sync
//! byte before anything is forwarded; [`TsPacket`] reads the header fields,
//! the adaptation field's discontinuity indicator and PCR; and
//! [`ContinuityCounters`] applies §2.4.3.3 per PID. All views share the
//! datagram's [`Bytes`]; nothing is copied.

use std::collections::HashMap;

use bytes::Bytes;

/// Length of one transport packet.
pub const TS_PACKET_LEN: usize = 188;
/// The sync byte that starts every transport packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The null packet PID (§2.4.3.3: its continuity counter is undefined).
pub const NULL_PID: u16 = 0x1fff;

/// Why bytes are not whole transport packets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    #[error("no transport packets: the datagram is empty")]
    Empty,
    #[error("{len} bytes is not a whole number of 188-byte transport packets")]
    NotWholePackets { len: usize },
    #[error("packet {index} starts with 0x{found:02x}, not the sync byte 0x47")]
    NoSync { index: usize, found: u8 },
    #[error("packet {index}: adaptation field length {length} runs past the packet")]
    BadAdaptationField { index: usize, length: u8 },
}

/// The continuity facts of one transport packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CcFact {
    pub pid: u16,
    pub cc: u8,
    pub payload: bool,
    /// `discontinuity_indicator`: the counter may jump here.
    pub discontinuity: bool,
}

/// The continuity facts of every whole transport packet in `payload` that
/// starts with the sync byte, in order.
pub(crate) fn cc_facts(payload: &[u8]) -> impl Iterator<Item = CcFact> + '_ {
    payload
        .chunks_exact(TS_PACKET_LEN)
        .filter_map(|p| match *p {
            [SYNC_BYTE, b1, b2, b3, af_len, flags, ..] => {
                let af = b3 & 0x20 != 0;
                Some(CcFact {
                    pid: u16::from(b1 & 0x1f) << 8 | u16::from(b2),
                    cc: b3 & 0x0f,
                    payload: b3 & 0x10 != 0,
                    discontinuity: af && af_len > 0 && flags & 0x80 != 0,
                })
            }
            _ => None,
        })
}

/// Checks one packet's length, sync byte and adaptation field length
/// without taking a view of it. `index` only locates it in the error.
fn check_packet(b: &[u8], index: usize) -> Result<(), TsError> {
    if b.len() != TS_PACKET_LEN {
        return Err(TsError::NotWholePackets { len: b.len() });
    }
    let (&sync, &flags, &length) = match (b.first(), b.get(3), b.get(4)) {
        (Some(s), Some(f), Some(l)) => (s, f, l),
        _ => return Err(TsError::NotWholePackets { len: b.len() }),
    };
    if sync != SYNC_BYTE {
        return Err(TsError::NoSync { index, found: sync });
    }
    if flags & 0x20 != 0 {
        // With a payload the field may take at most 183 bytes, without one exactly 183 (§2.4.3.5).
        let max = if flags & 0x10 != 0 { 182 } else { 183 };
        if usize::from(length) > max {
            return Err(TsError::BadAdaptationField { index, length });
        }
    }
    Ok(())
}

/// One 188-byte transport packet (a view into its datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsPacket {
    bytes: Bytes,
}

impl TsPacket {
    /// Checks length, sync byte and adaptation field length. `index` only
    /// locates the packet in the error.
    pub fn parse(bytes: Bytes, index: usize) -> Result<Self, TsError> {
        check_packet(&bytes, index)?;
        Ok(Self { bytes })
    }

    /// The packet's 188 bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn transport_error(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }

    pub fn payload_unit_start(&self) -> bool {
        self.bytes[1] & 0x40 != 0
    }

    /// 13-bit packet identifier.
    pub fn pid(&self) -> u16 {
        u16::from_be_bytes([self.bytes[1] & 0x1f, self.bytes[2]])
    }

    /// 2-bit `transport_scrambling_control`.
    pub fn scrambling(&self) -> u8 {
        self.bytes[3] >> 6
    }

    /// `adaptation_field_control` is `10` or `11`.
    pub fn has_adaptation_field(&self) -> bool {
        self.bytes[3] & 0x20 != 0
    }

    /// `adaptation_field_control` is `01` or `11`.
    pub fn has_payload(&self) -> bool {
        self.bytes[3] & 0x10 != 0
    }

    /// 4-bit `continuity_counter`.
    pub fn continuity_counter(&self) -> u8 {
        self.bytes[3] & 0x0f
    }

    fn adaptation_flags(&self) -> Option<u8> {
        if self.has_adaptation_field() && self.bytes[4] > 0 {
            Some(self.bytes[5])
        } else {
            None
        }
    }

    /// The adaptation field's `discontinuity_indicator`.
    pub fn discontinuity_indicator(&self) -> bool {
        self.adaptation_flags().is_some_and(|f| f & 0x80 != 0)
    }

    /// The program clock reference in 27 MHz units (base × 300 + extension),
    /// when the adaptation field carries one (`PCR_flag`).
    pub fn pcr(&self) -> Option<u64> {
        let flags = self.adaptation_flags()?;
        if flags & 0x10 == 0 || self.bytes[4] < 7 {
            return None;
        }
        let b = self.bytes.get(6..12)?;
        let base = (u64::from(b[0]) << 25)
            | (u64::from(b[1]) << 17)
            | (u64::from(b[2]) << 9)
            | (u64::from(b[3]) << 1)
            | (u64::from(b[4]) >> 7);
        let ext = (u64::from(b[4] & 0x01) << 8) | u64::from(b[5]);
        Some(base * 300 + ext)
    }

    /// The payload bytes after the header and adaptation field.
    pub fn payload(&self) -> Bytes {
        if !self.has_payload() {
            return Bytes::new();
        }
        let start = if self.has_adaptation_field() {
            5 + usize::from(self.bytes[4])
        } else {
            4
        };
        self.bytes.slice(start.min(TS_PACKET_LEN)..)
    }
}

/// A datagram of whole, synchronised transport packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsDatagram {
    bytes: Bytes,
}

impl TsDatagram {
    /// Checks that `bytes` is one or more whole 188-byte packets, each with
    /// a sync byte and a sane adaptation field.
    pub fn parse(bytes: Bytes) -> Result<Self, TsError> {
        Self::check(&bytes)?;
        Ok(Self { bytes })
    }

    /// What [`parse`](Self::parse) checks, on borrowed bytes: the hot path
    /// validates every datagram without taking a view of each packet.
    pub fn check(bytes: &[u8]) -> Result<(), TsError> {
        if bytes.is_empty() {
            return Err(TsError::Empty);
        }
        if !bytes.len().is_multiple_of(TS_PACKET_LEN) {
            return Err(TsError::NotWholePackets { len: bytes.len() });
        }
        bytes
            .chunks_exact(TS_PACKET_LEN)
            .enumerate()
            .try_for_each(|(i, p)| check_packet(p, i))
    }

    /// Number of transport packets.
    pub fn len(&self) -> usize {
        self.bytes.len() / TS_PACKET_LEN
    }

    /// Never true for a parsed datagram.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The datagram, as received.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The packets, in order.
    pub fn packets(&self) -> impl Iterator<Item = Result<TsPacket, TsError>> + '_ {
        (0..self.len()).map(|i| {
            TsPacket::parse(
                self.bytes.slice(i * TS_PACKET_LEN..(i + 1) * TS_PACKET_LEN),
                i,
            )
        })
    }
}

/// What one packet did to its PID's continuity counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// First packet of the PID, the next counter, an announced
    /// discontinuity, or a packet whose counter is not tracked (no payload,
    /// null PID).
    InSequence,
    /// The same counter as the previous payload packet of this PID, which
    /// §2.4.3.3 allows once (a duplicate packet).
    Duplicate,
    /// An unannounced jump: packets were lost.
    Error { expected: u8, found: u8 },
}

/// Continuity counters of every PID seen, per ISO/IEC 13818-1 §2.4.3.3:
/// the counter goes up by one (mod 16) on every packet with a payload;
/// adaptation-field-only packets keep it and are not checked; a packet
/// whose `discontinuity_indicator` is set may carry any counter; the null
/// PID is not checked; one repeat of the previous counter is a duplicate,
/// two in a row are an error.
#[derive(Debug, Default, Clone)]
pub struct ContinuityCounters {
    pids: HashMap<u16, (u8, bool)>,
}

impl ContinuityCounters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `packet` against the previous one of its PID and remembers it.
    pub fn on_packet(&mut self, packet: &TsPacket) -> Continuity {
        self.on_fact(CcFact {
            pid: packet.pid(),
            cc: packet.continuity_counter(),
            payload: packet.has_payload(),
            discontinuity: packet.discontinuity_indicator(),
        })
    }

    /// [`on_packet`](Self::on_packet) from a packet's header facts.
    pub(crate) fn on_fact(&mut self, f: CcFact) -> Continuity {
        let pid = f.pid;
        if pid == NULL_PID || !f.payload {
            return Continuity::InSequence;
        }
        let cc = f.cc;
        let Some((last, repeated)) = self.pids.get_mut(&pid) else {
            self.pids.insert(pid, (cc, false));
            return Continuity::InSequence;
        };
        let expected = (*last + 1) & 0x0f;
        let outcome = if f.discontinuity || cc == expected {
            Continuity::InSequence
        } else if cc == *last && !*repeated {
            *repeated = true;
            return Continuity::Duplicate;
        } else {
            Continuity::Error {
                expected,
                found: cc,
            }
        };
        // After an error follow the new counter, so one loss is one error.
        *last = cc;
        *repeated = false;
        outcome
    }

    /// Forgets every PID (after a switch to an unrelated stream).
    pub fn reset(&mut self) {
        self.pids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet of `pid` with `cc`, payload only, or with an adaptation
    /// field of `af` bytes (flags first).
    pub(crate) fn packet(pid: u16, cc: u8, af: Option<&[u8]>, payload: bool) -> Vec<u8> {
        let mut p = vec![SYNC_BYTE, (pid >> 8) as u8 & 0x1f, pid as u8, cc & 0x0f];
        if payload {
            p[3] |= 0x10;
        }
        if let Some(af) = af {
            p[3] |= 0x20;
            let len = if payload { af.len() } else { 183 };
            p.push(len as u8);
            p.extend_from_slice(af);
            p.resize(5 + len, 0xff);
        }
        p.resize(TS_PACKET_LEN, 0xab);
        p
    }

    fn ts(v: Vec<u8>) -> TsPacket {
        TsPacket::parse(Bytes::from(v), 0).unwrap()
    }

    #[test]
    fn header_fields_are_read() {
        let mut v = packet(0x1ffe, 9, None, true);
        v[1] |= 0x40;
        let p = ts(v);
        assert_eq!(p.pid(), 0x1ffe);
        assert_eq!(p.continuity_counter(), 9);
        assert!(p.payload_unit_start());
        assert!(p.has_payload());
        assert!(!p.has_adaptation_field());
        assert_eq!(p.payload().len(), 184);
        assert_eq!(p.pcr(), None);
    }

    #[test]
    fn pcr_is_base_times_300_plus_extension() {
        // base = 0x1_2345_6789 (33 bits), extension = 0x1ab.
        let base: u64 = 0x1_2345_6789;
        let ext: u64 = 0x1ab;
        let b = [
            (base >> 25) as u8,
            (base >> 17) as u8,
            (base >> 9) as u8,
            (base >> 1) as u8,
            ((base & 1) << 7) as u8 | 0x7e | (ext >> 8) as u8,
            ext as u8,
        ];
        let mut af = vec![0x10];
        af.extend_from_slice(&b);
        let p = ts(packet(0x100, 0, Some(&af), true));
        assert_eq!(p.pcr(), Some(base * 300 + ext));
        assert_eq!(p.payload().len(), 188 - 5 - 7);
    }

    #[test]
    fn datagram_of_seven_packets_parses() {
        let mut d = Vec::new();
        for cc in 0..7 {
            d.extend(packet(0x100, cc, None, true));
        }
        let dg = TsDatagram::parse(Bytes::from(d)).unwrap();
        assert_eq!(dg.len(), 7);
        let ccs: Vec<u8> = dg
            .packets()
            .map(|p| p.unwrap().continuity_counter())
            .collect();
        assert_eq!(ccs, vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn datagram_not_a_multiple_of_188_is_refused() {
        assert_eq!(
            TsDatagram::parse(Bytes::from(vec![SYNC_BYTE; 1316 - 1])),
            Err(TsError::NotWholePackets { len: 1315 })
        );
        assert_eq!(TsDatagram::parse(Bytes::new()), Err(TsError::Empty));
    }

    #[test]
    fn lost_sync_is_located() {
        let mut d = packet(0x100, 0, None, true);
        let mut second = packet(0x100, 1, None, true);
        second[0] = 0x48;
        d.extend(second);
        assert_eq!(
            TsDatagram::parse(Bytes::from(d)),
            Err(TsError::NoSync {
                index: 1,
                found: 0x48
            })
        );
    }

    #[test]
    fn oversized_adaptation_field_is_refused() {
        let mut v = packet(0x100, 0, Some(&[0]), true);
        v[4] = 183;
        assert_eq!(
            TsPacket::parse(Bytes::from(v), 3),
            Err(TsError::BadAdaptationField {
                index: 3,
                length: 183
            })
        );
    }

    #[test]
    fn counter_wraps_and_jump_is_an_error() {
        let mut c = ContinuityCounters::new();
        assert_eq!(
            c.on_packet(&ts(packet(1, 15, None, true))),
            Continuity::InSequence
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 0, None, true))),
            Continuity::InSequence
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 2, None, true))),
            Continuity::Error {
                expected: 1,
                found: 2
            }
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 3, None, true))),
            Continuity::InSequence
        );
    }

    #[test]
    fn adaptation_only_packets_keep_the_counter() {
        let mut c = ContinuityCounters::new();
        c.on_packet(&ts(packet(1, 4, None, true)));
        assert_eq!(
            c.on_packet(&ts(packet(1, 4, Some(&[0]), false))),
            Continuity::InSequence
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 5, None, true))),
            Continuity::InSequence
        );
    }

    #[test]
    fn discontinuity_indicator_allows_any_counter() {
        let mut c = ContinuityCounters::new();
        c.on_packet(&ts(packet(1, 4, None, true)));
        assert_eq!(
            c.on_packet(&ts(packet(1, 11, Some(&[0x80]), true))),
            Continuity::InSequence
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 12, None, true))),
            Continuity::InSequence
        );
    }

    #[test]
    fn one_duplicate_is_allowed_but_not_two() {
        let mut c = ContinuityCounters::new();
        c.on_packet(&ts(packet(1, 4, None, true)));
        assert_eq!(
            c.on_packet(&ts(packet(1, 4, None, true))),
            Continuity::Duplicate
        );
        assert_eq!(
            c.on_packet(&ts(packet(1, 4, None, true))),
            Continuity::Error {
                expected: 5,
                found: 4
            }
        );
    }

    #[test]
    fn null_pid_is_not_checked() {
        let mut c = ContinuityCounters::new();
        c.on_packet(&ts(packet(NULL_PID, 0, None, true)));
        assert_eq!(
            c.on_packet(&ts(packet(NULL_PID, 9, None, true))),
            Continuity::InSequence
        );
    }
}
