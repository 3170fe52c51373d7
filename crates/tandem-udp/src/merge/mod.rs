//! The SMPTE ST 2022-7 merge: two RTP legs carrying the same packets in,
//! each packet out once, in sequence order.
//!
//! Sans-IO: datagrams come in with their arrival time and leg (`now` is
//! monotonic; calls must not go back in time), packets to forward come out
//! of [`Merge::poll_output`] in order, events out of [`Merge::poll_event`],
//! and [`Merge::next_deadline`] says when to call [`Merge::on_tick`]. The
//! driver owns sockets and clocks.
//!
//! Ordering. Sequence numbers are extended past their 16-bit wrap-around
//! relative to the next one due out. A packet that arrives in order goes
//! out at once: the merge adds no delay while either leg delivers. When the
//! next sequence number is missing, the packets after it wait until the
//! earliest of them has waited the skew window ([`MergeConfig::skew_window`],
//! ST 2022-7 §6): the missing packet, had either leg carried it, would have
//! arrived by then. It is then rebuilt from 2022-1 FEC if FEC packets allow
//! (waiting up to [`MergeConfig::fec_wait`] more while FEC arrives), else
//! reported [`MergeEvent::Lost`], and the output moves on. Copies arriving
//! after their packet went out are counted, never forwarded twice.
//!
//! Streams. The output follows one stream: an SSRC and a run of sequence
//! numbers. A packet with another SSRC, or a sequence number far from the
//! stream's (more than RFC 3550 A.1's dropout limit of 3000 ahead, or
//! behind the history), belongs to a restarted sender. Once two consecutive
//! packets confirm it (RFC 3550 A.1's probation), the leg is reported
//! [`MergeEvent::LegRestarted`] and its packets are held back while the
//! other leg carries on with the followed stream. When the followed stream
//! has been silent on both legs for the skew window, the output switches to
//! the restarted stream ([`MergeEvent::StreamRestarted`]), starting from the
//! packets held back, so none is lost.
//!
//! Invariants ([`Merge::check_invariants`]): output extended sequence
//! numbers strictly increase; within a stream, each one is the previous
//! plus one or follows reported losses; nothing waits beyond its deadline.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_core::Pipeline;

use crate::fec::{FecDirection, FecPacket};
use crate::rtp::{PAYLOAD_TYPE_MP2T, RtpPacket};
use crate::ts::{Continuity, ContinuityCounters, TsDatagram};

mod recover;
mod types;

pub use types::{
    DropReason, LegCounters, MergeConfig, MergeCounters, MergeEvent, MergedPacket, SkewClass,
    Source,
};

/// RFC 3550 A.1: a jump of more than this many packets is a new sequence base.
const MAX_DROPOUT: u64 = 3000;
/// RFC 3550 A.1: packets in sequence that confirm a restarted source.
const MIN_SEQUENTIAL: u32 = 2;
/// Extended sequence numbers start here so that they can go back before the first packet.
const EXT_BASE: u64 = 1 << 32;
/// Bit of a slot's `legs` mask for a packet rebuilt by FEC.
const FROM_FEC: u8 = 0b100;
/// With [`FROM_FEC`]: rebuilt from a row rather than a column.
const FEC_ROW: u8 = 0b1000;

#[derive(Debug)]
struct Slot {
    ext: u64,
    datagram: Option<Bytes>,
    body: Body,
    arrival: Instant,
    legs: u8,
    emitted: bool,
}

/// Where a packet's payload lies, and whether it is whole TS packets
/// (payload type 33, checked): found once, when the packet comes in.
#[derive(Debug, Clone)]
struct Body {
    range: std::ops::Range<usize>,
    ts: bool,
}

impl Body {
    /// Of a packet from a leg, which [`Merge::validate`] passed.
    fn of(p: &RtpPacket) -> Self {
        Self {
            range: p.payload_range(),
            ts: p.payload_type == PAYLOAD_TYPE_MP2T,
        }
    }

