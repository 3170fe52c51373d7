//! One Smooth fragment: a `moof` and the `mdat` right after it, as the
//! encoder sent them, with the facts an origin files it under.

use super::{SmoothError, Tfrf, Tfxd};
use bytes::Bytes;

/// A complete fragment of one track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Byte offset of the `moof` in the body.
    pub offset: u64,
    /// `mfhd` sequence_number.
    pub sequence_number: u32,
    /// `tfhd` track_ID.
    pub track_id: u32,
    /// Absolute time and duration from `tfxd`; `None` when the fragment has
    /// no `tfxd` (see [`Fragment::timing`]).
    pub tfxd: Option<Tfxd>,
    /// The look-ahead entries of `tfrf`, if any.
    pub tfrf: Option<Tfrf>,
    /// Samples in the fragment's runs.
    pub sample_count: u64,
    /// The fragment's duration added up from its `trun`s (with `tfhd` or
    /// `trex` defaults), in the track's timescale; `None` when a run gives
    /// no durations and no default is known.
    pub run_duration: Option<u64>,
    /// Length of the `moof` at the start of `bytes`.
    pub moof_len: usize,
    /// The exact bytes of `moof` followed by `mdat`, shared with the
    /// reader's buffer (not copied).
    pub bytes: Bytes,
}

impl Fragment {
    /// The fragment's `tfxd`, or [`SmoothError::MissingTfxd`]: a Smooth
    /// origin names fragments by their `tfxd` time and cannot serve one
    /// without it.
    pub fn timing(&self) -> Result<Tfxd, SmoothError> {
        self.tfxd.ok_or(SmoothError::MissingTfxd {
            offset: self.offset,
            track_id: self.track_id,
        })
    }

    /// The duration from `tfxd`, else from the runs.
    pub fn duration(&self) -> Option<u64> {
        self.tfxd.map(|t| t.duration).or(self.run_duration)
    }

    /// The `moof` box's bytes.
    pub fn moof(&self) -> Bytes {
        self.bytes.slice(..self.moof_len.min(self.bytes.len()))
    }

    /// The `mdat` box's bytes.
    pub fn mdat(&self) -> Bytes {
        self.bytes.slice(self.moof_len.min(self.bytes.len())..)
    }
}
