//! Recovering packets lost on both legs from ST 2022-1 FEC: which FEC
//! packet covers a missing one, rebuilding it (through the other direction
//! first, for 2-D FEC), and refusing a rebuilt packet that does not fit
//! the stream followed.

use std::time::Instant;

use bytes::Bytes;

use super::{Body, FEC_ROW, FROM_FEC, Merge, MergeEvent, Slot, fec_index};

/// How far on either side of a rebuilt packet its neighbours are looked
/// for: a 2-D FEC matrix spans at most 100 packets.
const NEIGHBOUR_SPAN: u64 = 100;
use crate::fec::FecDirection;

impl Merge {
    /// Media datagram `ext` if the merge still holds it (buffered or history).
    fn media(&self, ext: u64) -> Option<&Bytes> {
        self.slot(ext).and_then(|s| s.datagram.as_ref())
    }

    /// Rebuilds `ext` from a column or row FEC packet whose other protected
    /// packets are all held; with `depth` > 0, first rebuilds one missing
    /// partner through the other direction (2-D FEC).
    pub(super) fn try_fec(&mut self, now: Instant, ext: u64, depth: u8) -> bool {
        for dir in [FecDirection::Column, FecDirection::Row] {
            let Some(base) = self.covering(dir, ext) else {
                continue;
            };
            let Some(f) = self.fec[fec_index(dir)].get(&base) else {
                continue;
            };
            let members: Vec<u64> = (0..u64::from(f.na))
                .map(|i| base + i * u64::from(f.offset))
                .collect();
            let mut missing: Vec<u64> = members
                .iter()
                .copied()
                .filter(|&m| m != ext && self.media(m).is_none())
                .collect();
            if missing.len() == 1 && depth > 0 {
                let m = missing[0];
                if m + self.cfg.history as u64 >= self.next_out && self.try_fec(now, m, depth - 1) {
                    missing.clear();
                }
            }
            if !missing.is_empty() {
                continue;
            }
            let Some(f) = self.fec[fec_index(dir)].get(&base) else {
                continue;
            };
            let ssrc = self.stream.as_ref().map_or(0, |s| s.ssrc);
            let others: Vec<&Bytes> = members
                .iter()
                .filter(|&&m| m != ext)
                .filter_map(|&m| self.media(m))
                .collect();
            let alone = f.na == 1;
            let Ok(datagram) = f.recover(ext as u16, ssrc, others) else {
                continue;
            };
            if !self.fits_the_flow(ext, &datagram, alone) {
                continue;
            }
            self.store_recovered(now, ext, datagram, dir);
            return true;
        }
        false
    }

    /// Whether a packet rebuilt for `ext` belongs to the stream followed:
    /// its RTP timestamp must be near that of one of the nearest packets
    /// held on either side of it. XOR parity carries no integrity check,
    /// and FEC computed over another stream (an encoder that restarted
    /// with its own timestamp base) rebuilds a well-formed packet nobody
    /// sent: over an even number of protected packets the other base
    /// cancels out of the group's own check, and a one-packet group has no
    /// others to check against. A rebuilt packet with no neighbour held
    /// is taken only when its group had others to check it against.
    fn fits_the_flow(&self, ext: u64, datagram: &Bytes, alone: bool) -> bool {
        let Some(ts) = crate::fec::rtp_timestamp(datagram) else {
            return false;
        };
        let below = (1..=NEIGHBOUR_SPAN)
            .map_while(|k| ext.checked_sub(k))
            .find_map(|e| self.media(e));
        let above = (1..=NEIGHBOUR_SPAN)
            .map(|k| ext + k)
            .take_while(|&e| e <= self.highest)
            .find_map(|e| self.media(e));
        let mut neighbours = below
            .into_iter()
            .chain(above)
            .filter_map(|d| crate::fec::rtp_timestamp(d))
            .peekable();
        if neighbours.peek().is_none() {
            return !alone;
        }
        neighbours.any(|n| crate::fec::timestamps_near(ts, n))
            && self.continuity_fits(ext, datagram)
    }

