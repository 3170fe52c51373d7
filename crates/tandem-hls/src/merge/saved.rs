//! A rendition's merge state as it is kept across a restart of the process.
//!
//! [`RenditionMerge::save`] takes everything the output has promised
//! players (the window with each position's source segment, the media and
//! discontinuity sequences, the target duration) and everything the engine
//! needs to continue the timeline (which pipeline is active, how each
//! pipeline's numbering maps onto the output, the last source segment each
//! one sent out and the last one each announced; whether the output ended,
//! and what a resume or a reset left pending). [`RenditionMerge::restore`]
//! rebuilds an engine from it that continues the output: the next position
//! is the next segment of the same timeline, nothing that went out goes out
//! again, and a discontinuity marks only a real break (an encoder that
//! restarted, or segments that passed while nobody was receiving them).
//! Each window segment keeps the MAP and keys in effect for it, so the
//! restored output names its init section once the segment that carried
//! the MAP has left the window.
//!
//! Instants do not survive a process; a restored engine treats the moment
//! of restoring as each pipeline's last advance, so the loss threshold is
//! counted from there and a pipeline that is simply slower to reconnect
//! than the other does not cause a switch.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tandem_core::{InputState, Pipeline};

use super::{Input, MergeConfig, OutSeg, RenditionMerge};
use crate::in_effect::InEffect;

/// The format written by this version.
const VERSION: u32 = 1;

/// A rendition's merge state, serializable (JSON in the output driver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedMerge {
    pub version: u32,
    pub next_media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub target_duration: Option<u64>,
    pub window: usize,
    pub header: Vec<String>,
    /// 0 or 1.
    pub active: Option<u8>,
    pub ended: bool,
    pub timeline: u32,
    /// The next output segment follows a skipped one.
    pub gap: bool,
    /// The output window, oldest first.
    pub segments: Vec<SavedSegment>,
    pub inputs: [SavedInput; 2],
    /// The next output segment starts a new timeline (after a reset).
    #[serde(default)]
    pub restarting: bool,
    /// Per pipeline: still ended when the output resumed; its return
    /// joins the resumed timeline.
    #[serde(default)]
    pub rejoin: [bool; 2],
    /// The last segment of the window a reset emptied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SavedSegment>,
    /// The segments record the MAP and keys in effect for them (states
    /// written before they did are read from the window's own tags).
    #[serde(default)]
    pub in_effect: bool,
}

/// One position of the output window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSegment {
    pub media_sequence: u64,
    /// 0 or 1.
    pub from: u8,
    pub source_uri: String,
    pub duration: f64,
    pub program_date_time: Option<i64>,
    pub discontinuity: bool,
    pub tags: Vec<String>,
    pub source_msn: u64,
    pub source_epoch: u32,
    /// The `EXT-X-MAP` line its source playlist had in effect for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    /// The `EXT-X-KEY` lines its source playlist had in effect for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// What the engine knew about one pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedInput {
    pub epoch: u32,
    /// The output timeline the pipeline's numbering belongs to.
    pub timeline: Option<u32>,
    /// Output media sequence minus the pipeline's, while aligned.
    pub offset: Option<i64>,
    /// The highest media sequence number of this epoch that went out.
    pub emitted: Option<u64>,
    /// The last segment the pipeline announced: media sequence and URI.
    /// A later playlist that no longer reaches it, or names another file
    /// there, comes from a restarted encoder.
    pub last_announced: Option<(u64, String)>,
    pub ended: bool,
    pub target: u64,
}

