//! What the ingest tells the engine: a push started (with its tracks and
//! its `Events({id})`), a fragment is stored whole, a push ended or broke.
//!
//! These types are the seam between the box reader (which parses the
//! encoder's body) and the engine: the ingest fills them from the Live
//! Server Manifest and each fragment's `tfxd` box, after the fragment's
//! bytes are published under `storage_key`.

use serde::{Deserialize, Serialize};
use tandem_core::Pipeline;

use crate::track::{Track, TrackKey};

/// A pipeline opened a push: `…/{name}.isml[/Events({event})]/Streams({stream})`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub pipeline: Pipeline,
    /// The `Streams({stream})` id. One encoder may push several streams at
    /// once (MediaLive: one per track); a reconnect reuses the id.
    pub stream: String,
    /// The `Events({id})` path segment, when the encoder sends one.
    pub event: Option<String>,
    /// The tracks the Live Server Manifest declares for this stream.
    pub tracks: Vec<Track>,
}

/// One fragment (`moof` + `mdat`) that is stored whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentNotice {
    pub pipeline: Pipeline,
    /// The push it arrived on (`Streams({stream})`).
    pub stream: String,
    pub track: TrackKey,
    /// The `tfxd` absolute time, in the track's timescale: the fragment's
    /// identity across the two encoders, which are time-locked.
    pub time: u64,
    /// The `tfxd` duration, in the track's timescale.
    pub duration: u64,
    /// The fragment's size, in bytes.
    pub bytes: u64,
    /// Where the ingest stored it; opaque to the engine, handed back by
    /// [`SmoothMerge::fragment`](crate::SmoothMerge::fragment) and in events.
    pub storage_key: String,
}

/// How a push ended on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndOfStream {
    /// An end-of-stream signal (MediaLive's `eventStopBehavior sendEos`:
    /// an empty `mdat`, or the body closed after the last fragment).
    Eos,
    /// The `mfra` box that ffmpeg writes last.
    Mfra,
}

impl EndOfStream {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Mfra => "mfra",
        }
    }
}
