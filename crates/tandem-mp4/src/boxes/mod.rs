//! ISO-BMFF box headers, the streaming top-level reader and the typed
//! boxes Smooth ingest needs (ISO/IEC 14496-12 §4.2).
//!
//! A box is `size:u32 type:u32 [largesize:u64] [usertype:u8[16]] payload`.
//! `size == 1` means a 64-bit `largesize` follows; `size == 0` means the box
//! runs to the end of its container (at top level: to the end of the body);
//! type `uuid` carries a 16-byte extended type. Every header this module
//! reads is checked against the bytes actually present: a declared size
//! smaller than the header, larger than the parent or larger than the
//! configured limit is a typed error, never a panic or an allocation.
//!
//! - [`reader`]: [`BoxReader`], top-level boxes out of a body that arrives
//!   in pieces of any size.
//! - [`children`]: the boxes inside a complete payload, and bounds-checked
//!   field reads.
//! - [`ftyp`], [`moov`], [`moof`]: the typed views of `ftyp`,
//!   `moov`/`trak`/`tkhd`/`mdhd`/`hdlr`/`mvex`/`trex` and
//!   `moof`/`mfhd`/`traf`/`tfhd`/`trun`.

pub mod children;
pub mod ftyp;
pub mod moof;
pub mod moov;
pub mod reader;

pub use children::{Child, Children, children};
pub use ftyp::Ftyp;
pub use moof::{MovieFragment, TrackFragment, TrackFragmentHeader, TrackRun};
pub use moov::{Movie, MovieTrack, TrackExtends};
pub use reader::{BoxReader, BoxReaderConfig};

use bytes::Bytes;
use std::fmt;

/// A four-character box type or brand (ISO/IEC 14496-12 §4.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const FTYP: Self = Self(*b"ftyp");
    pub const MOOV: Self = Self(*b"moov");
    pub const MVHD: Self = Self(*b"mvhd");
    pub const TRAK: Self = Self(*b"trak");
    pub const TKHD: Self = Self(*b"tkhd");
    pub const MDIA: Self = Self(*b"mdia");
    pub const MDHD: Self = Self(*b"mdhd");
    pub const HDLR: Self = Self(*b"hdlr");
    pub const MVEX: Self = Self(*b"mvex");
    pub const TREX: Self = Self(*b"trex");
    pub const MOOF: Self = Self(*b"moof");
    pub const MFHD: Self = Self(*b"mfhd");
    pub const TRAF: Self = Self(*b"traf");
    pub const TFHD: Self = Self(*b"tfhd");
    pub const TRUN: Self = Self(*b"trun");
    pub const MDAT: Self = Self(*b"mdat");
    pub const MFRA: Self = Self(*b"mfra");
    pub const FREE: Self = Self(*b"free");
    pub const SKIP: Self = Self(*b"skip");
    pub const UUID: Self = Self(*b"uuid");

    /// Whether all four bytes are printable ASCII, as every registered box
    /// type is.
    pub fn is_printable(self) -> bool {
        self.0.iter().all(|b| (0x20..=0x7e).contains(b))
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_printable() {
            for &b in &self.0 {
                write!(f, "{}", char::from(b))?;
            }
            Ok(())
        } else {
            write!(f, "0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc({self})")
    }
}

/// A 16-byte `uuid` extended type, written as in RFC 4122
/// (`a5d40b30-e814-11dd-ba2f-0800200c9a66`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// What a box is: a plain four-character type, or `uuid` with its extended
/// type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BoxType {
    FourCc(FourCc),
    Uuid(Uuid),
}

impl BoxType {
    /// The 32-bit type field as sent (`uuid` for extended types).
    pub fn fourcc(self) -> FourCc {
        match self {
            Self::FourCc(f) => f,
            Self::Uuid(_) => FourCc::UUID,
        }
    }
}

impl fmt::Display for BoxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FourCc(c) => c.fmt(f),
            Self::Uuid(u) => write!(f, "uuid {u}"),
        }
    }
}

/// How the box's size was written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SizeField {
    /// A 32-bit `size`.
    Compact,
    /// `size == 1` and a 64-bit `largesize`.
    Large,
    /// `size == 0`: the box runs to the end of its container or of the body.
    ToEnd,
}

/// One box header, located in the stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BoxHeader {
    /// Byte offset of the box's first header byte from the start of the
    /// body (for children: from the start of the same body, too).
    pub offset: u64,
    pub box_type: BoxType,
    /// Total size in bytes, header included. For a [`SizeField::ToEnd`]
    /// box read from a stream this is known, and set, once the body ended.
    pub size: u64,
    /// 8, 16 (`largesize`), 24 (`uuid`) or 32 (`largesize` and `uuid`).
    pub header_len: u8,
    pub size_field: SizeField,
}

