//! Outputs that stop and start: an ended output that resumes by itself
//! when an encoder starts again, an output an operator resets, and an
//! output continued from only its numbering.
//!
//! Resuming. RFC 8216 §6.2.1 lets a client stop reloading a playlist once
//! it carries `EXT-X-ENDLIST`, and expect no change after it. Live channels
//! are stopped and started every day (MediaLive channels on a schedule),
//! and the operator expects the same output URL to carry on. So once both
//! pipelines ended and the output ended, a pipeline that publishes again
//! without `EXT-X-ENDLIST` and has a new segment stored whole resumes it:
//! the media sequence carries on from where it stopped, the first new
//! segment carries `EXT-X-DISCONTINUITY` (its timestamps restarted), the
//! next playlist has no `EXT-X-ENDLIST`, and [`Event::Resumed`] is raised.
//! A player that stopped at the end reloads to see it; one still polling
//! plays on across the discontinuity.
//!
//! Alignment after a resume is as at a start: the pipeline that resumed
//! sets the new timeline; the other, if it is already back, is numbered as
//! it is (or keeps the relation it had to it); if it is still ended, its
//! return joins the timeline when its segments carry program date-times,
//! else it stays on a timeline of its own (a switch to it is then marked).
//!
//! Resetting. [`RenditionMerge::reset`] starts a fresh output: the window
//! empties (each segment leaves as it would have, so its pin expires after
//! the grace period), the media sequence jumps to the base the caller
//! gives (never below the next number, so it never goes back for a player
//! still polling), and the next segment starts a new timeline. Nothing
//! that went out before goes out again.

use std::time::Instant;

use tandem_core::Pipeline;

use super::{Event, RenditionMerge, SwitchReason, idx};
use crate::playlist::MediaPlaylist;

impl RenditionMerge {
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

    /// Starts a fresh output at media sequence `base` (at least the next
    /// number): every segment leaves the window, an ended output is live
    /// again (empty until a pipeline has a new segment), and the next
    /// segment carries `EXT-X-DISCONTINUITY` and starts a new timeline.
    /// The target duration stays: players polling across see it unchanged.
    pub fn reset(&mut self, now: Instant, base: u64) -> Vec<Event> {
        let mut ev = Vec::new();
        let next = base.max(self.next_msn);
        // The pipelines' numbering maps onto the new numbers as it did onto
        // the old ones.
        let delta = i64::try_from(next - self.next_msn).unwrap_or(i64::MAX);
        for inp in &mut self.inputs {
            if let Some(off) = inp.offset.as_mut() {
                *off = off.saturating_add(delta);
            }
        }
        while let Some(old) = self.out.pop_front() {
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
            ev.push(Event::SegmentRemoved {
                at: now,
                media_sequence: old.media_sequence,
                discontinuity: old.discontinuity,
            });
            self.previous = Some(old);
        }
        self.next_msn = next;
        self.ended = false;
        self.stopped = false;
        self.gap = false;
        self.rejoin = [false; 2];
        self.restarting = true;
        ev.push(Event::Reset {
            at: now,
            media_sequence: next,
        });
        self.step(now, &mut ev);
        ev
    }

    /// Whether the output ended and may resume (not stopped).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The ended output resumes if a pipeline that is no longer ended has
    /// its next segment stored whole. Called by `step` while ended.
    pub(super) fn try_resume(&mut self, now: Instant, ev: &mut Vec<Event>) -> bool {
        if self.stopped {
            return false;
        }
        let order = self
            .cfg
            .prefer
            .into_iter()
            .chain(self.active)
            .chain(Pipeline::BOTH);
        let mut found = None;
        for p in order {
            if self.inputs[idx(p)].ended {
                continue;
            }
            if let Some((msn, _)) = self.ready(p) {
                found = Some((p, msn));
                break;
            }
        }
        let Some((p, msn)) = found else {
            return false;
        };
        self.ended = false;
        ev.push(Event::Resumed {
            at: now,
            pipeline: p,
            media_sequence: self.next_msn,
        });
        if self.active != Some(p) {
            self.switch(now, p, SwitchReason::Resumed, true, ev);
        }
        self.restarting = true;
        self.append(now, p, msn, true, false, ev);
        true
    }

    /// `p`'s segment starts a new timeline (`restarting`): `p` is on it
    /// with the numbering `offset`. The other pipeline keeps its relation
    /// to `p` (`kept`: its offset minus `p`'s) when both were on the old
    /// timeline; one that is back but was not is numbered as `p` (as at a
    /// start); one still ended joins when it returns.
    pub(super) fn start_timeline(&mut self, p: Pipeline, offset: i64, kept: Option<i64>) {
        self.timeline += 1;
        let o = p.other();
        self.inputs[idx(p)].timeline = Some(self.timeline);
        self.inputs[idx(p)].offset = Some(offset);
        let ended = self.inputs[idx(o)].ended;
        self.rejoin = [false; 2];
        self.rejoin[idx(o)] = ended;
        let other = &mut self.inputs[idx(o)];
        match kept {
            Some(rel) => {
                other.timeline = Some(self.timeline);
                other.offset = Some(offset.saturating_add(rel));
            }
            None if !ended => {
                other.timeline = Some(self.timeline);
                other.offset = Some(offset);
            }
            None => {}
        }
    }

    /// A pipeline that was still ended when the output resumed advanced
    /// again: it joins the timeline when program date-times align it.
    /// Without them its numbering says nothing about the resumed one's (it
    /// started later), so it stays on a timeline of its own.
    pub(super) fn rejoin_timeline(&mut self, p: Pipeline, pl: &MediaPlaylist) {
        let dated = pl.segments.iter().all(|s| s.program_date_time.is_some())
            && self
                .out
                .back()
                .is_some_and(|s| s.program_date_time.is_some());
        let Some(a) = self
            .active
            .filter(|a| *a != p && dated && self.on_timeline(*a) && !self.on_timeline(p))
        else {
            return;
        };
        let offset = self.inputs[idx(a)].offset;
        let inp = &mut self.inputs[idx(p)];
        inp.timeline = Some(self.timeline);
        inp.offset = offset;
    }
}
