//! Bounds on the engines' settings, checked where settings come in (the
//! CLI, the control API, a configuration file) so that a typo is a clear
//! error rather than a timer far in the future or an `Instant` overflow.

use std::time::Duration;

use crate::merge::MergeConfig;
use crate::switch::SwitchConfig;

/// The longest any engine duration may be: a skew window, FEC wait, leg
/// loss or silence threshold beyond a minute is a mistake (ST 2022-7's
/// longest class is 450 ms).
pub const MAX_DURATION: Duration = Duration::from_secs(60);

/// The most packets a merge may buffer or keep: half the 16-bit RTP
/// sequence space, the most that can be told apart.
pub const MAX_PACKETS: usize = 32768;

/// A setting outside what the engines accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{name} of {value:?} is out of range: it must be more than 0 and at most {max:?}")]
    Duration {
        name: &'static str,
        value: Duration,
        max: Duration,
    },
    #[error("{name} of {value} packets is out of range: it must be 1 to {max}")]
    Packets {
        name: &'static str,
        value: usize,
        max: usize,
    },
    #[error("payload type {0} is out of range: RTP payload types are 0 to 127")]
    PayloadType(u8),
}

fn duration(name: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > MAX_DURATION {
        return Err(ConfigError::Duration {
            name,
            value,
            max: MAX_DURATION,
        });
    }
    Ok(())
}

fn packets(name: &'static str, value: usize) -> Result<(), ConfigError> {
    if value == 0 || value > MAX_PACKETS {
        return Err(ConfigError::Packets {
            name,
            value,
            max: MAX_PACKETS,
        });
    }
    Ok(())
}

impl MergeConfig {
    /// Checks every setting against the engine's bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        duration("skew window", self.skew_window)?;
        duration("FEC wait", self.fec_wait)?;
        duration("leg loss threshold", self.leg_lost_after)?;
        packets("history", self.history)?;
        packets("reorder capacity", self.capacity)?;
        match self.payload_type {
            Some(pt) if pt > 127 => Err(ConfigError::PayloadType(pt)),
            _ => Ok(()),
        }
    }

    /// The same settings brought inside the bounds (for an engine built
    /// from settings that were not validated).
    pub(crate) fn clamped(mut self) -> Self {
        let d = |v: Duration| v.clamp(Duration::from_millis(1), MAX_DURATION);
        self.skew_window = d(self.skew_window);
        self.fec_wait = d(self.fec_wait);
        self.leg_lost_after = d(self.leg_lost_after);
        self.history = self.history.clamp(1, MAX_PACKETS);
        self.capacity = self.capacity.clamp(1, MAX_PACKETS);
        self
    }
}

impl SwitchConfig {
    /// Checks every setting against the engine's bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        duration("silence threshold", self.silence)?;
        duration("continuity error period", self.cc_period)
    }

    /// The same settings brought inside the bounds.
    pub(crate) fn clamped(mut self) -> Self {
        let d = |v: Duration| v.clamp(Duration::from_millis(1), MAX_DURATION);
        self.silence = d(self.silence);
        self.cc_period = d(self.cc_period);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_extremes_are_refused() {
        assert_eq!(MergeConfig::default().validate(), Ok(()));
        assert_eq!(SwitchConfig::default().validate(), Ok(()));
        let huge = MergeConfig {
            skew_window: Duration::MAX,
            ..MergeConfig::default()
        };
        assert!(matches!(
            huge.validate(),
            Err(ConfigError::Duration {
                name: "skew window",
                ..
            })
        ));
        let zero = SwitchConfig {
            silence: Duration::ZERO,
            ..SwitchConfig::default()
        };
        assert!(zero.validate().is_err());
        let big = MergeConfig {
            capacity: usize::MAX,
            ..MergeConfig::default()
        };
        assert!(big.validate().is_err());
    }

    /// An engine built from unchecked extremes neither panics nor spins.
    #[test]
    fn engines_clamp_what_was_not_validated() {
        let t0 = std::time::Instant::now();
        let mut m = crate::Merge::new(MergeConfig {
            skew_window: Duration::MAX,
            fec_wait: Duration::MAX,
            leg_lost_after: Duration::MAX,
            history: usize::MAX,
            capacity: usize::MAX,
            payload_type: None,
        });
        m.on_packet(
            t0,
            crate::Pipeline::P0,
            bytes::Bytes::from_static(&[0x80; 200]),
        );
        m.on_tick(t0 + Duration::from_secs(1));
        // The engine keeps the clamped settings, and whatever it waits for
        // it waits at most those.
        assert_eq!(m.config().skew_window, MAX_DURATION);
        assert!(
            m.next_deadline()
                .is_none_or(|d| d <= t0 + Duration::from_secs(1) + 3 * MAX_DURATION),
            "{:?}",
            m.next_deadline()
        );
        let mut s = crate::LossSwitch::new(SwitchConfig {
            silence: Duration::MAX,
            cc_errors: 0,
            cc_period: Duration::MAX,
        });
        s.on_datagram(
            t0,
            crate::Pipeline::P0,
            bytes::Bytes::from_static(&[0x47; 188]),
        );
        s.on_tick(t0 + Duration::from_secs(1));
    }
}
