//! The failover engine: two pipelines' media playlists in, one output
//! media playlist out, per rendition.
//!
//! Sans-IO: playlists and "segment stored" notices come in with `now`
//! (monotonic; calls must not go back in time), events come out, and
//! [`RenditionMerge::next_deadline`] says when to call
//! [`RenditionMerge::on_tick`]. The driver owns clocks, timers and storage.
//!
//! Alignment. The two pipelines are aligned by `EXT-X-PROGRAM-DATE-TIME`
//! when both carry it (MediaLive's pipelines may start with different media
//! sequence numbers; their date-times agree), within a tolerance; otherwise
//! by media sequence number, which redundant encoders keep identical. An
//! encoder restart (its media sequence goes back) puts that pipeline on a new
//! timeline: it stays unaligned, because its media timestamps restarted too,
//! and the output switches to it only with a discontinuity.
//!
//! Decisions. The output sticks to its active pipeline. It takes the
//! active pipeline's next segment once that segment is stored whole. When
//! the active pipeline announced a segment that is still incomplete after
//! the loss threshold, the aligned segment of the other pipeline fills that
//! one position. When the active pipeline has not advanced for the loss
//! threshold (or ended, or restarted while the other is aligned), the output
//! switches: without a discontinuity when the other pipeline is aligned,
//! with `EXT-X-DISCONTINUITY` otherwise. With `prefer`, it returns to the
//! preferred pipeline once that one has been receiving for the hold-down
//! time and is aligned; otherwise it never switches back, so it cannot
//! flap.
//!
//! Invariants ([`RenditionMerge::check_invariants`]): the media sequence
//! never decreases; the target duration never changes; a segment keeps its
//! URI, duration and position; only complete segments are named; the
//! discontinuity sequence counts every discontinuity that left the window;
//! `EXT-X-ENDLIST` only once both pipelines ended (or [`stop`]); each
//! segment of a rendered playlist has the `EXT-X-MAP` and `EXT-X-KEY` its
//! source playlist had in effect for it (see [`crate::in_effect`]). An ended
//! output resumes when an encoder starts again, and an operator may reset
//! it to start afresh (see `restart`).
//!
//! Modules: `event` (what comes out), `select` (which segment comes next),
//! `decide` (append, fill, skip, switch), `restart` (resume and reset),
//! `saved` (the state kept across a restart of the process).
//!
//! [`stop`]: RenditionMerge::stop

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use tandem_core::InputState;
use tandem_core::Pipeline;

use crate::in_effect::InEffect;
use crate::playlist::{MediaPlaylist, Segment};

mod decide;
mod event;
mod restart;
mod saved;
mod select;

pub use event::{Event, SwitchReason};
pub use saved::{RestoreError, SavedInput, SavedMerge, SavedSegment};

/// The longest loss threshold: a day. A playlist may announce any target
/// duration; a timer must stay within what the clock can add.
pub const MAX_THRESHOLD: Duration = Duration::from_secs(86_400);

/// How a rendition merges. Defaults follow the channel contract.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConfig {
    /// An input that has not advanced for this many target durations is
    /// lost. 1.5: one segment may be late by half its duration (upload
    /// jitter) without a switch, a missing one is noticed before the player
    /// drains its buffer (players hold about three segments).
    pub loss_after_targets: f64,
    /// Two segments are aligned when their program date-times differ by at
    /// most this many target durations. 0.5: encoders' clocks drift by
    /// milliseconds; half a segment cannot confuse neighbours.
    pub pdt_tolerance_targets: f64,
    /// Return to this pipeline once it has been healthy for `hold_down`.
    pub prefer: Option<Pipeline>,
    /// How long the preferred pipeline must be receiving before a return.
    pub hold_down: Duration,
    /// Upper bound on the output window, in segments, whatever the encoder
    /// lists (an EVENT playlist grows without end).
    pub max_window: usize,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            loss_after_targets: 1.5,
            pdt_tolerance_targets: 0.5,
            prefer: None,
            hold_down: Duration::from_secs(30),
            max_window: 2000,
        }
    }
}

/// One segment a pipeline announced.
#[derive(Debug, Clone)]
struct InSeg {
    seg: Segment,
    /// The MAP and keys its playlist had in effect for it.
    in_effect: InEffect,
    first_seen: Instant,
    complete: bool,
}