    /// Of a packet rebuilt by FEC, checked here.
    fn rebuilt(datagram: &Bytes) -> Self {
        match RtpPacket::parse(datagram.clone()) {
            Ok(p) => Self {
                ts: p.payload_type == PAYLOAD_TYPE_MP2T
                    && TsDatagram::check(p.payload_slice()).is_ok(),
                range: p.payload_range(),
            },
            Err(_) => Self {
                range: 0..datagram.len(),
                ts: false,
            },
        }
    }
}

#[derive(Debug)]
struct Diverged {
    ssrc: u32,
    next_seq: u16,
    consecutive: u32,
    reported: bool,
    held: VecDeque<(Instant, RtpPacket)>,
}

#[derive(Debug, Default)]
struct Leg {
    last_ext: Option<u64>,
    last_in_stream: Option<Instant>,
    lost: bool,
    diverged: Option<Diverged>,
}

#[derive(Debug)]
struct Stream {
    ssrc: u32,
    /// Output does not start before this (first window of a stream: a
    /// packet sent earlier may still arrive on the slower leg).
    hold_until: Instant,
    emitted_any: bool,
}

/// The 2022-7 merge of one flow. See the module documentation.
#[derive(Debug)]
pub struct Merge {
    cfg: MergeConfig,
    ring: Vec<Option<Slot>>,
    mask: u64,
    stream: Option<Stream>,
    next_out: u64,
    highest: u64,
    /// Unemitted packets at or after `next_out`.
    pending: usize,
    /// Earliest arrival among pending packets while `next_out` is missing.
    blocked_since: Option<Instant>,
    /// Arrival and extended number of each pending packet, in the order
    /// they became pending (arrivals never decrease), entries before
    /// `next_out` dropped as it passes them: the front is the earliest
    /// arrival, found without walking the buffer, which at 300,000
    /// packets/s holds 15,000 packets of a 50 ms window.
    arrivals: VecDeque<(Instant, u64)>,
    last_in_stream: Option<Instant>,
    legs: [Leg; 2],
    fec: [BTreeMap<u64, FecPacket>; 2],
    last_fec: Option<Instant>,
    /// The window of the missing `next_out` passed; FEC may still rebuild it.
    fec_waiting: bool,
    loss_run: Option<(u16, u64)>,
    last_output_ext: Option<u64>,
    continuity: ContinuityCounters,
    output: VecDeque<MergedPacket>,
    events: VecDeque<MergeEvent>,
    counters: MergeCounters,
}

fn bit(leg: Pipeline) -> u8 {
    1 << leg.index()
}

fn other(leg: Pipeline) -> Pipeline {
    match leg {
        Pipeline::P0 => Pipeline::P1,
        Pipeline::P1 => Pipeline::P0,
    }
}

/// `seq` extended to the value nearest `reference`.
fn extend(reference: u64, seq: u16) -> u64 {
    let delta = i64::from(seq.wrapping_sub(reference as u16) as i16);
    reference.wrapping_add_signed(delta)
}

fn fec_index(d: FecDirection) -> usize {
    match d {
        FecDirection::Column => 0,
        FecDirection::Row => 1,
    }
}

impl Merge {
    pub fn new(cfg: MergeConfig) -> Self {
        let cfg = cfg.clamped();
        let capacity = cfg.capacity.max(2 * cfg.history.max(1)).next_power_of_two();
        let mut ring = Vec::with_capacity(capacity);
        ring.resize_with(capacity, || None);
        Self {
            cfg,
            ring,
            mask: capacity as u64 - 1,
            stream: None,
            next_out: EXT_BASE,
            highest: EXT_BASE,
            pending: 0,
            blocked_since: None,
            arrivals: VecDeque::new(),
            last_in_stream: None,
            legs: Default::default(),
            fec: Default::default(),
            last_fec: None,
            fec_waiting: false,
            loss_run: None,
            last_output_ext: None,
            continuity: ContinuityCounters::new(),
            output: VecDeque::new(),
            events: VecDeque::new(),
            counters: MergeCounters::default(),
        }
    }

    pub fn config(&self) -> &MergeConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &MergeCounters {
        &self.counters
    }

