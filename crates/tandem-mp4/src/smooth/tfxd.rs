//! `tfxd`, the Smooth track fragment extended header (MS-SSTR §2.2.4.4):
//! a `uuid` box in `traf` giving the fragment's absolute start time and
//! duration in the track's timescale. Its time is what names the fragment
//! in the client's URL (`Fragments(video=<time>)`).

use crate::boxes::children::Fields;
use crate::boxes::{BoxError, BoxHeader, Uuid};

/// `6d1d9b05-42d5-44e6-80e2-141daff757b2`.
pub const TFXD_UUID: Uuid = Uuid([
    0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2,
]);

/// A fragment's absolute time and duration, in the track's timescale.
///
/// The field is unsigned 64-bit as the specification says. ffmpeg 5.1
/// writes an audio track's first fragment, whose first sample is the AAC
/// encoder's priming (negative decode time), as the two's complement of
/// the negative time (e.g. -213333 → 18446744073709338283); wrapping
/// arithmetic keeps such a track contiguous: `time.wrapping_add(duration)`
/// is the next fragment's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tfxd {
    /// 0 (32-bit fields) or 1 (64-bit fields).
    pub version: u8,
    /// `fragment_absolute_time`.
    pub time: u64,
    /// `fragment_duration`.
    pub duration: u64,
}

impl Tfxd {
    /// Reads a `tfxd` payload (after the `uuid` extended type).
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, BoxError> {
        let mut f = Fields::new(header, payload);
        let (version, _) = f.version_0_or_1()?;
        let time = f.u32_or_u64(version, "fragment_absolute_time")?;
        let duration = f.u32_or_u64(version, "fragment_duration")?;
        Ok(Self {
            version,
            time,
            duration,
        })
    }

    /// The time the next fragment of the same track starts at.
    pub fn end(&self) -> u64 {
        self.time.wrapping_add(self.duration)
    }

    /// The time read as signed, for the negative start times ffmpeg writes.
    pub fn signed_time(&self) -> i64 {
        i64::from_ne_bytes(self.time.to_ne_bytes())
    }
}
