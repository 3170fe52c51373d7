//! One track's output timeline: the fragments released to clients, in
//! `tfxd` time order, and those that arrived but wait for a hole before
//! them to be filled or declared a gap.
//!
//! The output only ever appends: a fragment is released when it starts
//! where the last one ended, or when the hole before it can no longer be
//! filled (each pipeline either moved past it or cannot deliver any more,
//! or it has waited the loss threshold). Fragments that leave the DVR
//! window come off the front.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use tandem_core::Pipeline;

use super::{Event, RejectReason};
use crate::notice::FragmentNotice;
use crate::track::{Track, TrackKey};

/// Fragments waiting before one track's output; past this many the oldest
/// hole is declared a gap whatever the clock says, so memory stays bounded
/// when an encoder runs far ahead of a hole.
pub const MAX_PENDING: usize = 256;

/// One fragment of the output timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFragment {
    /// `tfxd` time, in the track's timescale.
    pub time: u64,
    pub duration: u64,
    /// The pipeline whose copy is served.
    pub from: Pipeline,
    pub bytes: u64,
    pub storage_key: String,
    /// Which pipelines delivered this time (index = pipeline).
    pub copies: [bool; 2],
    /// Only `from` delivered it: the other pipeline moved past it or could
    /// not deliver when it went out.
    pub filled: bool,
}

impl OutFragment {
    pub fn end(&self) -> u64 {
        self.time.saturating_add(self.duration)
    }
}

/// A fragment stored whole that is not in the output yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pending {
    pub from: Pipeline,
    pub duration: u64,
    pub bytes: u64,
    pub storage_key: String,
    pub since: Instant,
    pub copies: [bool; 2],
}

#[derive(Debug, Clone)]
pub(super) struct Timeline {
    pub track: Track,
    pub out: BTreeMap<u64, OutFragment>,
    /// Where the next output fragment starts: the end of the last one.
    pub next: Option<u64>,
    pub pending: BTreeMap<u64, Pending>,
    /// The latest start time each pipeline delivered on this track.
    pub reached: [Option<u64>; 2],
    /// The pipeline's times jumped back behind the output; its fragments
    /// wait until they pass the output's end.
    pub restarted: [bool; 2],
}

impl Timeline {
    pub fn new(track: Track) -> Self {
        Self {
            track,
            out: BTreeMap::new(),
            next: None,
            pending: BTreeMap::new(),
            reached: [None, None],
            restarted: [false, false],
        }
    }

    fn key(&self) -> TrackKey {
        self.track.key()
    }

    /// A fragment stored whole arrives. The caller checked the stream,
    /// presentation and duration.
    pub fn arrive(&mut self, now: Instant, n: FragmentNotice, ev: &mut Vec<Event>) {
        let p = n.pipeline;
        let i = p.index();
        let t = n.time;
        let kept = if let Some(o) = self.out.get_mut(&t) {
            o.copies[i] = true;
            Some(o.storage_key.clone())
        } else if let Some(w) = self.pending.get_mut(&t) {
            w.copies[i] = true;
            Some(w.storage_key.clone())
        } else {
            None
        };
        if let Some(kept) = kept {
            // The same moment from the other encoder, or resent by this one
            // from its cache after a reconnect: one copy is enough.
            ev.push(Event::Duplicate {
                at: now,
                track: self.key(),
                time: t,
                pipeline: p,
                storage_key: n.storage_key,
                kept,
            });
            if !self.restarted[i] && self.reached[i].is_none_or(|r| t > r) {
                self.advance(now, p, t, ev);
            }
            return;
        }
        let behind = self.next.is_some_and(|nx| t < nx);
        let jumped_back = self.reached[i].filter(|&r| t < r);
        if behind {
            if let (Some(last), false) = (jumped_back, self.restarted[i]) {
                self.restarted[i] = true;
                ev.push(Event::Restarted {
                    at: now,
                    pipeline: p,
                    track: self.key(),
                    time: t,
                    last,
                });
            }
            let reason = if self.restarted[i] {
                self.reached[i] = Some(t);
                RejectReason::BehindOutput
            } else {
                RejectReason::Late
            };
            ev.push(self.rejected(now, n, reason));
            return;
        }
        let end = t.saturating_add(n.duration);
        let overlaps_before = self
            .pending
            .range(..t)
            .next_back()
            .is_some_and(|(k, w)| k.saturating_add(w.duration) > t);
        let overlaps_after = self
            .pending
            .range(t..)
            .next()
            .is_some_and(|(k, _)| *k < end);
        if overlaps_before || overlaps_after {
            ev.push(self.rejected(now, n, RejectReason::Misaligned));
            return;
        }
        if let Some(last) = jumped_back {
            // Back in time, but still ahead of the output: merged.
            ev.push(Event::Restarted {
                at: now,
                pipeline: p,
                track: self.key(),
                time: t,
                last,
            });
            self.reached[i] = None;
        }
        self.restarted[i] = false;
        self.advance(now, p, t, ev);
        let mut copies = [false, false];
        copies[i] = true;
        self.pending.insert(
            t,
            Pending {
                from: p,
                duration: n.duration,
                bytes: n.bytes,
                storage_key: n.storage_key,
                since: now,
                copies,
            },
        );
    }

