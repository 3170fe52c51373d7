//! Refused requests, logged at a bounded rate (sans-IO: time is passed
//! in). Per kind of refusal, the first one of each interval is written and
//! the others are counted; the next line written carries how many were
//! left out since the previous one. A password guesser at full speed
//! therefore writes one line per interval instead of one per guess, and
//! the metrics still count every refusal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Slot {
    last: Instant,
    suppressed: u64,
}

/// Log lines allowed per key and interval.
#[derive(Debug)]
pub struct LogBudget {
    interval: Duration,
    slots: HashMap<String, Slot>,
}

/// Keys are kinds of refusal, not addresses: bounded by the code. This
/// caps them anyway.
const MAX_KEYS: usize = 1024;

impl LogBudget {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            slots: HashMap::new(),
        }
    }

    /// `Some(n)`: write this line, noting `n` refusals of its kind that
    /// were left out since the previous line. `None`: only count it.
    pub fn allow(&mut self, key: &str, now: Instant) -> Option<u64> {
        if self.interval.is_zero() {
            return Some(0);
        }
        match self.slots.get_mut(key) {
            Some(s) if now.saturating_duration_since(s.last) < self.interval => {
                s.suppressed += 1;
                None
            }
            Some(s) => {
                let n = s.suppressed;
                *s = Slot {
                    last: now,
                    suppressed: 0,
                };
                Some(n)
            }
            None => {
                if self.slots.len() >= MAX_KEYS {
                    self.slots.clear();
                }
                self.slots.insert(
                    key.to_owned(),
                    Slot {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_key_with_the_count_left_out() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(Duration::from_secs(10));
        assert_eq!(b.allow("auth", t0), Some(0));
        for i in 0..999 {
            assert_eq!(b.allow("auth", t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(b.allow("timeout", t0), Some(0));
        assert_eq!(b.allow("auth", t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(b.allow("auth", t0 + Duration::from_secs(11)), None);
    }
}