impl BoxHeader {
    /// The payload's size (everything after the header).
    pub fn payload_len(&self) -> u64 {
        self.size.saturating_sub(u64::from(self.header_len))
    }
}

/// A complete top-level box: its header and its exact bytes, header
/// included.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RawBox {
    pub header: BoxHeader,
    pub bytes: Bytes,
}

impl RawBox {
    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        self.bytes
            .get(usize::from(self.header.header_len)..)
            .unwrap_or_default()
    }
}

/// A box that cannot be read.
///
/// Offsets count bytes from the start of the body the reader was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BoxError {
    #[error("byte {offset}: box type {found} is not four printable characters; is this ISO-BMFF?")]
    BadType { offset: u64, found: FourCc },
    #[error("byte {offset}: {box_type} box declares {size} bytes, less than its {min}-byte header")]
    SizeBelowHeader {
        offset: u64,
        box_type: BoxType,
        size: u64,
        min: u8,
    },
    #[error("byte {offset}: {box_type} box declares {size} bytes, over the {max}-byte box limit")]
    TooLarge {
        offset: u64,
        box_type: BoxType,
        size: u64,
        max: u64,
    },
    #[error(
        "byte {offset}: {box_type} box runs to the end of the body (size 0) and passed the {max}-byte box limit"
    )]
    ToEndTooLarge {
        offset: u64,
        box_type: BoxType,
        max: u64,
    },
    #[error(
        "byte {offset}: {box_type} box declares {size} bytes but its parent has only {available} left"
    )]
    OverflowsParent {
        offset: u64,
        box_type: BoxType,
        size: u64,
        available: u64,
    },
    #[error("byte {offset}: body ended {received} bytes into a box header")]
    TruncatedHeader { offset: u64, received: u64 },
    #[error(
        "byte {offset}: body ended {received} bytes into a {box_type} box that declares {size} bytes"
    )]
    Truncated {
        offset: u64,
        box_type: BoxType,
        size: u64,
        received: u64,
    },
    #[error(
        "byte {offset}: {box_type} box has {len} payload bytes, too few for its {field} (needs {needed})"
    )]
    ShortPayload {
        offset: u64,
        box_type: BoxType,
        field: &'static str,
        needed: u64,
        len: u64,
    },
    #[error("byte {offset}: {box_type} box version {version} is not supported (expected 0 or 1)")]
    UnsupportedVersion {
        offset: u64,
        box_type: BoxType,
        version: u8,
    },
    #[error("byte {offset}: {parent} box has no {child} box")]
    MissingChild {
        offset: u64,
        parent: FourCc,
        child: FourCc,
    },
}

/// The header of a box whose first bytes are in `buf`.
pub(crate) enum HeaderParse {
    /// At least this many bytes (counted from the box's start) are needed.
    NeedMore(usize),
    Header(BoxHeader),
}

/// Reads the box header at the start of `buf`, located at `offset`.
///
/// `size == 0` gives [`SizeField::ToEnd`] with `size` set to 0; the caller
/// decides where the end is. Checks only that the declared size covers the
/// header.
pub(crate) fn parse_header(buf: &[u8], offset: u64) -> Result<HeaderParse, BoxError> {
    let Some(first) = buf.get(..8) else {
        return Ok(HeaderParse::NeedMore(8));
    };
    let size32 = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    let fourcc = FourCc([first[4], first[5], first[6], first[7]]);
    let mut header_len = 8usize;
    let (size, size_field) = match size32 {
        0 => (0, SizeField::ToEnd),
        1 => {
            let Some(large) = buf.get(8..16) else {
                return Ok(HeaderParse::NeedMore(needed(16, fourcc)));
            };
            header_len = 16;
            let mut b = [0u8; 8];
            b.copy_from_slice(large);
            (u64::from_be_bytes(b), SizeField::Large)
        }
        n => (u64::from(n), SizeField::Compact),
    };
    let box_type = if fourcc == FourCc::UUID {
        let Some(ext) = buf.get(header_len..header_len + 16) else {
            return Ok(HeaderParse::NeedMore(header_len + 16));
        };
        header_len += 16;
        let mut u = [0u8; 16];
        u.copy_from_slice(ext);
        BoxType::Uuid(Uuid(u))
    } else {
        BoxType::FourCc(fourcc)
    };
    // header_len is at most 32.
    let header_len = header_len as u8;
    if size_field != SizeField::ToEnd && size < u64::from(header_len) {
        return Err(BoxError::SizeBelowHeader {
            offset,
            box_type,
            size,
            min: header_len,
        });
    }
    Ok(HeaderParse::Header(BoxHeader {
        offset,
        box_type,
        size,
        header_len,
        size_field,
    }))
}

fn needed(base: usize, fourcc: FourCc) -> usize {
    if fourcc == FourCc::UUID {
        base + 16
    } else {
        base
    }
}
