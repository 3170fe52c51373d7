//! SMPTE ST 2022-1 forward error correction: the FEC packet format and the
//! XOR recovery of one media packet.
//!
//! ST 2022-1 (§8) carries RFC 2733 parity packets with the 2022-1 header
//! extension. Each FEC packet is an RTP packet (12-byte header) followed by
//! this 16-byte FEC header and the XOR of the protected packets' bytes after
//! their fixed RTP header:
//!
//! ```text
//! | SNBase low bits (16)          | Length recovery (16)          |
//! |E| PT recovery (7) | Mask (24)                                 |
//! | TS recovery (32)                                              |
//! |X|D|type(3)|index(3)| Offset (8) | NA (8) | SNBase ext bits (8) |
//! ```
//!
//! A column FEC packet (`D` = 0, sent on the media port + 2) protects `NA`
//! = D packets spaced `Offset` = L apart: `SNBase`, `SNBase + L`, …; a row
//! FEC packet (`D` = 1, media port + 4) protects `NA` = L consecutive
//! packets (`Offset` = 1). MediaLive sends columns of depth D 4–20 and rows
//! of length L 1–20 (4–20 when rows are sent).
//!
//! Recovery follows RFC 2733 §7: the lost packet's payload type, timestamp
//! and length (bytes after the fixed header) are the XOR of the FEC
//! packet's recovery fields with those of the other protected packets; its
//! P, X, CC and M bits are the XOR of the FEC packet's own RTP header bits
//! with theirs (ST 2022-1 senders set all four to zero, as do the media
//! packets); its SSRC is the stream's. The result is the lost datagram, bit
//! for bit.

use bytes::{BufMut, Bytes, BytesMut};

use crate::rtp::RTP_HEADER_LEN;

/// Length of the ST 2022-1 FEC header after the FEC packet's RTP header.
pub const FEC_HEADER_LEN: usize = 16;

/// Which FEC stream a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecDirection {
    /// Packets `L` apart (`D` bit 0), on the media port + 2.
    Column,
    /// Consecutive packets (`D` bit 1), on the media port + 4.
    Row,
}

/// Why a datagram is not a usable ST 2022-1 FEC packet, or why recovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    #[error("FEC datagram of {len} bytes is shorter than the 28-byte RTP and FEC headers")]
    TooShort { len: usize },
    #[error("FEC packet RTP version {found}, expected 2")]
    BadVersion { found: u8 },
    #[error("FEC header E bit is 0: not an ST 2022-1 FEC packet (RFC 2733 without extension)")]
    NoExtension,
    #[error("FEC type {found} is not XOR (0); only ST 2022-1 XOR parity is supported")]
    UnsupportedType { found: u8 },
    #[error(
        "{direction:?} FEC packet with offset {offset} and NA {na}; ST 2022-1 allows {expected}"
    )]
    BadMatrix {
        direction: FecDirection,
        offset: u8,
        na: u8,
        expected: &'static str,
    },
    #[error(
        "recovered length {length} exceeds the FEC payload of {available} bytes; the protected packets do not match this FEC packet"
    )]
    LengthMismatch { length: usize, available: usize },
    #[error("media packet of {len} bytes is shorter than the RTP header")]
    ShortMedia { len: usize },
    #[error(
        "the rebuilt packet is not RTP carrying whole MPEG-TS packets ({reason}); the FEC packet does not protect the media received"
    )]
    NotMedia { reason: String },
    #[error(
        "the rebuilt packet's RTP timestamp {rebuilt} is more than 1 s from those of the packets it was rebuilt with ({low}..={high}); the FEC packet does not protect the media received"
    )]
    ImplausibleTimestamp { rebuilt: u32, low: u32, high: u32 },
}

/// How far (90 kHz ticks: 1 s) a rebuilt packet's RTP timestamp may lie
/// outside the timestamps of the packets it was rebuilt with. A protection
/// group spans at most 400 packets, well under a second of any live
/// stream; a FEC packet computed over another stream (an encoder that
/// restarted, with its random timestamp base) rebuilds a timestamp that is
/// anywhere in the 32-bit range.
const TIMESTAMP_SLACK: i64 = 90_000;

