//! One clock's values in file order: are they monotonic, and how much time do
//! they span?
//!
//! PTS and DTS are 33-bit counts of a 90 kHz clock and PCR a 27 MHz count
//! that wraps with its 33-bit base (ISO/IEC 13818-1 §2.4.2.2, §2.4.3.7), so a
//! step is taken modulo the clock's range: a step of less than half the range
//! is forward (the 33-bit wrap after ~26.5 h is a small forward step), more is
//! backward. After a `discontinuity_indicator` the next value starts a new
//! run and is neither a step nor counted in the span.

use std::time::Duration;

/// 2^33: the range of PTS, DTS and the PCR base.
const TIMESTAMP_RANGE: u64 = 1 << 33;

/// The PCR extension counts 300 ticks of 27 MHz per 90 kHz base tick.
const PCR_EXTENSION_TICKS: u64 = 300;

/// How a value moved its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The first value, or the first after a discontinuity.
    Start,
    /// Same or later than the previous value (modulo wrap).
    Forward,
    /// Earlier than the previous value, with no discontinuity announced.
    Backward {
        /// The previous value, in the clock's ticks.
        previous: u64,
    },
}

/// One clock's values on one PID.
#[derive(Debug)]
pub(super) struct Timeline {
    range: u64,
    ticks_per_second: u64,
    previous: Option<u64>,
    restart: bool,
    elapsed: u64,
}

impl Timeline {
    /// PTS or DTS values (90 kHz, 33 bits).
    pub(super) fn pes() -> Self {
        Self::new(TIMESTAMP_RANGE, 90_000)
    }

    /// PCR values as `base * 300 + extension` (27 MHz).
    pub(super) fn pcr() -> Self {
        Self::new(TIMESTAMP_RANGE * PCR_EXTENSION_TICKS, 27_000_000)
    }

    fn new(range: u64, ticks_per_second: u64) -> Self {
        Self {
            range,
            ticks_per_second,
            previous: None,
            restart: false,
            elapsed: 0,
        }
    }

    /// The next value accepted is the start of a new run.
    pub(super) fn on_discontinuity(&mut self) {
        self.restart = true;
    }

    /// Records the next value in file order.
    pub(super) fn on_value(&mut self, value: u64) -> Step {
        // Out-of-range extensions (300..=511) can push a PCR past its range.
        let value = value % self.range;
        let restart = std::mem::take(&mut self.restart);
        let previous = self.previous.replace(value);
        let Some(previous) = previous.filter(|_| !restart) else {
            return Step::Start;
        };
        let step = (value + self.range - previous) % self.range;
        if step > self.range / 2 {
            return Step::Backward { previous };
        }
        self.elapsed = self.elapsed.saturating_add(step);
        Step::Forward
    }

    /// Time from the first to the last value, summed over runs.
    pub(super) fn span(&self) -> Duration {
        self.to_duration(self.elapsed)
    }

    /// Whether any value was recorded.
    pub(super) fn has_values(&self) -> bool {
        self.previous.is_some()
    }

    fn to_duration(&self, ticks: u64) -> Duration {
        let rate = self.ticks_per_second.max(1);
        let secs = ticks / rate;
        // `ticks % rate` < 27e6, so the product fits in u64 and the quotient in u32.
        let nanos = (ticks % rate) * 1_000_000_000 / rate;
        Duration::new(secs, u32::try_from(nanos).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::{Step, TIMESTAMP_RANGE, Timeline};
    use std::time::Duration;

    #[test]
    fn pts_wrapping_past_two_to_the_33_is_a_forward_step() {
        let mut t = Timeline::pes();
        assert_eq!(t.on_value(TIMESTAMP_RANGE - 1800), Step::Start);
        assert_eq!(t.on_value(1800), Step::Forward);
        assert_eq!(t.span(), Duration::from_millis(40));
    }

    #[test]
    fn a_step_back_is_backward_and_not_counted() {
        let mut t = Timeline::pes();
        t.on_value(90_000);
        assert_eq!(t.on_value(89_999), Step::Backward { previous: 90_000 });
        assert_eq!(t.span(), Duration::ZERO);
    }

    #[test]
    fn discontinuity_starts_a_new_run_without_a_step() {
        let mut t = Timeline::pes();
        t.on_value(90_000);
        t.on_value(180_000);
        t.on_discontinuity();
        assert_eq!(t.on_value(0), Step::Start);
        assert_eq!(t.on_value(45_000), Step::Forward);
        assert_eq!(t.span(), Duration::from_millis(1500));
    }

    #[test]
    fn pcr_counts_27_mhz_ticks() {
        let mut t = Timeline::pcr();
        t.on_value(0);
        t.on_value(27_000_000);
        assert_eq!(t.span(), Duration::from_secs(1));
    }
}
