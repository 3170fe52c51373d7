//! Which segment comes next: a pipeline's candidate for the next output
//! position, aligned by program date-time or by numbering on the output's
//! timeline, else the first that follows the last output segment in time.

use std::time::{Duration, Instant};

use tandem_core::Pipeline;

use super::{InSeg, RenditionMerge, idx};

impl RenditionMerge {
    pub(super) fn lost(&self, now: Instant, p: Pipeline) -> bool {
        let inp = &self.inputs[idx(p)];
        inp.ended
            || inp
                .last_advance
                .is_none_or(|t| now.saturating_duration_since(t) >= self.threshold(p))
    }

    /// Whether a pipeline's current epoch is on the output's timeline.
    pub(super) fn on_timeline(&self, p: Pipeline) -> bool {
        self.inputs[idx(p)].timeline == Some(self.timeline)
    }

    /// The segment of `p` that would come next in the output, if `p` has
    /// announced it: its media sequence number, the segment, and whether
    /// it continues the output seamlessly.
    ///
    /// A source segment goes out once: nothing at or below `emitted` is a
    /// candidate, whatever a later playlist re-announces.
    pub(super) fn candidate(&self, p: Pipeline) -> Option<(u64, &InSeg, bool)> {
        let inp = &self.inputs[idx(p)];
        let fresh = |k: u64| inp.emitted.is_none_or(|e| k > e);
        let Some(last) = self.out.back().or(self.previous.as_ref()) else {
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
                let after_last = |t: i64| follows(t, last.program_date_time, exp);
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
                (Some(exp), Some(t)) => t >= exp - tol && follows(t, last.program_date_time, exp),
                _ => s.first_seen >= last.first_seen + half_target,
            };
            later && fresh(k) && (!same_epoch || k > last.source_msn)
        };
        inp.segs
            .iter()
            .find(|(k, s)| after(**k, s))
            .map(|(k, s)| (*k, s, false))
    }

    /// The next segment of `p` if it is stored whole: its media sequence
    /// number and whether it continues the output seamlessly.
    pub(super) fn ready(&self, p: Pipeline) -> Option<(u64, bool)> {
        self.candidate(p)
            .filter(|(_, c, _)| c.complete)
            .map(|(k, _, aligned)| (k, aligned))
    }
}

/// Whether a segment starting at `t` (ms) follows the last output segment,
/// which started at `last` and is followed at `next`: it must start nearer
/// `next` than `last`, whatever the tolerance. Otherwise it carries the
/// same moment as the last one: the other encoder's copy of a segment
/// shorter than the tolerance (an encoder's last one, when the encoders'
/// clocks differ by a fraction of it), or that segment itself.
fn follows(t: i64, last: Option<i64>, next: i64) -> bool {
    last.is_none_or(|l| t > l && t.saturating_sub(l) > next.saturating_sub(t))
}