#[derive(Debug)]
struct Input {
    /// By the pipeline's own media sequence number, current epoch only.
    segs: BTreeMap<u64, InSeg>,
    /// Increments on each encoder restart.
    epoch: u32,
    highest: Option<u64>,
    last_advance: Option<Instant>,
    healthy_since: Option<Instant>,
    ended: bool,
    state: InputState,
    target: u64,
    window_len: usize,
    header: Vec<String>,
    /// The output timeline this pipeline's current epoch belongs to.
    timeline: Option<u32>,
    /// Output media sequence = input media sequence + offset, while aligned
    /// by sequence number.
    offset: Option<i64>,
    /// URIs stored before a playlist announced them.
    stored_early: Vec<String>,
    /// URIs of complete segments stored again since the last playlist: a
    /// restarted encoder that reuses its file names (ffmpeg counts from 0
    /// again). They count as stored early if that playlist is a restart.
    stored_again: Vec<String>,
    /// The highest media sequence number of the current epoch that went
    /// out: nothing at or below it goes out again, whatever a later
    /// playlist re-announces.
    emitted: Option<u64>,
    /// After a restore: the last segment announced before it. The first
    /// playlist that no longer reaches it, or names another file there,
    /// comes from a restarted encoder.
    anchor: Option<(u64, String)>,
}

impl Input {
    fn new() -> Self {
        Self {
            segs: BTreeMap::new(),
            epoch: 0,
            highest: None,
            last_advance: None,
            healthy_since: None,
            ended: false,
            state: InputState::Idle,
            target: 0,
            window_len: 0,
            header: Vec::new(),
            timeline: Some(0),
            offset: None,
            stored_early: Vec::new(),
            stored_again: Vec::new(),
            emitted: None,
            anchor: None,
        }
    }
}

/// One segment of the output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutSeg {
    pub media_sequence: u64,
    pub from: Pipeline,
    /// The URI in the source pipeline's playlist.
    pub source_uri: String,
    pub duration: f64,
    pub program_date_time: Option<i64>,
    pub discontinuity: bool,
    /// The source's raw tag lines (EXTINF, cues, KEY, MAP …).
    pub tags: Vec<String>,
    /// The MAP and keys the source playlist had in effect for it: the
    /// rendered playlist writes them again where its own window lacks them.
    pub in_effect: InEffect,
    /// The source pipeline's media sequence number and epoch.
    pub source_msn: u64,
    source_epoch: u32,
    first_seen: Instant,
}

/// Merges one rendition's two pipelines into one output playlist.
#[derive(Debug)]
pub struct RenditionMerge {
    cfg: MergeConfig,
    inputs: [Input; 2],
    active: Option<Pipeline>,
    out: VecDeque<OutSeg>,
    next_msn: u64,
    discontinuity_sequence: u64,
    target: Option<u64>,
    /// Segments in the output window: the largest window an active
    /// pipeline listed, so a restarted encoder's short playlist does not
    /// drop segments players may still be reading.
    window: usize,
    timeline: u32,
    ended: bool,
    stopped: bool,
    header: Vec<String>,
    /// Set by [`RenditionMerge::resume`]: the output continues an earlier one.
    resumed_at: Option<u64>,
    /// The last instant every due decision was applied at. A deadline at
    /// or before it can bring nothing new until an input does: it is not
    /// reported again, so a driver never spins on it.
    stepped_at: Option<Instant>,
    /// A segment was skipped (whole on neither pipeline): the next output
    /// segment starts after a gap and carries a discontinuity.
    gap: bool,
    /// The next output segment starts a new timeline (the output resumes
    /// after an end, or starts afresh after a reset): it carries a
    /// discontinuity, and the pipelines align again as at a start.
    restarting: bool,
    /// A pipeline that was still ended when the output resumed: its next
    /// advance joins the resumed timeline (by program date-time).
    rejoin: [bool; 2],
    /// The last segment of the window a reset emptied: what the next
    /// segment follows in time, while the window is empty.
    previous: Option<OutSeg>,
}

fn idx(p: Pipeline) -> usize {
    p.index()
}

impl RenditionMerge {
    pub fn new(cfg: MergeConfig) -> Self {
        Self {
            cfg,
            inputs: [Input::new(), Input::new()],
            active: None,
            out: VecDeque::new(),
            next_msn: 0,
            discontinuity_sequence: 0,
            target: None,
            window: 1,
            timeline: 0,
            ended: false,
            stopped: false,
            header: Vec::new(),
            resumed_at: None,
            stepped_at: None,
            gap: false,
            restarting: false,
            rejoin: [false; 2],
            previous: None,
        }
    }

    pub fn config(&self) -> &MergeConfig {
        &self.cfg
    }

    pub fn active(&self) -> Option<Pipeline> {
        self.active
    }

