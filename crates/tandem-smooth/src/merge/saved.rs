//! A publishing point's merge state as it is kept across a restart of the
//! process.
//!
//! [`SmoothMerge::save`] takes everything the output has promised clients
//! (each track's window with the copy served for each time, the
//! presentation and its event id, whether it ended) and what the engine
//! needs to continue it (how far each pipeline got on each track, which
//! pushes belong to which presentation, fragments waiting behind a hole).
//! [`SmoothMerge::restore`] rebuilds an engine that continues the output:
//! nothing that went out goes out again, and encoders that reconnect and
//! resend are duplicates.
//!
//! Instants do not survive a process: a restored engine counts the moment
//! of restoring as each pipeline's last advance and as the arrival of each
//! waiting fragment, so a pipeline slower to reconnect than the other is
//! waited for the loss threshold, not declared lost at once. Pushes are
//! restored as dropped: their connections did not survive either.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tandem_core::{InputState, Pipeline};

use super::timeline::{OutFragment, Pending, Timeline};
use super::{
    Counters, Input, MAX_PREVIOUS_EVENTS, MAX_STREAMS, SmoothConfig, SmoothMerge, Stream,
    StreamStatus,
};
use crate::notice::EndOfStream;
use crate::track::{Track, TrackKey};

/// The format written by this version.
const VERSION: u32 = 1;

/// A publishing point's merge state, serializable (JSON in the driver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSmooth {
    pub version: u32,
    pub presentation: u32,
    pub event: Option<String>,
    /// Event ids a newer one replaced (their pushes are refused).
    pub previous_events: Vec<String>,
    pub ended: bool,
    /// The longest audio or video fragment of the presentation.
    pub fragment_duration_ms: Option<u64>,
    pub counters: Counters,
    pub timelines: Vec<SavedTimeline>,
    /// Pushes on record, per pipeline.
    pub streams: [Vec<SavedStream>; 2],
}

/// One track's output and progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedTimeline {
    pub track: Track,
    /// Where the next output fragment starts.
    pub next: Option<u64>,
    /// The output window, oldest first.
    pub fragments: Vec<SavedFragment>,
    /// Stored whole, waiting behind a hole.
    pub pending: Vec<SavedFragment>,
    /// The latest time each pipeline delivered.
    pub reached: [Option<u64>; 2],
    /// Each pipeline restarted behind the output.
    pub restarted: [bool; 2],
}

/// One fragment, served or waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFragment {
    pub time: u64,
    pub duration: u64,
    /// 0 or 1: whose copy.
    pub from: u8,
    pub bytes: u64,
    pub storage_key: String,
    pub copies: [bool; 2],
    pub filled: bool,
}

/// One push on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedStream {
    pub stream: String,
    pub presentation: u32,
    pub event: Option<String>,
    pub tracks: Vec<TrackKey>,
    /// How it ended, if it did.
    pub ended: Option<EndOfStream>,
}

