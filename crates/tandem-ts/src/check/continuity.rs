//! Continuity counters, per ISO/IEC 13818-1 §2.4.3.3.
//!
//! The counter of a PID goes up by one, modulo 16, on every packet of that
//! PID that carries a payload; packets without a payload repeat it and are not
//! tracked here. A packet may be sent twice in a row (same counter, same
//! payload) once; a third copy is a jump. A packet whose adaptation field sets
//! `discontinuity_indicator` may carry any counter.

use std::collections::HashMap;

/// What one payload-carrying packet did to its PID's counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CcOutcome {
    /// First packet of the PID, the next counter, or an announced discontinuity.
    InSequence,
    /// A repeat of the previous packet, which MPEG allows once; its content
    /// must not be counted twice.
    Duplicate,
    /// An unannounced jump: packets were lost or the file was spliced.
    Jump {
        /// The counter of the previous payload packet of this PID.
        previous: u8,
        /// The counter that should have come next.
        expected: u8,
    },
}

#[derive(Debug)]
struct PidCounter {
    last: u8,
    duplicate_seen: bool,
    last_payload: Vec<u8>,
}

/// Counters of every PID seen so far.
#[derive(Debug, Default)]
pub(super) struct ContinuityTracker {
    pids: HashMap<u16, PidCounter>,
}

impl ContinuityTracker {
    /// Records a packet that carries a payload (`adaptation_field_control`
    /// `01` or `11`). `counter` is the 4-bit `continuity_counter`; `payload`
    /// is the packet's payload bytes (empty if malformed).
    pub(super) fn on_payload_packet(
        &mut self,
        pid: u16,
        counter: u8,
        payload: &[u8],
        discontinuity: bool,
    ) -> CcOutcome {
        let Some(state) = self.pids.get_mut(&pid) else {
            self.pids.insert(
                pid,
                PidCounter {
                    last: counter,
                    duplicate_seen: false,
                    last_payload: payload.to_vec(),
                },
            );
            return CcOutcome::InSequence;
        };
        let expected = state.last.wrapping_add(1) & 0x0f;
        let outcome = if discontinuity || counter == expected {
            CcOutcome::InSequence
        } else if counter == state.last && !state.duplicate_seen && payload == state.last_payload {
            state.duplicate_seen = true;
            return CcOutcome::Duplicate;
        } else {
            CcOutcome::Jump {
                previous: state.last,
                expected,
            }
        };
        // After a jump, follow the new counter so one loss is one problem.
        state.last = counter;
        state.duplicate_seen = false;
        state.last_payload.clear();
        state.last_payload.extend_from_slice(payload);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::{CcOutcome, ContinuityTracker};

    #[test]
    fn counter_wraps_from_fifteen_to_zero() {
        let mut t = ContinuityTracker::default();
        assert_eq!(
            t.on_payload_packet(1, 15, b"a", false),
            CcOutcome::InSequence
        );
        assert_eq!(
            t.on_payload_packet(1, 0, b"b", false),
            CcOutcome::InSequence
        );
    }

    #[test]
    fn one_duplicate_is_allowed_but_not_two() {
        let mut t = ContinuityTracker::default();
        assert_eq!(
            t.on_payload_packet(1, 3, b"a", false),
            CcOutcome::InSequence
        );
        assert_eq!(t.on_payload_packet(1, 3, b"a", false), CcOutcome::Duplicate);
        assert_eq!(
            t.on_payload_packet(1, 3, b"a", false),
            CcOutcome::Jump {
                previous: 3,
                expected: 4
            }
        );
    }

    #[test]
    fn same_counter_with_different_payload_is_a_jump() {
        let mut t = ContinuityTracker::default();
        t.on_payload_packet(1, 3, b"a", false);
        assert_eq!(
            t.on_payload_packet(1, 3, b"b", false),
            CcOutcome::Jump {
                previous: 3,
                expected: 4
            }
        );
    }

    #[test]
    fn discontinuity_indicator_excuses_a_jump() {
        let mut t = ContinuityTracker::default();
        t.on_payload_packet(1, 3, b"a", false);
        assert_eq!(t.on_payload_packet(1, 9, b"b", true), CcOutcome::InSequence);
        assert_eq!(
            t.on_payload_packet(1, 10, b"c", false),
            CcOutcome::InSequence
        );
    }

    #[test]
    fn pids_count_independently() {
        let mut t = ContinuityTracker::default();
        t.on_payload_packet(1, 3, b"a", false);
        t.on_payload_packet(2, 7, b"a", false);
        assert_eq!(
            t.on_payload_packet(1, 4, b"b", false),
            CcOutcome::InSequence
        );
        assert_eq!(
            t.on_payload_packet(2, 8, b"b", false),
            CcOutcome::InSequence
        );
    }
}