/// One parsed FEC packet (a view into its datagram).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FecPacket {
    datagram: Bytes,
    /// The FEC stream's own RTP sequence number.
    pub fec_sequence_number: u16,
    /// First protected media sequence number.
    pub sn_base: u16,
    pub length_recovery: u16,
    pub pt_recovery: u8,
    pub mask: u32,
    pub ts_recovery: u32,
    pub direction: FecDirection,
    /// `L` for a column, 1 for a row.
    pub offset: u8,
    /// `D` for a column, `L` for a row.
    pub na: u8,
}

impl FecPacket {
    /// Parses and validates an FEC datagram (RTP header + FEC header + payload).
    pub fn parse(datagram: Bytes) -> Result<Self, FecError> {
        let len = datagram.len();
        let Some(h) = datagram.get(..RTP_HEADER_LEN + FEC_HEADER_LEN) else {
            return Err(FecError::TooShort { len });
        };
        if h[0] >> 6 != 2 {
            return Err(FecError::BadVersion { found: h[0] >> 6 });
        }
        let fec_sequence_number = u16::from_be_bytes([h[2], h[3]]);
        let f = &h[RTP_HEADER_LEN..];
        if f[4] & 0x80 == 0 {
            return Err(FecError::NoExtension);
        }
        let kind = (f[12] >> 3) & 0x07;
        if kind != 0 {
            return Err(FecError::UnsupportedType { found: kind });
        }
        let direction = if f[12] & 0x40 == 0 {
            FecDirection::Column
        } else {
            FecDirection::Row
        };
        let offset = f[13];
        let na = f[14];
        let ok = match direction {
            FecDirection::Column => (1..=20).contains(&offset) && (4..=20).contains(&na),
            FecDirection::Row => offset == 1 && (1..=20).contains(&na),
        };
        if !ok {
            return Err(FecError::BadMatrix {
                direction,
                offset,
                na,
                expected: match direction {
                    FecDirection::Column => "offset L 1-20 and NA D 4-20",
                    FecDirection::Row => "offset 1 and NA L 1-20",
                },
            });
        }
        Ok(Self {
            fec_sequence_number,
            sn_base: u16::from_be_bytes([f[0], f[1]]),
            length_recovery: u16::from_be_bytes([f[2], f[3]]),
            pt_recovery: f[4] & 0x7f,
            mask: u32::from_be_bytes([0, f[5], f[6], f[7]]),
            ts_recovery: u32::from_be_bytes([f[8], f[9], f[10], f[11]]),
            direction,
            offset,
            na,
            datagram,
        })
    }

    /// The XOR of the protected packets' bytes after their RTP header.
    pub fn payload(&self) -> &[u8] {
        self.datagram
            .get(RTP_HEADER_LEN + FEC_HEADER_LEN..)
            .unwrap_or_default()
    }

    /// The datagram, as received.
    pub fn datagram(&self) -> &Bytes {
        &self.datagram
    }