/// Why a saved state cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    #[error("smooth merge state version {0} is not one this version reads")]
    Version(u32),
    #[error("smooth merge state is inconsistent: {0}")]
    Inconsistent(&'static str),
    #[error("smooth merge state holds a bad track: {0}")]
    Track(#[from] crate::error::SmoothError),
}

fn pipeline(n: u8) -> Result<Pipeline, RestoreError> {
    match n {
        0 => Ok(Pipeline::P0),
        1 => Ok(Pipeline::P1),
        _ => Err(RestoreError::Inconsistent("pipeline is neither 0 nor 1")),
    }
}

fn number(p: Pipeline) -> u8 {
    match p {
        Pipeline::P0 => 0,
        Pipeline::P1 => 1,
    }
}

impl SmoothMerge {
    /// Everything needed to continue this output in another process.
    pub fn save(&self) -> SavedSmooth {
        let frag = |o: &OutFragment| SavedFragment {
            time: o.time,
            duration: o.duration,
            from: number(o.from),
            bytes: o.bytes,
            storage_key: o.storage_key.clone(),
            copies: o.copies,
            filled: o.filled,
        };
        let waiting = |(t, w): (&u64, &Pending)| SavedFragment {
            time: *t,
            duration: w.duration,
            from: number(w.from),
            bytes: w.bytes,
            storage_key: w.storage_key.clone(),
            copies: w.copies,
            filled: false,
        };
        let streams = |inp: &Input| {
            inp.streams
                .iter()
                .map(|(name, s)| SavedStream {
                    stream: name.clone(),
                    presentation: s.presentation,
                    event: s.event.clone(),
                    tracks: s.tracks.clone(),
                    ended: match s.status {
                        StreamStatus::Ended(how) => Some(how),
                        _ => None,
                    },
                })
                .collect()
        };
        SavedSmooth {
            version: VERSION,
            presentation: self.presentation,
            event: self.event.clone(),
            previous_events: self.previous_events.iter().cloned().collect(),
            ended: self.ended,
            fragment_duration_ms: self
                .fragment_duration
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            counters: self.counters,
            timelines: self
                .timelines
                .values()
                .map(|t| SavedTimeline {
                    track: t.track.clone(),
                    next: t.next,
                    fragments: t.out.values().map(frag).collect(),
                    pending: t.pending.iter().map(waiting).collect(),
                    reached: t.reached,
                    restarted: t.restarted,
                })
                .collect(),
            streams: [streams(&self.inputs[0]), streams(&self.inputs[1])],
        }
    }

    /// An engine that continues the output `saved` describes, as of `now`.
    pub fn restore(
        cfg: SmoothConfig,
        saved: &SavedSmooth,
        now: Instant,
    ) -> Result<Self, RestoreError> {
        if saved.version != VERSION {
            return Err(RestoreError::Version(saved.version));
        }
        let mut timelines = BTreeMap::new();
        for st in &saved.timelines {
            st.track.validate()?;
            let mut tl = Timeline::new(st.track.clone());
            let mut end: Option<u64> = None;
            for f in &st.fragments {
                let from = pipeline(f.from)?;
                if f.duration == 0 || end.is_some_and(|e| f.time < e) {
                    return Err(RestoreError::Inconsistent(
                        "output fragments overlap, go back or last 0",
                    ));
                }
                if !f.copies[from.index()] {
                    return Err(RestoreError::Inconsistent(
                        "an output fragment served from a pipeline that did not deliver it",
                    ));
                }
                end = Some(f.time.saturating_add(f.duration));
                tl.out.insert(
                    f.time,
                    OutFragment {
                        time: f.time,
                        duration: f.duration,
                        from,
                        bytes: f.bytes,
                        storage_key: f.storage_key.clone(),
                        copies: f.copies,
                        filled: f.filled,
                    },
                );
            }
            if end.is_some() && st.next != end {
                return Err(RestoreError::Inconsistent(
                    "the output's end is not where its last fragment ends",
                ));
            }
            tl.next = st.next;
            let mut end = st.next;
            for f in &st.pending {
                let from = pipeline(f.from)?;
                if f.duration == 0 || end.is_some_and(|e| f.time < e) || !f.copies[from.index()] {
                    return Err(RestoreError::Inconsistent(
                        "waiting fragments overlap the output or each other",
                    ));
                }
                end = Some(f.time.saturating_add(f.duration));
                tl.pending.insert(
                    f.time,
                    Pending {
                        from,
                        duration: f.duration,
                        bytes: f.bytes,
                        storage_key: f.storage_key.clone(),
                        since: now,
                        copies: f.copies,
                    },
                );
            }
            tl.reached = st.reached;
            tl.restarted = st.restarted;
            if timelines.insert(st.track.key(), tl).is_some() {
                return Err(RestoreError::Inconsistent("a track saved twice"));
            }
        }
        let mut per_name: BTreeMap<&str, &Track> = BTreeMap::new();
        for st in &saved.timelines {
            let first = *per_name.entry(&st.track.name).or_insert(&st.track);
            if first.timescale != st.track.timescale || first.kind() != st.track.kind() {
                return Err(RestoreError::Inconsistent(
                    "tracks of one stream index differ in timescale or type",
                ));
            }
        }
        let input = |saved: &[SavedStream]| -> Result<Input, RestoreError> {
            if saved.len() > MAX_STREAMS {
                return Err(RestoreError::Inconsistent("too many pushes on record"));
            }
            let streams: BTreeMap<String, Stream> = saved
                .iter()
                .map(|s| {
                    (
                        s.stream.clone(),
                        Stream {
                            presentation: s.presentation,
                            event: s.event.clone(),
                            tracks: s.tracks.clone(),
                            status: s.ended.map_or(StreamStatus::Dropped, StreamStatus::Ended),
                        },
                    )
                })
                .collect();
            Ok(Input {
                state: InputState::Idle,
                last_advance: (!streams.is_empty()).then_some(now),
                streams,
            })
        };
        let [s0, s1] = &saved.streams;
        if saved.previous_events.len() > MAX_PREVIOUS_EVENTS {
            return Err(RestoreError::Inconsistent("too many replaced event ids"));
        }
        let ended = saved.ended;
        if ended && timelines.values().any(|t: &Timeline| !t.pending.is_empty()) {
            return Err(RestoreError::Inconsistent(
                "an ended output with fragments waiting",
            ));
        }
        Ok(Self {
            cfg,
            inputs: [input(s0)?, input(s1)?],
            timelines,
            presentation: saved.presentation,
            event: saved.event.clone(),
            previous_events: saved
                .previous_events
                .iter()
                .cloned()
                .collect::<VecDeque<_>>(),
            ended,
            fragment_duration: saved.fragment_duration_ms.map(Duration::from_millis),
            counters: saved.counters,
            stepped_at: None,
        })
    }
}