    /// `p` delivered time `t`: every output fragment it passed over without
    /// sending is one it will never send, served from the other pipeline.
    fn advance(&mut self, now: Instant, p: Pipeline, t: u64, ev: &mut Vec<Event>) {
        let i = p.index();
        let lo = self.reached[i].map_or(Bound::Unbounded, Bound::Excluded);
        let key = self.key();
        for o in self.out.range_mut((lo, Bound::Excluded(t))).map(|(_, o)| o) {
            if !o.copies[i] && !o.filled {
                o.filled = true;
                ev.push(Event::Filled {
                    at: now,
                    track: key.clone(),
                    time: o.time,
                    from: o.from,
                });
            }
        }
        self.reached[i] = Some(self.reached[i].map_or(t, |r| r.max(t)));
    }

    fn rejected(&self, now: Instant, n: FragmentNotice, reason: RejectReason) -> Event {
        Event::Rejected {
            at: now,
            pipeline: n.pipeline,
            track: n.track,
            time: n.time,
            storage_key: n.storage_key,
            reason,
        }
    }

    /// Whether pipeline `q` may still deliver the fragment at `m`: it can
    /// deliver this track (`may`), did not restart behind the output, and
    /// has not moved past `m`.
    fn awaited(&self, q: Pipeline, may: [bool; 2], m: u64) -> bool {
        let can = *q.of(&may) && !*q.of(&self.restarted);
        let reached = *q.of(&self.reached);
        can && match self.next {
            // At the start nothing is missing: the earliest first fragment
            // of the two pipelines starts the output.
            None => reached.is_none(),
            Some(_) => reached.is_none_or(|r| r < m),
        }
    }

    /// Releases every pending fragment that may go out at `now`. `force`:
    /// nothing more will arrive (both ended, or the channel stopped).
    pub fn release(
        &mut self,
        now: Instant,
        threshold: Duration,
        may: [bool; 2],
        force: bool,
        window: Duration,
        ev: &mut Vec<Event>,
    ) {
        while let Some((&m, w)) = self.pending.first_key_value() {
            if self.next != Some(m) {
                let waited = now.saturating_duration_since(w.since) >= threshold;
                let settled =
                    !self.awaited(Pipeline::P0, may, m) && !self.awaited(Pipeline::P1, may, m);
                if !(force || waited || settled || self.pending.len() > MAX_PENDING) {
                    break;
                }
                if let Some(n) = self.next.filter(|&n| m > n) {
                    ev.push(Event::Gap {
                        at: now,
                        track: self.key(),
                        from: n,
                        to: m,
                    });
                }
            }
            let Some(w) = self.pending.remove(&m) else {
                break;
            };
            let q = w.from.other().index();
            let filled = !w.copies[q]
                && (!may[q] || self.restarted[q] || self.reached[q].is_some_and(|r| r > m));
            let frag = OutFragment {
                time: m,
                duration: w.duration,
                from: w.from,
                bytes: w.bytes,
                storage_key: w.storage_key,
                copies: w.copies,
                filled,
            };
            ev.push(Event::FragmentAdded {
                at: now,
                track: self.key(),
                time: m,
                duration: frag.duration,
                from: frag.from,
                storage_key: frag.storage_key.clone(),
            });
            if filled {
                ev.push(Event::Filled {
                    at: now,
                    track: self.key(),
                    time: m,
                    from: frag.from,
                });
            }
            self.next = Some(frag.end());
            self.out.insert(m, frag);
            self.trim(now, window, ev);
        }
    }