    /// The 16-bit sequence numbers this packet protects, in order.
    pub fn protected(&self) -> impl Iterator<Item = u16> + '_ {
        (0..u16::from(self.na)).map(|i| {
            self.sn_base
                .wrapping_add(i.wrapping_mul(u16::from(self.offset)))
        })
    }

    /// Rebuilds the media datagram with sequence number `missing` and SSRC
    /// `ssrc` from this FEC packet and the `others` protected datagrams
    /// (every protected packet but the missing one, in any order).
    pub fn recover<'a>(
        &self,
        missing: u16,
        ssrc: u32,
        others: impl IntoIterator<Item = &'a Bytes>,
    ) -> Result<Bytes, FecError> {
        let fec_rtp = &self.datagram[..2];
        let mut bits0 = fec_rtp[0] & 0x3f;
        let mut marker = fec_rtp[1] & 0x80;
        let mut pt = self.pt_recovery;
        let mut ts = self.ts_recovery;
        let mut length = self.length_recovery;
        let mut body = BytesMut::from(self.payload());
        // The others' timestamps, relative to the first one's.
        let mut first_ts = None;
        let (mut lowest, mut highest) = (0i64, 0i64);
        for o in others {
            if o.len() < RTP_HEADER_LEN {
                return Err(FecError::ShortMedia { len: o.len() });
            }
            bits0 ^= o[0] & 0x3f;
            marker ^= o[1] & 0x80;
            pt ^= o[1] & 0x7f;
            let o_ts = u32::from_be_bytes([o[4], o[5], o[6], o[7]]);
            ts ^= o_ts;
            let d = relative(o_ts, *first_ts.get_or_insert(o_ts));
            lowest = lowest.min(d);
            highest = highest.max(d);
            let rest = &o[RTP_HEADER_LEN..];
            length ^= rest.len() as u16;
            if rest.len() > body.len() {
                body.resize(rest.len(), 0);
            }
            for (b, r) in body.iter_mut().zip(rest) {
                *b ^= r;
            }
        }
        let length = usize::from(length);
        if length > body.len() {
            return Err(FecError::LengthMismatch {
                length,
                available: body.len(),
            });
        }
        if let Some(first) = first_ts {
            let d = relative(ts, first);
            if d < lowest - TIMESTAMP_SLACK || d > highest + TIMESTAMP_SLACK {
                return Err(FecError::ImplausibleTimestamp {
                    rebuilt: ts,
                    low: first.wrapping_add(lowest as u32),
                    high: first.wrapping_add(highest as u32),
                });
            }
        }
        let mut out = BytesMut::with_capacity(RTP_HEADER_LEN + length);
        out.put_u8(0x80 | bits0);
        out.put_u8(marker | pt);
        out.put_u16(missing);
        out.put_u32(ts);
        out.put_u32(ssrc);
        out.put_slice(&body[..length]);
        let out = out.freeze();
        // XOR parity has no integrity check of its own: a forged or
        // mismatched FEC packet rebuilds garbage. What goes out must at
        // least be what the missing slot holds on this flow: RTP whose
        // payload is whole MPEG-TS packets.
        let rtp = crate::rtp::RtpPacket::parse(out.clone()).map_err(|e| FecError::NotMedia {
            reason: e.to_string(),
        })?;
        let payload = rtp.payload();
        let ts = crate::ts::TS_PACKET_LEN;
        if payload.is_empty() || payload.len() % ts != 0 {
            return Err(FecError::NotMedia {
                reason: format!("a payload of {} bytes", payload.len()),
            });
        }
        if let Some(k) = payload
            .chunks(ts)
            .position(|p| p.first() != Some(&crate::ts::SYNC_BYTE))
        {
            return Err(FecError::NotMedia {
                reason: format!("no sync byte at TS packet {k}"),
            });
        }
        Ok(out)
    }

    /// Builds the FEC datagram protecting `media` (whole RTP datagrams, in
    /// protection order) as a sender does: what test tools and the fuzzer
    /// send. `fec_sequence_number` numbers the FEC stream itself.
    pub fn encode(
        direction: FecDirection,
        fec_sequence_number: u16,
        sn_base: u16,
        offset: u8,
        media: &[Bytes],
    ) -> Result<Bytes, FecError> {
        let mut bits0 = 0u8;
        let mut marker = 0u8;
        let mut pt = 0u8;
        let mut ts = 0u32;
        let mut length = 0u16;
        let mut body: Vec<u8> = Vec::new();
        for m in media {
            if m.len() < RTP_HEADER_LEN {
                return Err(FecError::ShortMedia { len: m.len() });
            }
            bits0 ^= m[0] & 0x3f;
            marker ^= m[1] & 0x80;
            pt ^= m[1] & 0x7f;
            ts ^= u32::from_be_bytes([m[4], m[5], m[6], m[7]]);
            let rest = &m[RTP_HEADER_LEN..];
            length ^= rest.len() as u16;
            if rest.len() > body.len() {
                body.resize(rest.len(), 0);
            }
            for (b, r) in body.iter_mut().zip(rest) {
                *b ^= r;
            }
        }
        let mut out = BytesMut::with_capacity(RTP_HEADER_LEN + FEC_HEADER_LEN + body.len());
        out.put_u8(0x80 | bits0);
        // Dynamic payload type 96, as ST 2022-1 senders use.
        out.put_u8(marker | 96);
        out.put_u16(fec_sequence_number);
        out.put_u32(0);
        out.put_u32(0);
        out.put_u16(sn_base);
        out.put_u16(length);
        out.put_u8(0x80 | pt);
        out.put_slice(&[0, 0, 0]);
        out.put_u32(ts);
        out.put_u8(match direction {
            FecDirection::Column => 0,
            FecDirection::Row => 0x40,
        });
        out.put_u8(offset);
        out.put_u8(media.len() as u8);
        out.put_u8(0);
        out.put_slice(&body);
        Ok(out.freeze())
    }
}

