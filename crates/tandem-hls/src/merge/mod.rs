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
//! `EXT-X-ENDLIST` only once both pipelines ended (or [`stop`]).
//!
//! [`stop`]: RenditionMerge::stop

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use tandem_core::InputState;
use tandem_core::Pipeline;

use crate::playlist::{MediaPlaylist, Segment};

mod saved;

pub use saved::{RestoreError, SavedInput, SavedMerge, SavedSegment};

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

/// Why the output changed pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first segment of the output.
    Started,
    /// The active pipeline stopped advancing for the loss threshold.
    Stalled,
    /// The active pipeline ended its playlist.
    Ended,
    /// The active pipeline restarted (media sequence went back) while the
    /// other stayed aligned.
    Restarted,
    /// The preferred pipeline has been healthy for the hold-down time.
    Preferred,
}

impl SwitchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Stalled => "stalled",
            Self::Ended => "ended",
            Self::Restarted => "restarted",
            Self::Preferred => "preferred",
        }
    }
}

/// What happened, in order. The driver logs, counts and stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    InputStateChanged {
        at: Instant,
        pipeline: Pipeline,
        from: InputState,
        to: InputState,
        inputs: [InputState; 2],
    },
    InputRestarted {
        at: Instant,
        pipeline: Pipeline,
        media_sequence: u64,
    },
    Switched {
        at: Instant,
        from: Option<Pipeline>,
        to: Pipeline,
        reason: SwitchReason,
        discontinuity: bool,
        inputs: [InputState; 2],
    },
    /// A segment entered the output. `filled`: taken from the standby
    /// pipeline because the active one's never completed.
    SegmentAdded {
        at: Instant,
        media_sequence: u64,
        from: Pipeline,
        source_uri: String,
        filled: bool,
    },
    /// A segment left the output window; `discontinuity`: it carried
    /// `EXT-X-DISCONTINUITY`, so the discontinuity sequence went up.
    SegmentRemoved {
        at: Instant,
        media_sequence: u64,
        discontinuity: bool,
    },
    /// A position that neither pipeline delivered whole; the output skipped
    /// it with a discontinuity.
    SegmentMissing {
        at: Instant,
        pipeline: Pipeline,
        source_uri: String,
    },
    Ended {
        at: Instant,
    },
}