    pub fn input_states(&self) -> [InputState; 2] {
        [self.inputs[0].state, self.inputs[1].state]
    }

    /// The output's segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &OutSeg> {
        self.out.iter()
    }

    /// When a pipeline last announced a new segment.
    pub fn last_advance(&self, p: Pipeline) -> Option<Instant> {
        self.inputs[idx(p)].last_advance
    }

    /// The loss threshold, at most [`MAX_THRESHOLD`]: the target duration
    /// comes from an encoder's playlist and may be any number.
    fn threshold(&self, p: Pipeline) -> Duration {
        let target = self.target.unwrap_or(self.inputs[idx(p)].target).max(1);
        Duration::try_from_secs_f64(target as f64 * self.cfg.loss_after_targets)
            .unwrap_or(MAX_THRESHOLD)
            .min(MAX_THRESHOLD)
    }

    fn tolerance_ms(&self) -> i64 {
        (self.target.unwrap_or(1) as f64 * self.cfg.pdt_tolerance_targets * 1000.0) as i64
    }

    /// A pipeline published a new media playlist.
    pub fn on_playlist(&mut self, now: Instant, from: Pipeline, pl: &MediaPlaylist) -> Vec<Event> {
        let mut ev = Vec::new();
        let i = idx(from);
        let restarted = {
            let inp = &self.inputs[i];
            let went_back = inp.highest.is_some_and(|h| {
                let last = pl.msn_of(pl.segments.len().saturating_sub(1));
                pl.media_sequence < inp.segs.keys().next().copied().unwrap_or(0)
                    || (!pl.segments.is_empty() && last < h)
            });
            let rewritten = pl.segments.iter().enumerate().any(|(k, s)| {
                inp.segs
                    .get(&pl.msn_of(k))
                    .is_some_and(|known| known.seg.uri != s.uri)
            });
            let last = pl.msn_of(pl.segments.len().saturating_sub(1));
            let before_restore = inp.anchor.as_ref().is_some_and(|(msn, uri)| {
                (!pl.segments.is_empty() && last < *msn)
                    || pl
                        .segments
                        .iter()
                        .enumerate()
                        .any(|(k, s)| pl.msn_of(k) == *msn && s.uri != *uri)
            });
            went_back || rewritten || before_restore
        };
        if restarted {
            let inp = &mut self.inputs[i];
            inp.segs.clear();
            inp.epoch += 1;
            inp.highest = None;
            inp.timeline = None;
            inp.offset = None;
            inp.emitted = None;
            let again = std::mem::take(&mut inp.stored_again);
            inp.stored_early.extend(again);
            ev.push(Event::InputRestarted {
                at: now,
                pipeline: from,
                media_sequence: pl.media_sequence,
            });
        }
        let inp = &mut self.inputs[i];
        inp.stored_again.clear();
        inp.anchor = None;
        inp.target = pl.target_duration;
        inp.window_len = pl.segments.len();
        inp.header = pl.header.clone();
        inp.ended = pl.endlist;
        let mut advanced = false;
        let effects = InEffect::of_segments(pl);
        for (k, (s, in_effect)) in pl.segments.iter().zip(effects).enumerate() {
            let msn = pl.msn_of(k);
            if inp.segs.contains_key(&msn) {
                continue;
            }
            let complete = if let Some(pos) = inp.stored_early.iter().position(|u| *u == s.uri) {
                inp.stored_early.swap_remove(pos);
                true
            } else {
                false
            };
            inp.segs.insert(
                msn,
                InSeg {
                    seg: s.clone(),
                    in_effect,
                    first_seen: now,
                    complete,
                },
            );
            if inp.highest.is_none_or(|h| msn > h) {
                inp.highest = Some(msn);
                advanced = true;
            }
        }
        // Forget what slid out of the encoder's window and is behind the
        // output (the output no longer needs it).
        let stale = inp
            .segs
            .keys()
            .next()
            .is_some_and(|&first| first < pl.media_sequence);
        if stale && inp.segs.len() > pl.segments.len() + 64 {
            inp.segs = inp.segs.split_off(&pl.media_sequence);
        }
        if advanced {
            inp.last_advance = Some(now);
            self.set_state(now, from, InputState::Receiving, &mut ev);
        }
        if advanced && !pl.endlist && std::mem::take(&mut self.rejoin[i]) {
            self.rejoin_timeline(from, pl);
        }
        self.step(now, &mut ev);
        ev
    }

    /// A segment URI of a pipeline is now stored whole.
    pub fn on_segment_stored(&mut self, now: Instant, from: Pipeline, uri: &str) -> Vec<Event> {
        let inp = &mut self.inputs[idx(from)];
        match inp.segs.values_mut().rev().find(|s| s.seg.uri == uri) {
            Some(s) if s.complete => {
                if inp.stored_again.len() >= 256 {
                    inp.stored_again.remove(0);
                }
                inp.stored_again.push(uri.to_owned());
            }
            Some(s) => s.complete = true,
            None => {
                if inp.stored_early.len() >= 256 {
                    inp.stored_early.remove(0);
                }
                inp.stored_early.push(uri.to_owned());
            }
        }
        let mut ev = Vec::new();
        self.step(now, &mut ev);
        ev
    }

    /// Time passed. Safe to call early or twice.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        self.step(now, &mut ev);
        ev
    }

    /// The channel stopped: end the output.
    pub fn stop(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        if !self.stopped {
            self.stopped = true;
            self.ended = true;
            ev.push(Event::Ended { at: now });
        }
        ev
    }

    /// When `on_tick` must next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let mut d: Option<Instant> = None;
        let done = self.stepped_at;
        let mut consider = |t: Instant| {
            if done.is_none_or(|s| t > s) {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        for p in Pipeline::BOTH {
            let inp = &self.inputs[idx(p)];
            if let Some(t) = inp
                .last_advance
                .filter(|_| inp.state == InputState::Receiving)
            {
                consider(t + self.threshold(p));
            }
            if let Some((_, c, _)) = self.candidate(p).filter(|(_, c, _)| !c.complete) {
                consider(c.first_seen + self.threshold(p));
            }
        }
        let returning = self
            .cfg
            .prefer
            .filter(|q| self.active.is_some_and(|a| a != *q));
        if let Some(since) = returning.and_then(|q| self.inputs[idx(q)].healthy_since)
            && let Some(t) = since.checked_add(self.cfg.hold_down)
        {
            consider(t);
        }
        d
    }

    /// The output playlist, with `uri` naming each output segment.
    ///
    /// Each segment keeps its source's tag lines; where a reader of this
    /// window would not otherwise have the segment's MAP and keys in
    /// effect (the first segment, a switch to a pipeline with another
    /// init section or key, a discontinuity), they are written again
    /// before its own tags, never twice.
    pub fn playlist(&self, uri: impl Fn(&OutSeg) -> String) -> Option<MediaPlaylist> {
        let target = self.target?;
        let mut reader = InEffect::default();
        let segments = self
            .out
            .iter()
            .map(|s| {
                // Across a discontinuity the content may come from another
                // encoder, or from a restarted one that rewrote its init
                // section under the same name: name it again. Keys carry on
                // (RFC 8216 §4.3.2.4), so they stay as the reader has them.
                if s.discontinuity {
                    reader.map = None;
                }
                let mut tags = reader.establish(&s.tags, &s.in_effect);
                tags.extend(s.tags.iter().cloned());
                reader.apply_all(&tags);
                Segment {
                    uri: uri(s),
                    duration: s.duration,
                    discontinuity: s.discontinuity,
                    program_date_time: s.program_date_time,
                    tags,
                }
            })
            .collect();
        Some(MediaPlaylist {
            target_duration: target,
            media_sequence: self.out.front().map_or(self.next_msn, |s| s.media_sequence),
            discontinuity_sequence: self.discontinuity_sequence,
            endlist: self.ended,
            header: self
                .header
                .iter()
                .filter(|l| !l.starts_with("#EXT-X-PLAYLIST-TYPE"))
                .cloned()
                .collect(),
            segments,
            trailer: Vec::new(),
        })
    }

    /// Asserts the contract on the current state (tests and fuzzers). The
    /// properties across time (media sequence never decreasing, segments
    /// never changing) are checked by comparing successive playlists; see
    /// the property test.
    ///
    /// # Panics
    /// When an invariant does not hold.
    pub fn check_invariants(&self) {
        for (a, b) in self.out.iter().zip(self.out.iter().skip(1)) {
            assert_eq!(
                b.media_sequence,
                a.media_sequence + 1,
                "output media sequences are consecutive"
            );
        }
        if let Some(last) = self.out.back() {
            assert_eq!(self.next_msn, last.media_sequence + 1);
        }
        // ENDLIST is checked when it appears (in `step`); an ended output
        // resumes only with a segment that carries a discontinuity.
        if self.restarting {
            assert!(!self.ended, "a reset output waits, live, for a segment");
        }
        if let Some(t) = self.target {
            assert!(t >= 1, "target duration is positive");
        }
    }
}
