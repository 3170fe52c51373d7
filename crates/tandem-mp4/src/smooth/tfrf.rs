//! `tfrf`, the Smooth track fragment reference (MS-SSTR §2.2.4.5): a `uuid`
//! box in `traf` announcing the absolute times and durations of the
//! fragments that follow (look-ahead), used by live clients to learn of
//! fragments before the manifest names them.

use crate::boxes::children::Fields;
use crate::boxes::{BoxError, BoxHeader, Uuid};

/// `d4807ef2-ca39-4695-8e54-26cb9e46a79f`.
pub const TFRF_UUID: Uuid = Uuid([
    0xd4, 0x80, 0x7e, 0xf2, 0xca, 0x39, 0x46, 0x95, 0x8e, 0x54, 0x26, 0xcb, 0x9e, 0x46, 0xa7, 0x9f,
]);

/// The following fragments a `tfrf` announces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tfrf {
    /// 0 (32-bit fields) or 1 (64-bit fields).
    pub version: u8,
    /// `(fragment_absolute_time, fragment_duration)`, in order.
    pub entries: Vec<(u64, u64)>,
}

impl Tfrf {
    /// Reads a `tfrf` payload (after the `uuid` extended type). The count
    /// is one byte, so at most 255 entries are ever read.
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, BoxError> {
        let mut f = Fields::new(header, payload);
        let (version, _) = f.version_0_or_1()?;
        let count = f.u8("fragment_count")?;
        let mut entries = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let time = f.u32_or_u64(version, "fragment_absolute_time")?;
            let duration = f.u32_or_u64(version, "fragment_duration")?;
            entries.push((time, duration));
        }
        Ok(Self { version, entries })
    }
}
