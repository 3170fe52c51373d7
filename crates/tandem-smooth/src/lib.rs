//! A Microsoft Smooth Streaming publishing point fed by two redundant
//! encoders: their fragments de-duplicated into one timeline per track,
//! served through one client manifest ([MS-SSTR]).
//!
//! No sockets, no clock, no files: notices of pushes and stored fragments
//! come in with `now`, events and manifest text come out. Parsing the
//! encoders' bodies (ISO-BMFF boxes, `tfxd`, the Live Server Manifest) is
//! the box reader's job; storing and serving bytes is the server's.
//!
//! - [`track`]: a publishing point's tracks, as a `QualityLevel` needs them.
//! - [`notice`]: what the ingest tells the engine (push started, fragment
//!   stored, push ended or dropped).
//! - [`merge`]: the redundancy engine (duplicates, fills, gaps, restarts,
//!   presentations, the DVR window), and its state saved across restarts.
//! - [`manifest`]: the client manifest writer and the fragment URL parser.
//! - [`error`]: why a push or a fragment URL is refused.
//!
//! [MS-SSTR]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-sstr/

pub mod error;
pub mod manifest;
pub mod merge;
pub mod notice;
pub mod track;

pub use error::{FragmentUrlError, SmoothError};
pub use manifest::{FragmentRequest, ManifestSettings, MinorVersion, parse_fragment_url};
pub use merge::{
    Counters, Event, OutFragment, RejectReason, RestoreError, SavedSmooth, SmoothConfig,
    SmoothMerge, StreamStatus,
};
pub use notice::{EndOfStream, FragmentNotice, StreamStart};
pub use track::{Track, TrackKey, TrackKind, TrackMedia};