    /// The next packet to forward, in sequence order.
    pub fn poll_output(&mut self) -> Option<MergedPacket> {
        self.output.pop_front()
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<MergeEvent> {
        self.events.pop_front()
    }

    /// The SSRC of the stream the output follows.
    pub fn ssrc(&self) -> Option<u32> {
        self.stream.as_ref().map(|s| s.ssrc)
    }

    /// Whether `leg` is currently lost (delivering nothing of the followed stream).
    pub fn leg_lost(&self, leg: Pipeline) -> bool {
        leg.of(&self.legs).lost
    }

    /// A media datagram arrived on `leg` at `now`.
    pub fn on_packet(&mut self, now: Instant, leg: Pipeline, datagram: Bytes) {
        let c = &mut self.counters.legs[leg.index()];
        c.packets += 1;
        c.bytes += datagram.len() as u64;
        match self.validate(datagram) {
            Ok(p) => self.accept(now, leg, p),
            Err(reason) => {
                self.counters.legs[leg.index()].invalid += 1;
                self.events.push_back(MergeEvent::Dropped {
                    at: now,
                    leg,
                    reason,
                });
            }
        }
        self.step(now);
    }

    /// An ST 2022-1 FEC datagram (column or row) arrived on `leg` at `now`.
    pub fn on_fec(&mut self, now: Instant, leg: Pipeline, datagram: Bytes) {
        self.counters.legs[leg.index()].fec_packets += 1;
        match FecPacket::parse(datagram) {
            Ok(f) => {
                self.last_fec = Some(now);
                let ext = extend(self.next_out, f.sn_base);
                self.fec[fec_index(f.direction)].entry(ext).or_insert(f);
            }
            Err(e) => {
                self.counters.legs[leg.index()].fec_invalid += 1;
                self.events.push_back(MergeEvent::Dropped {
                    at: now,
                    leg,
                    reason: DropReason::BadFec(e),
                });
            }
        }
        self.step(now);
    }

    /// Time passed. Safe to call early or twice.
    pub fn on_tick(&mut self, now: Instant) {
        self.step(now);
    }

    /// When [`Merge::on_tick`] must next be called, if ever. After any call
    /// at `now`, it is later than `now`.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut at = |t: Instant| d = Some(d.map_or(t, |d| d.min(t)));
        if let Some(s) = &self.stream
            && !s.emitted_any
            && self.pending > 0
            && self.blocked_since.is_none()
        {
            at(s.hold_until);
        }
        if let Some(since) = self.blocked_since {
            let w = since + self.cfg.skew_window;
            at(if self.fec_waiting {
                w + self.cfg.fec_wait
            } else {
                w
            });
        }
        for leg in &self.legs {
            if let (false, Some(t)) = (leg.lost, leg.last_in_stream) {
                at(t + self.cfg.leg_lost_after);
            }
        }
        if let Some(t) = self.last_in_stream
            && self
                .legs
                .iter()
                .any(|l| l.diverged.as_ref().is_some_and(|d| d.reported))
        {
            at(t + self.cfg.skew_window);
        }
        d
    }

    fn fec_active(&self, now: Instant) -> bool {
        self.last_fec
            .is_some_and(|t| now.saturating_duration_since(t) <= Duration::from_secs(1))
    }

    fn validate(&self, datagram: Bytes) -> Result<RtpPacket, DropReason> {
        let p = RtpPacket::parse(datagram).map_err(DropReason::NotRtp)?;
        if let Some(expected) = self.cfg.payload_type
            && p.payload_type != expected
        {
            return Err(DropReason::WrongPayloadType {
                expected,
                found: p.payload_type,
            });
        }
        if p.payload_type == PAYLOAD_TYPE_MP2T {
            TsDatagram::check(p.payload_slice()).map_err(DropReason::BadTs)?;
        }
        Ok(p)
    }

    fn slot(&self, ext: u64) -> Option<&Slot> {
        self.ring
            .get((ext & self.mask) as usize)
            .and_then(|s| s.as_ref())
            .filter(|s| s.ext == ext)
    }

    fn present(&self, ext: u64) -> bool {
        self.slot(ext)
            .is_some_and(|s| !s.emitted && s.datagram.is_some())
    }

