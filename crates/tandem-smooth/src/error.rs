//! The crate's errors: what an ingest answers with a 4xx (a bad track, a
//! stream for an event that is over) and what a fragment request that is
//! not a Smooth fragment URL gets.

use tandem_core::Pipeline;

/// Why a pushed stream cannot join the publishing point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmoothError {
    #[error("track {track}: {field} must be {expected}, found {found:?}")]
    BadTrack {
        track: String,
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error(
        "track {track}: timescale {found} differs from {expected}, the timescale of the other tracks named {name:?}; one stream index has one timescale"
    )]
    TimescaleMismatch {
        track: String,
        name: String,
        expected: u64,
        found: u64,
    },
    #[error(
        "track {track}: type {found} differs from {expected}, the type of the other tracks named {name:?}; give each stream index its own name"
    )]
    KindMismatch {
        track: String,
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("pipeline {} stream {stream:?} declares no tracks", pipeline.index())]
    NoTracks { pipeline: Pipeline, stream: String },
    #[error(
        "pipeline {} stream {stream:?} would be push number {} at once; end one first",
        pipeline.index(), max + 1
    )]
    TooManyStreams {
        pipeline: Pipeline,
        stream: String,
        max: usize,
    },
    #[error(
        "pipeline {} stream {stream:?} belongs to event {event:?}, which a newer event replaced; push with a new Events(id)",
        pipeline.index()
    )]
    StaleEvent {
        pipeline: Pipeline,
        stream: String,
        event: String,
    },
}

/// Why a request path is not a Smooth fragment URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentUrlError {
    #[error("expected QualityLevels({{bitrate}})/Fragments({{name}}={{time}}), found {found:?}")]
    Shape { found: String },
    #[error("{what} {found:?} is not a decimal number")]
    Number { what: &'static str, found: String },
}
