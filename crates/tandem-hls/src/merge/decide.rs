//! The decisions: append the active pipeline's next segment, fill a
//! missing one from the other pipeline, skip a position neither has whole,
//! switch on a stall, an end or a restart, return to a preferred pipeline.

use std::time::Instant;

use tandem_core::{InputState, Pipeline};

use super::{Event, OutSeg, RenditionMerge, SwitchReason, idx};

impl RenditionMerge {
    pub(super) fn set_state(
        &mut self,
        now: Instant,
        p: Pipeline,
        to: InputState,
        ev: &mut Vec<Event>,
    ) {
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

    pub(super) fn append(
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
        let restarting = std::mem::take(&mut self.restarting);
        let mut discontinuity = discontinuity || std::mem::take(&mut self.gap) || restarting;
        let offset_of = |next: u64| {
            i64::try_from(next).unwrap_or(i64::MAX) - i64::try_from(in_msn).unwrap_or(0)
        };
        if self.target.is_none() {
            discontinuity |= self.resumed_at.is_some();
            self.target = Some(
                self.inputs[i]
                    .target
                    .max(src.seg.duration.ceil() as u64)
                    .max(1),
            );
            self.next_msn = in_msn.max(self.resumed_at.unwrap_or(0)).max(self.next_msn);
            self.header = self.inputs[i].header.clone();
            // Redundant encoders number segments identically.
            for q in Pipeline::BOTH {
                self.inputs[idx(q)].offset = Some(offset_of(self.next_msn));
            }
        }
        if restarting {
            // The other pipeline's numbering relative to this one, when
            // both are on the timeline.
            let o = p.other();
            let kept = (self.on_timeline(p) && self.on_timeline(o))
                .then(|| {
                    let (a, b) = (self.inputs[i].offset, self.inputs[idx(o)].offset);
                    b.zip(a).map(|(b, a)| b.saturating_sub(a))
                })
                .flatten();
            self.start_timeline(p, offset_of(self.next_msn), kept);
        } else if discontinuity && !self.on_timeline(p) {
            self.timeline += 1;
        }
        // Redundant encoders number the same moments identically: when this
        // pipeline's segment moves its numbering against the output (a
        // jump past positions it never had whole), the other pipeline on
        // the timeline moves with it, or it could hand back a moment the
        // output has already passed.
        let new_offset = offset_of(self.next_msn);
        if !restarting
            && self.on_timeline(p)
            && let Some(old) = self.inputs[i].offset
            && old != new_offset
        {
            let o = p.other();
            if self.on_timeline(o)
                && let Some(off) = self.inputs[idx(o)].offset.as_mut()
            {
                *off = off.saturating_add(new_offset.saturating_sub(old));
            }
        }
        let inp = &mut self.inputs[i];
        if inp.timeline != Some(self.timeline) {
            inp.timeline = Some(self.timeline);
        }
        inp.offset = Some(new_offset);
        inp.emitted = Some(inp.emitted.map_or(in_msn, |e| e.max(in_msn)));
        let seg = OutSeg {
            media_sequence: self.next_msn,
            from: p,
            source_uri: src.seg.uri.clone(),
            duration: src.seg.duration,
            program_date_time: src.seg.program_date_time,
            discontinuity: discontinuity || src.seg.discontinuity,
            tags: src.seg.tags.clone(),
            in_effect: src.in_effect.clone(),
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

    pub(super) fn switch(
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
    pub(super) fn step(&mut self, now: Instant, ev: &mut Vec<Event>) {
        self.stepped_at = Some(self.stepped_at.map_or(now, |s| s.max(now)));
        for p in Pipeline::BOTH {
            if self.inputs[idx(p)].state == InputState::Receiving && self.lost(now, p) {
                self.set_state(now, p, InputState::Lost, ev);
            }
        }
        if self.ended && !self.try_resume(now, ev) {
            return;
        }
        // Bounded: each pass appends a segment, switches once, or stops.
        for _ in 0..10_000 {
            if !self.step_once(now, ev) {
                break;
            }
        }
        let both_ended = self.inputs.iter().all(|i| i.ended);
        // Nothing more to come from `p`: no candidate, or one announced
        // but still incomplete past the loss threshold (an upload still in
        // flight when the encoder wrote ENDLIST gets that long to land:
        // players stop polling at ENDLIST).
        let exhausted = |p: Pipeline| {
            self.candidate(p).is_none_or(|(_, c, _)| {
                !c.complete && now.saturating_duration_since(c.first_seen) >= self.threshold(p)
            })
        };
        // A reset output waits, live, for its first segment.
        if both_ended
            && !self.restarting
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

    pub(super) fn step_once(&mut self, now: Instant, ev: &mut Vec<Event>) -> bool {
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
            // The active pipeline restarted and the other is aligned and
            // receiving: its next segment continues the output seamlessly,
            // so wait for it rather than break the timeline.
            Some((true, ..)) if other_aligned => false,
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

    pub(super) fn stalled_switch(
        &mut self,
        now: Instant,
        a: Pipeline,
        ev: &mut Vec<Event>,
    ) -> bool {
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
}