    fn earliest_pending(&self) -> Option<Instant> {
        self.arrivals.front().map(|&(t, _)| t)
    }

    /// Notes that `ext` became pending at `now` (kept in order should a
    /// caller's clock step back).
    fn queue_arrival(&mut self, now: Instant, ext: u64) {
        let t = self.arrivals.back().map_or(now, |&(last, _)| last.max(now));
        self.arrivals.push_back((t, ext));
    }

    /// Whether `p` belongs to the followed stream, and its extended number.
    fn in_stream(&self, p: &RtpPacket) -> Option<u64> {
        let s = self.stream.as_ref()?;
        if p.ssrc != s.ssrc {
            return None;
        }
        let ext = extend(self.next_out, p.sequence_number);
        let behind = self.cfg.history as u64;
        let ahead = self.highest.max(self.next_out) + MAX_DROPOUT;
        (ext + behind >= self.next_out && ext <= ahead).then_some(ext)
    }

    fn accept(&mut self, now: Instant, leg: Pipeline, p: RtpPacket) {
        if self.stream.is_none() {
            self.start(now, leg, p.ssrc, p.sequence_number);
        }
        let Some(ext) = self.in_stream(&p) else {
            self.foreign(now, leg, p);
            return;
        };
        let l = &mut self.legs[leg.index()];
        l.diverged = None;
        let previous = l.last_in_stream.replace(now);
        if l.lost {
            l.lost = false;
            let silent_for = previous.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            self.events.push_back(MergeEvent::LegRestored {
                at: now,
                leg,
                silent_for,
            });
        }
        let c = &mut self.counters.legs[leg.index()];
        match l.last_ext {
            Some(last) if ext > last + 1 => c.sequence_gaps += ext - last - 1,
            Some(last) if ext < last => c.out_of_order += 1,
            _ => {}
        }
        if l.last_ext.is_none_or(|last| ext > last) {
            l.last_ext = Some(ext);
        }
        self.last_in_stream = Some(now);
        let body = Body::of(&p);
        self.insert(now, leg, ext, p.into_datagram(), body);
    }

    fn start(&mut self, now: Instant, leg: Pipeline, ssrc: u32, seq: u16) {
        self.stream = Some(Stream {
            ssrc,
            hold_until: now + self.cfg.skew_window,
            emitted_any: false,
        });
        self.next_out = EXT_BASE + u64::from(seq);
        self.highest = self.next_out;
        self.events.push_back(MergeEvent::Started {
            at: now,
            leg,
            ssrc,
            sequence_number: seq,
        });
    }

    fn insert(&mut self, now: Instant, leg: Pipeline, ext: u64, datagram: Bytes, body: Body) {
        let b = bit(leg);
        if let Some(s) = self.stream.as_mut()
            && !s.emitted_any
            && ext < self.next_out
            && self.highest - ext < self.mask / 2
        {
            // Still in the first window: an earlier packet moves the start back.
            self.next_out = ext;
            self.blocked_since = None;
        }
        let idx = (ext & self.mask) as usize;
        if let Some(Some(slot)) = self.ring.get_mut(idx)
            && slot.ext == ext
        {
            let c = &mut self.counters.legs[leg.index()];
            if slot.legs & b != 0 {
                c.duplicates += 1;
            } else if slot.datagram.is_none() {
                c.late += 1;
            } else {
                c.redundant += 1;
                slot.legs |= b;
                let d = now.saturating_duration_since(slot.arrival);
                self.counters.differential_delay = Some(d);
                self.counters.max_differential_delay = self.counters.max_differential_delay.max(d);
                self.counters.later_leg = Some(leg);
            }
            return;
        }
        if ext < self.next_out {
            // Given up on (or never seen) and no longer in the history.
            self.counters.legs[leg.index()].late += 1;
            return;
        }
        // Make room: the buffer cannot hold packets further ahead than its capacity.
        let room = self.mask + 1 - self.cfg.history as u64;
        while ext >= self.next_out + room {
            self.advance(now, true);
        }
        let evicted = self.ring.get_mut(idx).and_then(|s| s.take());
        if let Some(old) = evicted {
            self.retire(old);
        }
        if let Some(s) = self.ring.get_mut(idx) {
            *s = Some(Slot {
                ext,
                datagram: Some(datagram),
                body,
                arrival: now,
                legs: b,
                emitted: false,
            });
        }
        self.queue_arrival(now, ext);
        self.pending += 1;
        self.highest = self.highest.max(ext);
    }