/// One segment a pipeline announced.
#[derive(Debug, Clone)]
struct InSeg {
    seg: Segment,
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
        }
    }

    /// Continues an output that an earlier process served up to media
    /// sequence `next_media_sequence - 1`: the first segment gets at least
    /// that number, carries a discontinuity (what came before is unknown),
    /// and the discontinuity sequence starts at `discontinuity_sequence`.
    /// Call before the first playlist.
    pub fn resume(&mut self, next_media_sequence: u64, discontinuity_sequence: u64) {
        if self.target.is_none() {
            self.resumed_at = Some(next_media_sequence);
            self.discontinuity_sequence = discontinuity_sequence;
        }
    }

    /// What [`resume`](Self::resume) needs to continue this output in a
    /// later process: the next media sequence number, and the discontinuity
    /// sequence as if every segment now in the window had left.
    pub fn resume_point(&self) -> (u64, u64) {
        let pending = self.out.iter().filter(|s| s.discontinuity).count() as u64;
        (self.next_msn, self.discontinuity_sequence + pending)
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

    fn threshold(&self, p: Pipeline) -> Duration {
        let target = self.target.unwrap_or(self.inputs[idx(p)].target).max(1);
        Duration::from_secs_f64(target as f64 * self.cfg.loss_after_targets)
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
            ev.push(Event::InputRestarted {
                at: now,
                pipeline: from,
                media_sequence: pl.media_sequence,
            });
        }
        let inp = &mut self.inputs[i];
        inp.anchor = None;
        inp.target = pl.target_duration;
        inp.window_len = pl.segments.len();
        inp.header = pl.header.clone();
        inp.ended = pl.endlist;
        let mut advanced = false;
        for (k, s) in pl.segments.iter().enumerate() {
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
        self.step(now, &mut ev);
        ev
    }

    /// A segment URI of a pipeline is now stored whole.
    pub fn on_segment_stored(&mut self, now: Instant, from: Pipeline, uri: &str) -> Vec<Event> {
        let inp = &mut self.inputs[idx(from)];
        match inp.segs.values_mut().rev().find(|s| s.seg.uri == uri) {
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
        if let Some(since) = returning.and_then(|q| self.inputs[idx(q)].healthy_since) {
            consider(since + self.cfg.hold_down);
        }
        d
    }

    fn set_state(&mut self, now: Instant, p: Pipeline, to: InputState, ev: &mut Vec<Event>) {
        let inp = &mut self.inputs[idx(p)];
        let from = inp.state;
        if from == to {
            return;
        }
        inp.state = to;
        inp.healthy_since = (to == InputState::Receiving).then_some(now);
        ev.push(Event::InputStateChanged {
            at: now,
            pipeline: p,
            from,
            to,
            inputs: self.input_states(),
        });
    }

    fn lost(&self, now: Instant, p: Pipeline) -> bool {
        let inp = &self.inputs[idx(p)];
        inp.ended
            || inp
                .last_advance
                .is_none_or(|t| now.saturating_duration_since(t) >= self.threshold(p))
    }

    /// Whether a pipeline's current epoch is on the output's timeline.
    fn on_timeline(&self, p: Pipeline) -> bool {
        self.inputs[idx(p)].timeline == Some(self.timeline)
    }

    /// The segment of `p` that would come next in the output, if `p` has
    /// announced it: its media sequence number, the segment, and whether
    /// it continues the output seamlessly.
    ///
    /// A source segment goes out once: nothing at or below `emitted` is a
    /// candidate, whatever a later playlist re-announces.
    fn candidate(&self, p: Pipeline) -> Option<(u64, &InSeg, bool)> {
        let inp = &self.inputs[idx(p)];
        let fresh = |k: u64| inp.emitted.is_none_or(|e| k > e);
        let Some(last) = self.out.back() else {
            return inp
                .segs
                .iter()
                .find(|(k, _)| fresh(**k))
                .map(|(k, s)| (*k, s, true));
        };
        let expected_pdt = last
            .program_date_time
            .map(|t| t + (last.duration * 1000.0).round() as i64);
        let tol = self.tolerance_ms();
        if self.on_timeline(p) {
            if last.from == p && last.source_epoch == inp.epoch {
                // Where the offset says (it moves past skipped segments).
                let next = inp
                    .offset
                    .and_then(|off| {
                        u64::try_from(i64::try_from(self.next_msn).ok()?.checked_sub(off)?).ok()
                    })
                    .unwrap_or(last.source_msn + 1);
                if let Some(s) = inp.segs.get(&next) {
                    return fresh(next).then_some((next, s, true));
                }
                // The pipeline moved past that position while nothing was
                // receiving it (this process restarted): continue with its
                // first segment after, across the gap.
                if inp.segs.keys().next().is_some_and(|&first| first > next) {
                    return inp
                        .segs
                        .iter()
                        .find(|(k, _)| fresh(**k))
                        .map(|(k, s)| (*k, s, false));
                }
                return None;
            }
            let uses_pdt = expected_pdt.is_some()
                && inp
                    .segs
                    .values()
                    .next()
                    .is_some_and(|s| s.seg.program_date_time.is_some());
            if let (true, Some(exp)) = (uses_pdt, expected_pdt) {
                // Later than the last output segment's own start, whatever
                // the tolerance: a segment shorter than the tolerance (an
                // encoder's last one) must not match itself again.
                let after_last = |t: i64| last.program_date_time.is_none_or(|lp| t > lp);
                return inp
                    .segs
                    .iter()
                    .find(|(k, s)| {
                        fresh(**k)
                            && s.seg
                                .program_date_time
                                .is_some_and(|t| t >= exp - tol && after_last(t))
                    })
                    .map(|(k, s)| {
                        (
                            *k,
                            s,
                            s.seg.program_date_time.is_some_and(|t| t <= exp + tol),
                        )
                    });
            }
            // Redundant encoders number segments identically: the aligned
            // segment has the output's next number, shifted by the offset.
            if let Some(want) = inp.offset.and_then(|off| {
                u64::try_from(i64::try_from(self.next_msn).ok()?.checked_sub(off)?).ok()
            }) {
                return inp
                    .segs
                    .range(want..)
                    .find(|(k, _)| fresh(**k))
                    .map(|(k, s)| (*k, s, *k == want));
            }
        }
        // Another timeline: continue with what follows the last output
        // segment in time: by date-time when known, else by arrival. A
        // segment announced within half a target of the last output one
        // carries the same moment of content, so it is passed over.
        let same_epoch = last.from == p && last.source_epoch == inp.epoch;
        let half_target = Duration::from_millis(u64::try_from(tol).unwrap_or(0));
        let after = |k: u64, s: &InSeg| {
            let later = match (expected_pdt, s.seg.program_date_time) {
                (Some(exp), Some(t)) => {
                    t >= exp - tol && last.program_date_time.is_none_or(|lp| t > lp)
                }
                _ => s.first_seen >= last.first_seen + half_target,
            };
            later && fresh(k) && (!same_epoch || k > last.source_msn)
        };
        inp.segs
            .iter()
            .find(|(k, s)| after(**k, s))
            .map(|(k, s)| (*k, s, false))
    }

    fn append(
        &mut self,
        now: Instant,
        p: Pipeline,
        in_msn: u64,
        discontinuity: bool,
        filled: bool,
        ev: &mut Vec<Event>,
    ) {
        let i = idx(p);
        let Some(src) = self.inputs[i].segs.get(&in_msn).cloned() else {
            return;
        };
        let mut discontinuity = discontinuity || std::mem::take(&mut self.gap);
        if self.target.is_none() {
            discontinuity |= self.resumed_at.is_some();
            self.target = Some(
                self.inputs[i]
                    .target
                    .max(src.seg.duration.ceil() as u64)
                    .max(1),
            );
            self.next_msn = in_msn.max(self.resumed_at.unwrap_or(0));
            self.header = self.inputs[i].header.clone();
            for q in Pipeline::BOTH {
                self.inputs[idx(q)].offset = Some(0);
            }
        }
        if discontinuity && !self.on_timeline(p) {
            self.timeline += 1;
        }
        let inp = &mut self.inputs[i];
        if inp.timeline != Some(self.timeline) {
            inp.timeline = Some(self.timeline);
        }
        inp.offset = Some(
            i64::try_from(self.next_msn).unwrap_or(i64::MAX) - i64::try_from(in_msn).unwrap_or(0),
        );
        inp.emitted = Some(inp.emitted.map_or(in_msn, |e| e.max(in_msn)));
        let seg = OutSeg {
            media_sequence: self.next_msn,
            from: p,
            source_uri: src.seg.uri.clone(),
            duration: src.seg.duration,
            program_date_time: src.seg.program_date_time,
            discontinuity: discontinuity || src.seg.discontinuity,
            tags: src.seg.tags.clone(),
            source_msn: in_msn,
            source_epoch: inp.epoch,
            first_seen: src.first_seen,
        };
        ev.push(Event::SegmentAdded {
            at: now,
            media_sequence: self.next_msn,
            from: p,
            source_uri: seg.source_uri.clone(),
            filled,
        });
        self.out.push_back(seg);
        self.next_msn += 1;
        self.window = self
            .window
            .max(self.inputs[i].window_len)
            .clamp(1, self.cfg.max_window.max(1));
        while self.out.len() > self.window {
            if let Some(old) = self.out.pop_front() {
                // RFC 8216 §6.2.2: the discontinuity sequence counts the
                // discontinuities that left the playlist. The tag belongs to
                // the removed segment's boundary with the one before it.
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
                ev.push(Event::SegmentRemoved {
                    at: now,
                    media_sequence: old.media_sequence,
                    discontinuity: old.discontinuity,
                });
            }
        }
    }

    fn switch(
        &mut self,
        now: Instant,
        to: Pipeline,
        reason: SwitchReason,
        discontinuity: bool,
        ev: &mut Vec<Event>,
    ) {
        let from = self.active;
        self.active = Some(to);
        ev.push(Event::Switched {
            at: now,
            from,
            to,
            reason,
            discontinuity,
            inputs: self.input_states(),
        });
    }

    /// Applies every decision that is due at `now`.
    fn step(&mut self, now: Instant, ev: &mut Vec<Event>) {
        self.stepped_at = Some(self.stepped_at.map_or(now, |s| s.max(now)));
        for p in Pipeline::BOTH {
            if self.inputs[idx(p)].state == InputState::Receiving && self.lost(now, p) {
                self.set_state(now, p, InputState::Lost, ev);
            }
        }
        if self.ended {
            return;
        }
        // Bounded: each pass appends a segment, switches once, or stops.
        for _ in 0..10_000 {
            if !self.step_once(now, ev) {
                break;
            }
        }
        let both_ended = self.inputs.iter().all(|i| i.ended);
        let exhausted = |p: Pipeline| self.candidate(p).is_none_or(|(_, c, _)| !c.complete);
        if both_ended
            && self
                .active
                .is_some_and(|a| exhausted(a) && exhausted(a.other()))
        {
            debug_assert!(
                self.inputs.iter().all(|i| i.ended),
                "ENDLIST only when both pipelines ended"
            );
            self.ended = true;
            ev.push(Event::Ended { at: now });
        }
    }

    /// The next segment of `p` if it is stored whole: its media sequence
    /// number and whether it continues the output seamlessly.
    fn ready(&self, p: Pipeline) -> Option<(u64, bool)> {
        self.candidate(p)
            .filter(|(_, c, _)| c.complete)
            .map(|(k, _, aligned)| (k, aligned))
    }

    fn step_once(&mut self, now: Instant, ev: &mut Vec<Event>) -> bool {
        let Some(a) = self.active else {
            let start = self
                .cfg
                .prefer
                .into_iter()
                .chain(Pipeline::BOTH)
                .find(|&p| self.ready(p).is_some());
            let Some(p) = start else { return false };
            let Some((msn, _)) = self.ready(p) else {
                return false;
            };
            self.switch(now, p, SwitchReason::Started, false, ev);
            self.append(now, p, msn, false, false, ev);
            return true;
        };
        let o = a.other();
        // Return to the preferred pipeline after its hold-down, seamlessly.
        if self.cfg.prefer == Some(o) {
            let healthy = self.inputs[idx(o)]
                .healthy_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.cfg.hold_down);
            if let (true, Some((msn, true))) = (healthy && self.on_timeline(o), self.ready(o)) {
                self.switch(now, o, SwitchReason::Preferred, false, ev);
                self.append(now, o, msn, false, false, ev);
                return true;
            }
        }
        // The active pipeline restarted while the other stayed aligned.
        let other_aligned = !self.on_timeline(a) && self.on_timeline(o) && !self.lost(now, o);
        if let (true, Some((msn, true))) = (other_aligned, self.ready(o)) {
            self.switch(now, o, SwitchReason::Restarted, false, ev);
            self.append(now, o, msn, false, false, ev);
            return true;
        }
        match self
            .candidate(a)
            .map(|(msn, c, aligned)| (c.complete, c.first_seen, aligned, msn, c.seg.uri.clone()))
        {
            Some((true, _, aligned, msn, _)) => {
                self.append(now, a, msn, !aligned, false, ev);
                true
            }
            Some((false, first_seen, _, msn, uri)) => {
                if now.saturating_duration_since(first_seen) < self.threshold(a) {
                    return false;
                }
                // Announced but never completed: fill from the other pipeline.
                if let Some((omsn, true)) = self.ready(o).filter(|_| self.on_timeline(o)) {
                    self.append(now, o, omsn, false, true, ev);
                    return true;
                }
                // Neither has it whole; skip it if the active pipeline moved on.
                let later = self.inputs[idx(a)]
                    .segs
                    .range(msn + 1..)
                    .next()
                    .is_some_and(|(_, s)| s.complete);
                if later {
                    ev.push(Event::SegmentMissing {
                        at: now,
                        pipeline: a,
                        source_uri: uri,
                    });
                    self.inputs[idx(a)].segs.remove(&msn);
                    // The gap is the same moment on every aligned pipeline:
                    // their numbering now maps one further on, so the other
                    // pipeline cannot hand back content from before the gap.
                    for q in Pipeline::BOTH {
                        if self.on_timeline(q)
                            && let Some(off) = self.inputs[idx(q)].offset.as_mut()
                        {
                            *off = off.saturating_sub(1);
                        }
                    }
                    self.gap = true;
                    return true;
                }
                self.stalled_switch(now, a, ev)
            }
            None => self.stalled_switch(now, a, ev),
        }
    }

    fn stalled_switch(&mut self, now: Instant, a: Pipeline, ev: &mut Vec<Event>) -> bool {
        if !self.lost(now, a) {
            return false;
        }
        let o = a.other();
        let Some((msn, aligned)) = self.ready(o) else {
            return false;
        };
        let seamless = aligned && self.on_timeline(o);
        let reason = if self.inputs[idx(a)].ended {
            SwitchReason::Ended
        } else {
            SwitchReason::Stalled
        };
        self.switch(now, o, reason, !seamless, ev);
        self.append(now, o, msn, !seamless, false, ev);
        true
    }

    /// The output playlist, with `uri` naming each output segment.
    pub fn playlist(&self, uri: impl Fn(&OutSeg) -> String) -> Option<MediaPlaylist> {
        let target = self.target?;
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
            segments: self
                .out
                .iter()
                .map(|s| Segment {
                    uri: uri(s),
                    duration: s.duration,
                    discontinuity: s.discontinuity,
                    program_date_time: s.program_date_time,
                    tags: s.tags.clone(),
                })
                .collect(),
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
        // ENDLIST is checked when it appears (in `step`): an ended output
        // stays ended even if an encoder starts again later.
        if let Some(t) = self.target {
            assert!(t >= 1, "target duration is positive");
        }
    }
}