/// `ts` minus `reference` on the 32-bit RTP clock, as the nearer way round.
fn relative(ts: u32, reference: u32) -> i64 {
    i64::from(ts.wrapping_sub(reference) as i32)
}

/// The RTP timestamp of a datagram at least an RTP header long.
pub(crate) fn rtp_timestamp(datagram: &[u8]) -> Option<u32> {
    let b = datagram.get(4..8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Whether RTP timestamps `a` and `b` are within the slack of one another:
/// packets of one stream close together in sequence are.
pub(crate) fn timestamps_near(a: u32, b: u32) -> bool {
    relative(a, b).abs() <= TIMESTAMP_SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTP datagram with `len` payload bytes that are not MPEG-TS.
    fn raw(seq: u16, len: usize) -> Bytes {
        let mut v = vec![0x80, 33];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&(u32::from(seq) * 3003).to_be_bytes());
        v.extend_from_slice(&0xabcd_0123u32.to_be_bytes());
        v.extend((0..len).map(|i| (i as u16 ^ seq.wrapping_mul(7)) as u8 | 1));
        Bytes::from(v)
    }

    /// An RTP datagram carrying `packets` MPEG-TS packets.
    fn media(seq: u16, packets: usize) -> Bytes {
        let mut v = raw(seq, packets * 188).to_vec();
        for k in 0..packets {
            v[12 + k * 188] = 0x47;
        }
        Bytes::from(v)
    }

    #[test]
    fn column_fec_header_round_trips() {
        let m: Vec<Bytes> = (0..4).map(|i| media(100 + i * 5, 7)).collect();
        let f = FecPacket::parse(FecPacket::encode(FecDirection::Column, 7, 100, 5, &m).unwrap())
            .unwrap();
        assert_eq!(f.direction, FecDirection::Column);
        assert_eq!(f.sn_base, 100);
        assert_eq!(f.offset, 5);
        assert_eq!(f.na, 4);
        assert_eq!(f.fec_sequence_number, 7);
        assert_eq!(f.protected().collect::<Vec<_>>(), vec![100, 105, 110, 115]);
        assert_eq!(f.payload().len(), 1316);
    }

    #[test]
    fn any_single_loss_is_recovered_bit_exact_with_unequal_lengths() {
        let m: Vec<Bytes> = (0..5u16)
            .map(|i| media(65534u16.wrapping_add(i), 1 + usize::from(i)))
            .collect();
        let f = FecPacket::parse(FecPacket::encode(FecDirection::Row, 1, 65534, 1, &m).unwrap())
            .unwrap();
        for lost in 0..m.len() {
            let others: Vec<&Bytes> = m
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != lost)
                .map(|(_, b)| b)
                .collect();
            let seq = 65534u16.wrapping_add(lost as u16);
            assert_eq!(f.recover(seq, 0xabcd_0123, others).unwrap(), m[lost]);
        }
    }

    #[test]
    fn fec_without_extension_bit_is_refused() {
        let m = vec![raw(1, 10); 4];
        let mut v = FecPacket::encode(FecDirection::Column, 0, 1, 1, &m)
            .unwrap()
            .to_vec();
        v[16] &= 0x7f;
        assert_eq!(FecPacket::parse(Bytes::from(v)), Err(FecError::NoExtension));
    }

    #[test]
    fn matrix_outside_the_standard_is_refused() {
        let m = vec![raw(1, 10); 3];
        let d = FecPacket::encode(FecDirection::Column, 0, 1, 4, &m).unwrap();
        assert_eq!(
            FecPacket::parse(d),
            Err(FecError::BadMatrix {
                direction: FecDirection::Column,
                offset: 4,
                na: 3,
                expected: "offset L 1-20 and NA D 4-20"
            })
        );
        let m = vec![raw(1, 10); 4];
        let d = FecPacket::encode(FecDirection::Row, 0, 1, 2, &m).unwrap();
        assert!(matches!(
            FecPacket::parse(d),
            Err(FecError::BadMatrix { .. })
        ));
    }

    #[test]
    fn short_fec_datagram_is_refused() {
        assert_eq!(
            FecPacket::parse(Bytes::from_static(&[0x80; 27])),
            Err(FecError::TooShort { len: 27 })
        );
    }

    #[test]
    fn inconsistent_length_is_reported_not_panicked() {
        let m: Vec<Bytes> = (0..4).map(|i| raw(i, 4)).collect();
        let f = FecPacket::parse(FecPacket::encode(FecDirection::Column, 0, 0, 1, &m).unwrap())
            .unwrap();
        let other = raw(9, 3);
        let r = f.recover(0, 1, [&m[1], &other]);
        assert!(matches!(r, Err(FecError::LengthMismatch { .. })));
    }

    /// XOR has no integrity of its own: a FEC packet that does not protect
    /// what was received (forged, or of another flow) rebuilds garbage,
    /// which is refused rather than sent on as the missing packet.
    #[test]
    fn a_rebuilt_packet_that_is_not_mpeg_ts_is_refused() {
        let m: Vec<Bytes> = (0..4).map(|i| media(i, 7)).collect();
        let forged: Vec<Bytes> = (0..4).map(|i| raw(i, 7 * 188)).collect();
        let f =
            FecPacket::parse(FecPacket::encode(FecDirection::Column, 0, 0, 1, &forged).unwrap())
                .unwrap();
        let r = f.recover(0, 0xabcd_0123, [&m[1], &m[2], &m[3]]);
        assert!(matches!(r, Err(FecError::NotMedia { .. })), "{r:?}");
        let f = FecPacket::parse(FecPacket::encode(FecDirection::Column, 0, 0, 1, &m).unwrap())
            .unwrap();
        assert_eq!(
            f.recover(0, 0xabcd_0123, [&m[1], &m[2], &m[3]]).unwrap(),
            m[0]
        );
    }

    /// `p` with its RTP timestamp moved by `shift` ticks.
    fn shifted(p: &Bytes, shift: u32) -> Bytes {
        let mut v = p.to_vec();
        let ts = u32::from_be_bytes([v[4], v[5], v[6], v[7]]).wrapping_add(shift);
        v[4..8].copy_from_slice(&ts.to_be_bytes());
        Bytes::from(v)
    }

    #[test]
    fn fec_over_another_stream_with_whole_ts_packets_is_refused_by_its_timestamp() {
        // Another encoder's stream: the same TS framing, so the rebuilt
        // payload passes the sync-byte check, but its own timestamp base.
        let ours: Vec<Bytes> = (0..4).map(|i| media(i, 7)).collect();
        let theirs: Vec<Bytes> = [0x6b8b_4567u32, 0x327b_23c6, 0x6b8b_4567, 0x6b8b_4567]
            .iter()
            .zip(&ours)
            .map(|(base, p)| shifted(p, *base))
            .collect();
        let f =
            FecPacket::parse(FecPacket::encode(FecDirection::Column, 0, 0, 1, &theirs).unwrap())
                .unwrap();
        let r = f.recover(0, 0xabcd_0123, [&ours[1], &ours[2], &ours[3]]);
        assert!(
            matches!(r, Err(FecError::ImplausibleTimestamp { .. })),
            "{r:?}"
        );
    }

    #[test]
    fn a_stream_whose_timestamps_wrap_inside_the_group_is_recovered() {
        // Timestamps 0xffff_f000 + 3003 k: the group crosses 2^32.
        let m: Vec<Bytes> = (0..4).map(|i| shifted(&media(i, 7), 0xffff_f000)).collect();
        let f = FecPacket::parse(FecPacket::encode(FecDirection::Column, 0, 0, 1, &m).unwrap())
            .unwrap();
        for lost in 0..4 {
            let others: Vec<&Bytes> = (0..4).filter(|k| *k != lost).map(|k| &m[k]).collect();
            assert_eq!(
                f.recover(lost as u16, 0xabcd_0123, others).unwrap(),
                m[lost]
            );
        }
    }
}