/// Why a saved state cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("merge state version {0} is not one this version reads")]
    Version(u32),
    #[error("merge state is inconsistent: {0}")]
    Inconsistent(&'static str),
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

fn saved_segment(s: &OutSeg) -> SavedSegment {
    SavedSegment {
        media_sequence: s.media_sequence,
        from: number(s.from),
        source_uri: s.source_uri.clone(),
        duration: s.duration,
        program_date_time: s.program_date_time,
        discontinuity: s.discontinuity,
        tags: s.tags.clone(),
        source_msn: s.source_msn,
        source_epoch: s.source_epoch,
        map: s.in_effect.map.clone(),
        keys: s.in_effect.keys.clone(),
    }
}

fn out_segment(s: &SavedSegment, first_seen: Instant) -> Result<OutSeg, RestoreError> {
    Ok(OutSeg {
        media_sequence: s.media_sequence,
        from: pipeline(s.from)?,
        source_uri: s.source_uri.clone(),
        duration: s.duration,
        program_date_time: s.program_date_time,
        discontinuity: s.discontinuity,
        tags: s.tags.clone(),
        in_effect: InEffect {
            map: s.map.clone(),
            keys: s.keys.clone(),
        },
        source_msn: s.source_msn,
        source_epoch: s.source_epoch,
        first_seen,
    })
}

/// For a state written before segments recorded what was in effect for
/// them: what the window's own tags say, carried along each run of
/// segments from one pipeline's epoch (a MAP above the window's first
/// segment stays in effect for the segments after it).
fn derive_in_effect(out: &mut VecDeque<OutSeg>) {
    let mut run: Option<(Pipeline, u32, InEffect)> = None;
    for s in out.iter_mut() {
        let mut state = match run.take() {
            Some((p, e, state)) if p == s.from && e == s.source_epoch => state,
            _ => InEffect::default(),
        };
        state.apply_all(&s.tags);
        s.in_effect = state.clone();
        run = Some((s.from, s.source_epoch, state));
    }
}

impl RenditionMerge {
    /// Everything needed to continue this output in another process.
    pub fn save(&self) -> SavedMerge {
        let input = |inp: &Input| SavedInput {
            epoch: inp.epoch,
            timeline: inp.timeline,
            offset: inp.offset,
            emitted: inp.emitted,
            last_announced: inp
                .segs
                .iter()
                .next_back()
                .map(|(k, s)| (*k, s.seg.uri.clone()))
                .or_else(|| inp.anchor.clone()),
            ended: inp.ended,
            target: inp.target,
        };
        SavedMerge {
            version: VERSION,
            next_media_sequence: self.next_msn,
            discontinuity_sequence: self.discontinuity_sequence,
            target_duration: self.target,
            window: self.window,
            header: self.header.clone(),
            active: self.active.map(number),
            ended: self.ended,
            timeline: self.timeline,
            gap: self.gap,
            segments: self.out.iter().map(saved_segment).collect(),
            inputs: [input(&self.inputs[0]), input(&self.inputs[1])],
            restarting: self.restarting,
            rejoin: self.rejoin,
            previous: self.previous.as_ref().map(saved_segment),
            in_effect: true,
        }
    }

    /// An engine that continues the output `saved` describes, as of `now`.
    /// Both pipelines count as having advanced at `now`.
    pub fn restore(
        cfg: MergeConfig,
        saved: &SavedMerge,
        now: Instant,
    ) -> Result<Self, RestoreError> {
        if saved.version != VERSION {
            return Err(RestoreError::Version(saved.version));
        }
        // What the output held arrived before anything a pipeline announces
        // from now on: the rule that passes over a restarted encoder's
        // segments announced at the same moment as the last output one
        // must not hold back the first ones after a restore.
        let long_ago = now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now);
        let mut out = VecDeque::with_capacity(saved.segments.len());
        let len = saved.segments.len();
        for (k, s) in saved.segments.iter().enumerate() {
            let expected = saved.next_media_sequence.checked_sub((len - k) as u64);
            if expected != Some(s.media_sequence) {
                return Err(RestoreError::Inconsistent(
                    "window positions are not consecutive up to the next media sequence",
                ));
            }
            out.push_back(out_segment(s, long_ago)?);
        }
        if !saved.in_effect {
            derive_in_effect(&mut out);
        }
        if saved.target_duration == Some(0) {
            return Err(RestoreError::Inconsistent("a target duration of 0"));
        }
        if !out.is_empty() && saved.target_duration.is_none() {
            return Err(RestoreError::Inconsistent(
                "segments without a target duration",
            ));
        }
        let input = |s: &SavedInput| Input {
            segs: BTreeMap::new(),
            epoch: s.epoch,
            highest: None,
            last_advance: Some(now),
            healthy_since: None,
            ended: s.ended,
            state: InputState::Idle,
            target: s.target,
            window_len: 0,
            header: Vec::new(),
            timeline: s.timeline,
            offset: s.offset,
            stored_early: Vec::new(),
            stored_again: Vec::new(),
            emitted: s.emitted,
            anchor: s.last_announced.clone(),
        };
        Ok(Self {
            cfg,
            inputs: [input(&saved.inputs[0]), input(&saved.inputs[1])],
            active: saved.active.map(pipeline).transpose()?,
            out,
            next_msn: saved.next_media_sequence,
            discontinuity_sequence: saved.discontinuity_sequence,
            target: saved.target_duration,
            window: saved.window.max(1),
            timeline: saved.timeline,
            ended: saved.ended,
            stopped: false,
            header: saved.header.clone(),
            resumed_at: None,
            stepped_at: None,
            gap: saved.gap,
            restarting: saved.restarting,
            rejoin: saved.rejoin,
            previous: saved
                .previous
                .as_ref()
                .map(|s| out_segment(s, long_ago))
                .transpose()?,
        })
    }
}