    /// Whether the transport packets a packet rebuilt for `ext` carries
    /// take up each PID's `continuity_counter` (ISO/IEC 13818-1 §2.4.3.3)
    /// where the packet before it left off, and hand it on to the packet
    /// after it, where those are held. FEC over another stream's packets
    /// can rebuild a timestamp that looks right (over an even number of
    /// packets the other stream's base cancels out), but the counters it
    /// rebuilds are another stream's, or the XOR of both streams': they
    /// run on inside the packet yet do not join its neighbours'. Only the
    /// two joins are checked (a break inside the packet is the stream's
    /// own), and a break at either refuses the packet, which was lost on
    /// both legs anyway.
    fn continuity_fits(&self, ext: u64, datagram: &Bytes) -> bool {
        use crate::ts::{CcFact, NULL_PID, cc_facts};
        fn ts_of(d: &Bytes) -> Option<Bytes> {
            crate::rtp::RtpPacket::parse(d.clone())
                .ok()
                .map(|r| r.payload())
        }
        /// Each PID's first and last packet in `ts`, nulls left out.
        fn ends(ts: &[u8]) -> Vec<(CcFact, CcFact)> {
            let mut v: Vec<(CcFact, CcFact)> = Vec::new();
            for f in cc_facts(ts).filter(|f| f.pid != NULL_PID) {
                match v.iter_mut().find(|(first, _)| first.pid == f.pid) {
                    Some((_, last)) => *last = f,
                    None => v.push((f, f)),
                }
            }
            v
        }
        /// Whether `next` may follow `last` on one PID.
        fn joins(last: CcFact, next: CcFact) -> bool {
            let step = if next.payload {
                (last.cc + 1) & 0x0f
            } else {
                last.cc
            };
            // The same counter again is a permitted duplicate.
            next.discontinuity || next.cc == step || next.cc == last.cc
        }
        let Some(mine) = ts_of(datagram).map(|t| ends(&t)) else {
            return false;
        };
        let before = ext
            .checked_sub(1)
            .and_then(|e| self.media(e))
            .and_then(ts_of)
            .map(|t| ends(&t));
        let after = self.media(ext + 1).and_then(ts_of).map(|t| ends(&t));
        mine.iter().all(|&(first, last)| {
            let from_before = before
                .iter()
                .flatten()
                .filter(|(f, _)| f.pid == first.pid)
                .all(|&(_, b)| joins(b, first));
            let into_after = after
                .iter()
                .flatten()
                .filter(|(f, _)| f.pid == last.pid)
                .all(|&(a, _)| joins(last, a));
            from_before && into_after
        })
    }

    fn store_recovered(&mut self, now: Instant, ext: u64, datagram: Bytes, dir: FecDirection) {
        self.counters.recovered_by_fec += 1;
        self.events.push_back(MergeEvent::RecoveredByFec {
            at: now,
            sequence_number: ext as u16,
            direction: dir,
        });
        let idx = (ext & self.mask) as usize;
        let unemitted = ext >= self.next_out;
        if let Some(s) = self.ring.get_mut(idx) {
            if let Some(old) = s.take()
                && old.ext != ext
            {
                self.retire(old);
            }
            if let Some(s) = self.ring.get_mut(idx) {
                *s = Some(Slot {
                    ext,
                    body: Body::rebuilt(&datagram),
                    datagram: Some(datagram),
                    arrival: now,
                    legs: match dir {
                        FecDirection::Column => FROM_FEC,
                        FecDirection::Row => FROM_FEC | FEC_ROW,
                    },
                    emitted: !unemitted,
                });
            }
        }
        if unemitted {
            self.queue_arrival(now, ext);
            self.pending += 1;
            self.highest = self.highest.max(ext);
        }
    }

    /// The SNBase of the `dir` FEC packet held that protects `ext`.
    fn covering(&self, dir: FecDirection, ext: u64) -> Option<u64> {
        let map = &self.fec[fec_index(dir)];
        map.range(ext.saturating_sub(20 * 20)..=ext)
            .rev()
            .find(|(base, f)| {
                let off = u64::from(f.offset);
                let span = off * (u64::from(f.na) - 1);
                ext >= **base && ext - **base <= span && (ext - **base).is_multiple_of(off)
            })
            .map(|(b, _)| *b)
    }

    pub(super) fn prune_fec(&mut self) {
        let keep_from = self.next_out.saturating_sub(self.cfg.history as u64);
        for map in self.fec.iter_mut() {
            while map.first_key_value().is_some_and(|(b, _)| *b < keep_from) {
                map.pop_first();
            }
        }
    }
}
