//! RTP fixed header, per RFC 3550 §5.1, over a shared [`Bytes`] datagram.
//!
//! Parsing validates what a receiver must trust before it orders packets by
//! sequence number: version 2, a CSRC list and header extension (§5.3.1)
//! that fit in the datagram, and padding (§5.1, `P` bit) whose count byte is
//! non-zero and no longer than what follows the header. The CSRC list and
//! extension are skipped, not interpreted; the padding is removed from the
//! payload. Nothing is copied: [`RtpPacket::payload`] is a slice of the
//! datagram, and [`RtpPacket::datagram`] the datagram itself, to forward as
//! received.

use bytes::Bytes;

/// Length of the fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// Payload type of MPEG-2 transport streams (RFC 3551 §6, RFC 2250): what
/// ffmpeg's `rtp_mpegts` muxer and MediaLive's RTP outputs send.
pub const PAYLOAD_TYPE_MP2T: u8 = 33;

/// Why a datagram is not a valid RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("datagram of {len} bytes is shorter than the 12-byte RTP header")]
    TooShort { len: usize },
    #[error("RTP version {found}, expected 2; is this plain UDP rather than RTP?")]
    BadVersion { found: u8 },
    #[error("RTP header with {csrc_count} CSRCs needs {needed} bytes, the datagram has {len}")]
    CsrcOverrun {
        csrc_count: u8,
        needed: usize,
        len: usize,
    },
    #[error("RTP header extension needs {needed} bytes, the datagram has {len}")]
    ExtensionOverrun { needed: usize, len: usize },
    #[error(
        "RTP padding count {count} is zero or longer than the {available} bytes after the header"
    )]
    BadPadding { count: u8, available: usize },
}

/// One parsed RTP packet: the header fields and where the payload sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    datagram: Bytes,
    payload_start: usize,
    payload_end: usize,
    /// `M` bit.
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// 16-bit sequence number, as sent.
    pub sequence_number: u16,
    /// 32-bit media timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Number of CSRC identifiers (skipped).
    pub csrc_count: u8,
    /// `X` bit: a header extension was present (skipped).
    pub extension: bool,
    /// `P` bit: padding was present (removed from the payload).
    pub padding: bool,
}

impl RtpPacket {
    /// Parses and validates `datagram`. The packet keeps the datagram.
    pub fn parse(datagram: Bytes) -> Result<Self, RtpError> {
        let len = datagram.len();
        let Some(fixed) = datagram.get(..RTP_HEADER_LEN) else {
            return Err(RtpError::TooShort { len });
        };
        let b0 = fixed[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion { found: version });
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let marker = fixed[1] & 0x80 != 0;
        let payload_type = fixed[1] & 0x7f;
        let sequence_number = u16::from_be_bytes([fixed[2], fixed[3]]);
        let timestamp = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let ssrc = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        let mut start = RTP_HEADER_LEN + 4 * usize::from(csrc_count);
        if start > len {
            return Err(RtpError::CsrcOverrun {
                csrc_count,
                needed: start,
                len,
            });
        }
        if extension {
            // §5.3.1: 16 bits profile-defined, 16 bits length in 32-bit words.
            let Some(ext) = datagram.get(start..start + 4) else {
                return Err(RtpError::ExtensionOverrun {
                    needed: start + 4,
                    len,
                });
            };
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            start += 4 + 4 * words;
            if start > len {
                return Err(RtpError::ExtensionOverrun { needed: start, len });
            }
        }
        let mut end = len;
        if padding {
            let available = len - start;
            let count = datagram.get(len - 1).copied().unwrap_or(0);
            if count == 0 || usize::from(count) > available {
                return Err(RtpError::BadPadding { count, available });
            }
            end -= usize::from(count);
        }
        Ok(Self {
            datagram,
            payload_start: start,
            payload_end: end,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrc_count,
            extension,
            padding,
        })
    }

    /// The payload, without CSRCs, extension or padding (zero-copy).
    pub fn payload(&self) -> Bytes {
        self.datagram.slice(self.payload_start..self.payload_end)
    }

