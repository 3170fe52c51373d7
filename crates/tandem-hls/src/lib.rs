//! HLS as encoders write it, and one output merged from two pipelines.
//!
//! No sockets, no clock, no files: playlists come in as text, time comes in
//! as a parameter, events and playlist text come out.
//!
//! - [`naming`]: segment counters in encoder file names.
//! - [`playlist`]: media and multivariant playlists, parsed without losing a
//!   line, serialized back.
//! - [`in_effect`]: the `EXT-X-MAP` and `EXT-X-KEY` in effect for each
//!   segment, and what an output must write again to keep them.
//! - [`merge`]: the failover engine that turns two pipelines' playlists into
//!   one output per rendition.

pub mod in_effect;
pub mod merge;
pub mod naming;
pub mod playlist;

pub use merge::{
    Event, InputState, MergeConfig, RenditionMerge, RestoreError, SavedMerge, SwitchReason,
};
pub use playlist::{
    MediaPlaylist, PlaylistError, Segment, is_multivariant, parse_media, referenced_uris,
};