    /// A slot leaves the history: count what each leg missed.
    fn retire(&mut self, old: Slot) {
        if old.emitted && old.legs & FROM_FEC == 0 {
            for leg in Pipeline::BOTH {
                if old.legs & bit(leg) == 0 {
                    self.counters.legs[leg.index()].filled_by_other += 1;
                }
            }
        }
    }

    /// A packet outside the followed stream.
    fn foreign(&mut self, now: Instant, leg: Pipeline, p: RtpPacket) {
        self.counters.legs[leg.index()].foreign += 1;
        let previous_ssrc = self.stream.as_ref().map_or(p.ssrc, |s| s.ssrc);
        let window = self.cfg.skew_window;
        let limit = self.cfg.capacity / 2;
        let l = &mut self.legs[leg.index()];
        let d = match &mut l.diverged {
            Some(d)
                if d.ssrc == p.ssrc
                    && p.sequence_number.wrapping_sub(d.next_seq) < MAX_DROPOUT as u16 =>
            {
                d.consecutive += 1;
                d
            }
            slot => slot.insert(Diverged {
                ssrc: p.ssrc,
                next_seq: p.sequence_number,
                consecutive: 1,
                reported: false,
                held: VecDeque::new(),
            }),
        };
        d.next_seq = p.sequence_number.wrapping_add(1);
        let seq = p.sequence_number;
        d.held.push_back((now, p));
        // Keep what a switch could still need: two windows, bounded in count.
        while d.held.len() > limit
            || d.held
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > 2 * window)
        {
            d.held.pop_front();
        }
        if d.consecutive >= MIN_SEQUENTIAL && !d.reported {
            d.reported = true;
            self.events.push_back(MergeEvent::LegRestarted {
                at: now,
                leg,
                previous_ssrc,
                ssrc: d.ssrc,
                sequence_number: seq,
            });
        }
    }

    fn step(&mut self, now: Instant) {
        // A restart replays held packets with their arrival times, which
        // can make a leg due for loss already: legs are checked after it.
        self.maybe_restart(now);
        self.check_legs(now);
        self.drain(now);
        self.prune_fec();
    }

    fn check_legs(&mut self, now: Instant) {
        for leg in Pipeline::BOTH {
            let l = &mut self.legs[leg.index()];
            if let (false, Some(t)) = (l.lost, l.last_in_stream)
                && now.saturating_duration_since(t) >= self.cfg.leg_lost_after
            {
                l.lost = true;
                self.events.push_back(MergeEvent::LegLost {
                    at: now,
                    leg,
                    last_packet: t,
                });
            }
        }
    }

    /// Follows a restarted stream once the followed one is silent on both legs.
    fn maybe_restart(&mut self, now: Instant) {
        let Some(last) = self.last_in_stream else {
            return;
        };
        if now.saturating_duration_since(last) < self.cfg.skew_window {
            return;
        }
        let candidate = Pipeline::BOTH
            .into_iter()
            .filter_map(|leg| {
                let d = leg.of(&self.legs).diverged.as_ref()?;
                let t = d.held.back()?.0;
                (d.reported).then_some((t, leg))
            })
            .max_by_key(|(t, leg)| (*t, std::cmp::Reverse(leg.index())));
        let Some((_, leg)) = candidate else {
            return;
        };
        while self.pending > 0 {
            self.advance(now, true);
        }
        self.flush_loss_run(now);
        let Some(d) = self.legs[leg.index()].diverged.take() else {
            return;
        };
        let previous_ssrc = self.stream.as_ref().map_or(d.ssrc, |s| s.ssrc);
        let mut held: Vec<(Instant, Pipeline, RtpPacket)> =
            d.held.into_iter().map(|(t, p)| (t, leg, p)).collect();
        let o = other(leg);
        if let Some(od) = self.legs[o.index()]
            .diverged
            .take_if(|od| od.ssrc == d.ssrc)
        {
            held.extend(od.held.into_iter().map(|(t, p)| (t, o, p)));
        }
        held.sort_by_key(|(t, _, _)| *t);
        let Some(first) = held.first().map(|(_, _, p)| p.sequence_number) else {
            return;
        };
        for s in self.ring.iter_mut() {
            if let Some(old) = s.take()
                && old.emitted
                && old.legs & FROM_FEC == 0
            {
                for leg in Pipeline::BOTH {
                    if old.legs & bit(leg) == 0 {
                        self.counters.legs[leg.index()].filled_by_other += 1;
                    }
                }
            }
        }
        self.fec = Default::default();
        self.pending = 0;
        self.blocked_since = None;
        self.arrivals.clear();
        self.continuity.reset();
        for l in self.legs.iter_mut() {
            l.last_ext = None;
        }
        // Extended numbers keep increasing across the restart, on a base
        // whose low 16 bits are zero, so that the new stream's sequence
        // numbers extend to themselves, and at least 2^16 past the old
        // stream, so that an earlier packet moving the new stream's start
        // back in its first window (by less than half the buffer) never
        // lands at or before the last packet out.
        let base = (self.next_out & !0xffff) + (2 << 16);
        self.stream = Some(Stream {
            ssrc: d.ssrc,
            hold_until: held.first().map_or(now, |(t, _, _)| *t) + self.cfg.skew_window,
            emitted_any: false,
        });
        self.next_out = base + u64::from(first);
        self.highest = self.next_out;
        self.events.push_back(MergeEvent::StreamRestarted {
            at: now,
            leg,
            previous_ssrc,
            ssrc: d.ssrc,
            sequence_number: first,
        });
        for (t, l, p) in held {
            if let Some(ext) = self.in_stream(&p) {
                let lg = &mut self.legs[l.index()];
                lg.last_in_stream = Some(t.max(lg.last_in_stream.unwrap_or(t)));
                if lg.last_ext.is_none_or(|last| ext > last) {
                    lg.last_ext = Some(ext);
                }
                self.last_in_stream = Some(now);
                let body = Body::of(&p);
                self.insert(t, l, ext, p.into_datagram(), body);
            }
        }
    }

    /// Emits what is due at `now`.
    fn drain(&mut self, now: Instant) {
        if let Some(s) = &self.stream
            && !s.emitted_any
            && now < s.hold_until
        {
            return;
        }
        while self.pending > 0 {
            if self.present(self.next_out) {
                self.advance(now, false);
                continue;
            }
            let since = match self.blocked_since {
                Some(t) => t,
                None => {
                    let Some(t) = self.earliest_pending() else {
                        break;
                    };
                    self.blocked_since = Some(t);
                    t
                }
            };
            let deadline = since + self.cfg.skew_window;
            if now < deadline {
                break;
            }
            if self.try_fec(now, self.next_out, 1) {
                continue;
            }
            if self.fec_active(now) && now < deadline + self.cfg.fec_wait {
                self.fec_waiting = true;
                break;
            }
            self.advance(now, true);
        }
        if self.pending == 0 {
            self.blocked_since = None;
            self.fec_waiting = false;
        }
        self.flush_loss_run(now);
    }

    /// Moves `next_out` on by one: emits it if present, else (when
    /// `give_up`) reports it lost.
    fn advance(&mut self, now: Instant, give_up: bool) {
        let ext = self.next_out;
        let idx = (ext & self.mask) as usize;
        let mut out = None;
        if let Some(Some(slot)) = self.ring.get_mut(idx)
            && slot.ext == ext
            && !slot.emitted
            && let Some(d) = &slot.datagram
        {
            slot.emitted = true;
            out = Some((d.clone(), slot.legs, slot.body.clone()));
        }
        match out {
            Some((datagram, legs, body)) => {
                self.pending -= 1;
                self.flush_loss_run(now);
                self.emit(now, ext, datagram, legs, body);
            }
            None if give_up => {
                self.counters.output_lost += 1;
                let seq = ext as u16;
                match &mut self.loss_run {
                    Some((_, n)) => *n += 1,
                    None => self.loss_run = Some((seq, 1)),
                }
            }
            None => return,
        }
        self.next_out += 1;
        self.blocked_since = None;
        self.fec_waiting = false;
        while self
            .arrivals
            .front()
            .is_some_and(|&(_, e)| e < self.next_out)
        {
            self.arrivals.pop_front();
        }
        // Release the bytes of the packet leaving the history.
        if let Some(old_ext) = ext.checked_sub(self.cfg.history as u64) {
            let old_idx = (old_ext & self.mask) as usize;
            let old = self
                .ring
                .get_mut(old_idx)
                .and_then(|s| s.take_if(|s| s.ext == old_ext));
            if let Some(old) = old {
                self.retire(old);
            }
        }
    }

    fn emit(&mut self, now: Instant, ext: u64, datagram: Bytes, legs: u8, body: Body) {
        let source = if legs & FROM_FEC != 0 {
            Source::Fec(if legs & FEC_ROW != 0 {
                FecDirection::Row
            } else {
                FecDirection::Column
            })
        } else if legs & bit(Pipeline::P0) != 0 {
            Source::Leg(Pipeline::P0)
        } else {
            Source::Leg(Pipeline::P1)
        };
        let ssrc = self.stream.as_ref().map_or(0, |s| s.ssrc);
        if let Some(s) = self.stream.as_mut() {
            s.emitted_any = true;
        }
        self.counters.output_packets += 1;
        self.counters.output_bytes += datagram.len() as u64;
        if body.ts
            && let Some(ts) = datagram.get(body.range.clone())
        {
            for f in crate::ts::cc_facts(ts) {
                if let Continuity::Error { expected, found } = self.continuity.on_fact(f) {
                    self.counters.continuity_errors += 1;
                    self.events.push_back(MergeEvent::ContinuityError {
                        at: now,
                        pid: f.pid,
                        expected,
                        found,
                    });
                }
            }
        }
        self.last_output_ext = Some(ext);
        self.output.push_back(MergedPacket {
            datagram,
            sequence_number: ext as u16,
            extended_sequence: ext,
            ssrc,
            source,
            payload: body.range,
        });
    }

    fn flush_loss_run(&mut self, now: Instant) {
        if let Some((sequence_number, count)) = self.loss_run.take() {
            self.events.push_back(MergeEvent::Lost {
                at: now,
                sequence_number,
                count,
            });
        }
    }

    /// Asserts the merge's contract; for tests and fuzzers, never the
    /// serving path.
    pub fn check_invariants(&self) {
        let pending = (self.next_out..=self.highest.max(self.next_out))
            .filter(|&e| self.present(e))
            .count();
        assert_eq!(pending, self.pending, "pending count out of step");
        assert!(
            self.last_output_ext.is_none_or(|e| e < self.next_out),
            "output at or past next_out"
        );
        for p in &self.output {
            assert_eq!(p.sequence_number, p.extended_sequence as u16);
        }
        let mut prev = None;
        for p in &self.output {
            if let Some(prev) = prev {
                assert!(p.extended_sequence > prev, "output not in order");
            }
            prev = Some(p.extended_sequence);
        }
        assert!(self.pending <= self.ring.len());
        let scanned = (self.next_out..=self.highest.max(self.next_out))
            .filter_map(|e| self.slot(e).filter(|s| !s.emitted && s.datagram.is_some()))
            .map(|s| s.arrival)
            .min();
        let queued = self
            .arrivals
            .iter()
            .find(|&&(_, e)| e >= self.next_out && self.present(e))
            .map(|&(t, _)| t);
        assert_eq!(queued, scanned, "earliest pending arrival out of step");
        assert!(
            self.arrivals.len() <= 2 * self.ring.len(),
            "arrival queue not trimmed"
        );
        if self.pending == 0 {
            assert!(self.blocked_since.is_none());
        }
    }
}