    /// Where the payload lies in the datagram.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        self.payload_start..self.payload_end
    }

    /// The payload, borrowed.
    pub fn payload_slice(&self) -> &[u8] {
        self.datagram
            .get(self.payload_start..self.payload_end)
            .unwrap_or_default()
    }

    /// The whole datagram, as received.
    pub fn datagram(&self) -> &Bytes {
        &self.datagram
    }

    /// Consumes the packet and returns the datagram, as received.
    pub fn into_datagram(self) -> Bytes {
        self.datagram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(b0: u8, b1: u8, seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut v = vec![b0, b1];
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v
    }

    #[test]
    fn plain_header_gives_fields_and_payload() {
        let mut d = header(0x80, 0x80 | 33, 65535, 0xdead_beef, 0x0102_0304);
        d.extend_from_slice(b"payload");
        let p = RtpPacket::parse(Bytes::from(d.clone())).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 33);
        assert_eq!(p.sequence_number, 65535);
        assert_eq!(p.timestamp, 0xdead_beef);
        assert_eq!(p.ssrc, 0x0102_0304);
        assert_eq!(&p.payload()[..], b"payload");
        assert_eq!(&p.datagram()[..], &d[..]);
    }

    #[test]
    fn csrc_list_and_extension_are_skipped() {
        let mut d = header(0x80 | 0x10 | 2, 33, 1, 2, 3);
        d.extend_from_slice(&[0xaa; 8]); // two CSRCs
        d.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01]); // one word of extension
        d.extend_from_slice(&[0xbb; 4]);
        d.extend_from_slice(b"ts");
        let p = RtpPacket::parse(Bytes::from(d)).unwrap();
        assert_eq!(p.csrc_count, 2);
        assert!(p.extension);
        assert_eq!(&p.payload()[..], b"ts");
    }

    #[test]
    fn padding_is_removed() {
        let mut d = header(0x80 | 0x20, 33, 1, 2, 3);
        d.extend_from_slice(b"abc");
        d.extend_from_slice(&[0, 0, 3]);
        let p = RtpPacket::parse(Bytes::from(d)).unwrap();
        assert!(p.padding);
        assert_eq!(&p.payload()[..], b"abc");
    }

    #[test]
    fn short_datagram_is_refused() {
        assert_eq!(
            RtpPacket::parse(Bytes::from_static(&[0x80; 11])),
            Err(RtpError::TooShort { len: 11 })
        );
    }

    #[test]
    fn transport_stream_sync_byte_is_not_rtp() {
        let mut d = vec![0x47, 0x40, 0x00, 0x10];
        d.resize(188, 0xff);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::BadVersion { found: 1 })
        );
    }

    #[test]
    fn csrc_overrun_is_refused() {
        let d = header(0x80 | 3, 33, 1, 2, 3);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::CsrcOverrun {
                csrc_count: 3,
                needed: 24,
                len: 12
            })
        );
    }

    #[test]
    fn extension_overrun_is_refused() {
        let mut d = header(0x90, 33, 1, 2, 3);
        d.extend_from_slice(&[0, 0]);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d.clone())),
            Err(RtpError::ExtensionOverrun {
                needed: 16,
                len: 14
            })
        );
        d.extend_from_slice(&[0, 2, 1, 2, 3, 4]);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::ExtensionOverrun {
                needed: 24,
                len: 20
            })
        );
    }

    #[test]
    fn bad_padding_is_refused() {
        let mut d = header(0xa0, 33, 1, 2, 3);
        d.extend_from_slice(&[1, 2, 0]);
        assert_eq!(
            RtpPacket::parse(Bytes::from(d.clone())),
            Err(RtpError::BadPadding {
                count: 0,
                available: 3
            })
        );
        let last = d.len() - 1;
        d[last] = 4;
        assert_eq!(
            RtpPacket::parse(Bytes::from(d)),
            Err(RtpError::BadPadding {
                count: 4,
                available: 3
            })
        );
    }
}
