//! The loss switch for plain UDP legs: MPEG-TS datagrams without an RTP
//! header, so without sequence numbers to merge by.
//!
//! Sans-IO, like [`crate::merge`]: datagrams come in with `now` (monotonic)
//! and their leg, datagrams to forward come out of
//! [`LossSwitch::poll_output`], events out of [`LossSwitch::poll_event`],
//! and [`LossSwitch::next_deadline`] says when to call
//! [`LossSwitch::on_tick`].
//!
//! Decisions (as TSDuck's `tsswitch` does, and like it not seamless): the
//! output follows the active leg, starting with the first to deliver. It
//! switches to the other leg when the active one has been silent for
//! [`SwitchConfig::silence`], or when its continuity errors within
//! [`SwitchConfig::cc_period`] reach [`SwitchConfig::cc_errors`] while the
//! other leg's stay below, and only if the other leg is delivering. It
//! never switches back on its own: a switch needs a reason, so the output
//! cannot flap.
//!
//! Only whole datagrams that are whole, synchronised 188-byte transport
//! packets are forwarded, so a switch always falls on a transport packet
//! boundary and the output stays a valid transport stream (continuity
//! counters may jump at the switch, as they would at any splice).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_core::Pipeline;

use crate::ts::{Continuity, ContinuityCounters, TsDatagram, TsError};

/// How the switch decides. Defaults follow common IRD settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchConfig {
    /// The active leg is lost after this long without a valid datagram.
    /// 100 ms: a 1 Mbit/s stream sends a datagram about every 10 ms, so
    /// ten in a row are missing; a decoder's buffer (about 500 ms) rides
    /// through the switch.
    pub silence: Duration,
    /// Continuity errors within [`SwitchConfig::cc_period`] that make the
    /// active leg bad. 5 per second: one error is one lost datagram's
    /// worth; five a second is a picture visibly breaking up.
    pub cc_errors: u32,
    pub cc_period: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            silence: Duration::from_millis(100),
            cc_errors: 5,
            cc_period: Duration::from_secs(1),
        }
    }
}

/// Why the output changed legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SwitchReason {
    /// The first leg to deliver.
    Started,
    /// The active leg was silent for the threshold.
    Silence,
    /// The active leg's continuity error rate passed the threshold.
    ContinuityErrors,
}

impl SwitchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Silence => "silence",
            Self::ContinuityErrors => "continuity_errors",
        }
    }
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SwitchEvent {
    Switched {
        at: Instant,
        from: Option<Pipeline>,
        to: Pipeline,
        reason: SwitchReason,
    },
    LegLost {
        at: Instant,
        leg: Pipeline,
        last_datagram: Instant,
    },
    LegRestored {
        at: Instant,
        leg: Pipeline,
        silent_for: Duration,
    },
    ContinuityError {
        at: Instant,
        leg: Pipeline,
        pid: u16,
        expected: u8,
        found: u8,
    },
    /// A datagram that is not whole, synchronised transport packets (counted; log at a limited rate).
    Dropped {
        at: Instant,
        leg: Pipeline,
        error: TsError,
    },
}

/// One datagram to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchedDatagram {
    pub datagram: Bytes,
    pub leg: Pipeline,
}

/// Per-leg counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchLegCounters {
    pub datagrams: u64,
    pub bytes: u64,
    pub ts_packets: u64,
    pub invalid: u64,
    pub continuity_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchCounters {
    pub legs: [SwitchLegCounters; 2],
    pub output_datagrams: u64,
    pub output_bytes: u64,
    pub switches: u64,
}

#[derive(Debug, Default)]
struct Leg {
    last: Option<Instant>,
    lost: bool,
    continuity: ContinuityCounters,
    errors: VecDeque<Instant>,
}

/// The loss switch of one flow. See the module documentation.
#[derive(Debug)]
pub struct LossSwitch {
    cfg: SwitchConfig,
    active: Option<Pipeline>,
    legs: [Leg; 2],
    output: VecDeque<SwitchedDatagram>,
    events: VecDeque<SwitchEvent>,
    counters: SwitchCounters,
}

fn other(leg: Pipeline) -> Pipeline {
    match leg {
        Pipeline::P0 => Pipeline::P1,
        Pipeline::P1 => Pipeline::P0,
    }
}

impl LossSwitch {
    pub fn new(cfg: SwitchConfig) -> Self {
        Self {
            cfg: cfg.clamped(),
            active: None,
            legs: Default::default(),
            output: VecDeque::new(),
            events: VecDeque::new(),
            counters: SwitchCounters::default(),
        }
    }