    /// The DVR window in this track's units (at least one unit).
    fn window_units(&self, window: Duration) -> u64 {
        let units = window.as_nanos() * u128::from(self.track.timescale) / 1_000_000_000;
        u64::try_from(units).unwrap_or(u64::MAX).max(1)
    }

    /// Drops what ended before the window: a fragment stays while any of
    /// it is within `window` of the output's end.
    fn trim(&mut self, now: Instant, window: Duration, ev: &mut Vec<Event>) {
        let Some(next) = self.next else { return };
        let horizon = next.saturating_sub(self.window_units(window));
        while let Some(first) = self.out.first_entry() {
            if first.get().end() > horizon {
                break;
            }
            let old = first.remove();
            ev.push(Event::FragmentRemoved {
                at: now,
                track: self.key(),
                time: old.time,
                storage_key: old.storage_key,
            });
        }
    }

    /// Everything stored for this track, as removal events (a new
    /// presentation replaces the timeline).
    pub fn drain(&mut self, now: Instant, ev: &mut Vec<Event>) {
        let key = self.key();
        for (time, o) in std::mem::take(&mut self.out) {
            ev.push(Event::FragmentRemoved {
                at: now,
                track: key.clone(),
                time,
                storage_key: o.storage_key,
            });
        }
        for (time, w) in std::mem::take(&mut self.pending) {
            ev.push(Event::FragmentRemoved {
                at: now,
                track: key.clone(),
                time,
                storage_key: w.storage_key,
            });
        }
    }

    /// When the oldest hole must be decided, if one is waiting.
    pub fn deadline(&self, threshold: Duration) -> Option<Instant> {
        let (&m, w) = self.pending.first_key_value()?;
        (self.next != Some(m)).then(|| w.since + threshold)
    }

    /// # Panics
    /// When the timeline breaks its contract.
    pub fn check(&self, window: Duration) {
        let mut prev_end: Option<u64> = None;
        for (&t, o) in &self.out {
            assert_eq!(t, o.time, "{}: keyed by its own time", self.key());
            assert!(o.duration > 0, "{}: fragment at {t} lasts 0", self.key());
            if let Some(e) = prev_end {
                assert!(
                    e <= t,
                    "{}: fragment at {t} overlaps the one before",
                    self.key()
                );
            }
            assert!(
                o.copies[o.from.index()],
                "{}: served copy not delivered",
                self.key()
            );
            prev_end = Some(o.end());
        }
        if let Some(e) = prev_end {
            assert_eq!(
                self.next,
                Some(e),
                "{}: next starts at the last end",
                self.key()
            );
            let horizon = e.saturating_sub(self.window_units(window));
            if let Some(first) = self.out.values().next() {
                assert!(first.end() > horizon, "{}: DVR window exceeded", self.key());
            }
        }
        let mut prev_end = self.next;
        for (&t, w) in &self.pending {
            if let Some(e) = prev_end {
                assert!(e <= t, "{}: pending {t} overlaps", self.key());
            }
            assert!(
                w.copies[w.from.index()],
                "{}: pending copy not delivered",
                self.key()
            );
            prev_end = Some(t.saturating_add(w.duration));
        }
        assert!(
            self.pending.len() <= MAX_PENDING + 1,
            "{}: pending unbounded",
            self.key()
        );
    }
}
