//! ISO-BMFF (fragmented MP4) boxes over a streaming body, and the pieces of
//! a Microsoft Smooth Streaming push that an origin files fragments by.
//!
//! An encoder pushing Smooth (AWS Elemental MediaLive, ffmpeg's `ismv`
//! muxer) POSTs one long body per stream: `ftyp`, the Live Server Manifest,
//! `moov`, then `moof`/`mdat` fragments each stamped with a `tfxd` time,
//! and `mfra` at the end. This crate reads such a body piece by piece, as
//! the HTTP layer receives it, and hands out complete items: the parsed
//! header boxes and each fragment's track, time, duration and exact bytes,
//! untouched, ready to be stored and served.
//!
//! No sockets, no clock, no files, no panics on any input: bytes come in,
//! items or typed errors come out; the caller reads the body, stores the
//! fragments and decides what an error means for its response.
//!
//! - [`boxes`]: box headers (32- and 64-bit sizes, `size == 0`, `uuid`
//!   types), [`BoxReader`] over a streamed body with a box size limit, the
//!   children of a container, and `ftyp`, `moov`, `moof` typed reads.
//! - [`smooth`]: [`SmoothReader`] (the push, item by item), the Live Server
//!   Manifest (SMIL: tracks, bitrates, codec private data), `tfxd`, `tfrf`,
//!   and [`Fragment`]; [`with_tfrf`] writes a look-ahead into a fragment
//!   an origin serves.

pub mod boxes;
pub mod smooth;

pub use boxes::{
    BoxError, BoxHeader, BoxReader, BoxReaderConfig, BoxType, FourCc, RawBox, SizeField, Uuid,
};
pub use smooth::{
    Fragment, Item, LiveServerManifest, LookaheadError, ManifestError, ManifestTrack, SmoothError,
    SmoothReader, Tfrf, Tfxd, TrackKind, with_tfrf,
};