    /// The leg the output follows.
    pub fn active(&self) -> Option<Pipeline> {
        self.active
    }

    pub fn counters(&self) -> &SwitchCounters {
        &self.counters
    }

    pub fn poll_output(&mut self) -> Option<SwitchedDatagram> {
        self.output.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<SwitchEvent> {
        self.events.pop_front()
    }

    /// A datagram arrived on `leg` at `now`.
    pub fn on_datagram(&mut self, now: Instant, leg: Pipeline, datagram: Bytes) {
        let c = &mut self.counters.legs[leg.index()];
        c.datagrams += 1;
        c.bytes += datagram.len() as u64;
        let ts = match TsDatagram::parse(datagram) {
            Ok(ts) => ts,
            Err(error) => {
                self.counters.legs[leg.index()].invalid += 1;
                self.events.push_back(SwitchEvent::Dropped {
                    at: now,
                    leg,
                    error,
                });
                self.on_tick(now);
                return;
            }
        };
        let l = &mut self.legs[leg.index()];
        let previous = l.last.replace(now);
        if l.lost {
            l.lost = false;
            self.events.push_back(SwitchEvent::LegRestored {
                at: now,
                leg,
                silent_for: previous.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            });
        }
        let c = &mut self.counters.legs[leg.index()];
        c.ts_packets += ts.len() as u64;
        for p in ts.packets().flatten() {
            if let Continuity::Error { expected, found } = l.continuity.on_packet(&p) {
                c.continuity_errors += 1;
                l.errors.push_back(now);
                self.events.push_back(SwitchEvent::ContinuityError {
                    at: now,
                    leg,
                    pid: p.pid(),
                    expected,
                    found,
                });
            }
        }
        if self.active.is_none() {
            self.switch(now, leg, SwitchReason::Started);
        }
        self.on_tick(now);
        if self.active == Some(leg) {
            self.counters.output_datagrams += 1;
            self.counters.output_bytes += ts.bytes().len() as u64;
            self.output.push_back(SwitchedDatagram {
                datagram: ts.bytes().clone(),
                leg,
            });
        }
    }

    /// Time passed. Safe to call early or twice.
    pub fn on_tick(&mut self, now: Instant) {
        for leg in Pipeline::BOTH {
            let silence = self.cfg.silence;
            let period = self.cfg.cc_period;
            let l = &mut self.legs[leg.index()];
            while l
                .errors
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= period)
            {
                l.errors.pop_front();
            }
            if let (false, Some(t)) = (l.lost, l.last)
                && now.saturating_duration_since(t) >= silence
            {
                l.lost = true;
                self.events.push_back(SwitchEvent::LegLost {
                    at: now,
                    leg,
                    last_datagram: t,
                });
            }
        }
        let Some(active) = self.active else {
            return;
        };
        let standby = other(active);
        let a = active.of(&self.legs);
        let s = standby.of(&self.legs);
        if s.lost || s.last.is_none() {
            return;
        }
        let limit = self.cfg.cc_errors as usize;
        if a.lost {
            self.switch(now, standby, SwitchReason::Silence);
        } else if limit > 0 && a.errors.len() >= limit && s.errors.len() < limit {
            self.switch(now, standby, SwitchReason::ContinuityErrors);
        }
    }

    /// When [`LossSwitch::on_tick`] must next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        for l in &self.legs {
            if let (false, Some(t)) = (l.lost, l.last) {
                let t = t + self.cfg.silence;
                d = Some(d.map_or(t, |d| d.min(t)));
            }
            if let Some(t) = l.errors.front() {
                let t = *t + self.cfg.cc_period;
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        }
        d
    }

    fn switch(&mut self, now: Instant, to: Pipeline, reason: SwitchReason) {
        let from = self.active.replace(to);
        if from.is_some() {
            self.counters.switches += 1;
        }
        // A fresh error window for the new leg: its earlier errors chose it no less.
        self.legs[to.index()].errors.clear();
        self.events.push_back(SwitchEvent::Switched {
            at: now,
            from,
            to,
            reason,
        });
    }

    /// Asserts the switch's contract; for tests and fuzzers.
    pub fn check_invariants(&self) {
        for d in &self.output {
            assert!(!d.datagram.is_empty() && d.datagram.len() % 188 == 0);
            assert_eq!(d.datagram.first(), Some(&0x47));
        }
        if let Some(a) = self.active {
            assert!(
                a.of(&self.legs).last.is_some(),
                "active leg never delivered"
            );
        }
    }
}
