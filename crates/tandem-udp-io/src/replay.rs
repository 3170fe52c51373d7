//! Closing the gap of a udp-switch flow's switch when both legs carry the
//! same bytes.
//!
//! The loss switch (`tandem_udp::switch`) declares the active leg silent
//! after its threshold (100 ms) and only then follows the other leg: what
//! the other leg delivered during those 100 ms would be missing from the
//! output, and a decoder shows it. When the two legs are copies of one
//! stream (one encoder sent to two paths), that gap can be filled: each
//! leg's recent datagrams are kept, and at the switch the new leg's
//! datagrams after the last one forwarded (found by its bytes) are
//! forwarded first. When the legs are not byte-identical (two encoders'
//! pipelines) the last forwarded datagram is not found and nothing is
//! replayed: the switch is as `tsswitch`'s, not seamless.
//!
//! Sans-IO: datagrams in, datagrams to forward out.

use std::collections::VecDeque;

use bytes::Bytes;
use tandem_core::Pipeline;

/// Datagrams kept per leg: 1024, 140 ms of a 80 Mbit/s stream, more than
/// the 100 ms switch threshold of anything slower.
pub const KEPT: usize = 1024;

/// The recent datagrams of both legs and the last one forwarded.
#[derive(Debug)]
pub struct SwitchReplay {
    recent: [VecDeque<Bytes>; 2],
    last_out: Option<Bytes>,
}

impl Default for SwitchReplay {
    fn default() -> Self {
        Self {
            recent: [VecDeque::with_capacity(KEPT), VecDeque::with_capacity(KEPT)],
            last_out: None,
        }
    }
}

impl SwitchReplay {
    /// A valid datagram arrived on `leg` (after the switch handled it).
    pub fn on_datagram(&mut self, leg: Pipeline, datagram: &Bytes) {
        let r = &mut self.recent[leg.index()];
        if r.len() == KEPT {
            r.pop_front();
        }
        r.push_back(datagram.clone());
    }

    /// A datagram was forwarded.
    pub fn on_output(&mut self, datagram: &Bytes) {
        self.last_out = Some(datagram.clone());
    }

    /// The output now follows `to`: the datagrams of `to` after the last
    /// forwarded one, oldest first (empty if it is not among them).
    pub fn on_switch(&mut self, to: Pipeline) -> impl Iterator<Item = Bytes> + '_ {
        let r = &self.recent[to.index()];
        let start = self
            .last_out
            .as_ref()
            .and_then(|last| r.iter().rposition(|d| d == last))
            .map_or(r.len(), |i| i + 1);
        r.range(start..).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Bytes {
        Bytes::from(vec![0x47, n, 0, 0x10])
    }

    #[test]
    fn the_new_leg_resumes_after_the_last_forwarded_datagram() {
        let mut r = SwitchReplay::default();
        for n in 0..10 {
            r.on_datagram(Pipeline::P1, &d(n));
        }
        for n in 0..4 {
            r.on_datagram(Pipeline::P0, &d(n));
            r.on_output(&d(n));
        }
        let replay: Vec<Bytes> = r.on_switch(Pipeline::P1).collect();
        assert_eq!(replay, (4..10).map(d).collect::<Vec<_>>());
    }

    #[test]
    fn legs_that_are_not_copies_replay_nothing() {
        let mut r = SwitchReplay::default();
        for n in 0..10 {
            r.on_datagram(Pipeline::P1, &d(n + 100));
        }
        r.on_output(&d(3));
        assert_eq!(r.on_switch(Pipeline::P1).count(), 0);
    }
}
