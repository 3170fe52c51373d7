//! Time, injected: wall-clock time for what users read (nonces, event
//! times, "seconds since"), monotonic time and timers for the output's
//! engines. Tests drive a [`ManualClock`] so that loss thresholds, grace
//! periods and hold-downs are checked at their exact instants, not slept
//! through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

/// A future a clock resolves.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where time comes from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Wall-clock time.
    fn now(&self) -> SystemTime;
    /// Monotonic time: what the output's engines and timers run on.
    fn instant(&self) -> Instant {
        Instant::now()
    }
    /// Resolves once [`instant`](Self::instant) reaches `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (tests). Both its wall-clock and
/// its monotonic time start at the real ones and advance together.
pub struct ManualClock {
    wall: Mutex<SystemTime>,
    mono: watch::Sender<Instant>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            wall: Mutex::new(SystemTime::now()),
            mono: watch::Sender::new(Instant::now()),
        }
    }

    /// Moves time forward by `d`, waking every timer that is now due.
    pub fn advance(&self, d: Duration) {
        let mut wall = self
            .wall
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *wall += d;
        self.mono.send_modify(|t| *t += d);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("instant", &*self.mono.borrow())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .wall
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn instant(&self) -> Instant {
        *self.mono.borrow()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let mut rx = self.mono.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if it is gone, time
            // never moves again and the timer never fires.
            if rx.wait_for(|t| *t >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_manual_timer_fires_exactly_when_time_reaches_it() {
        let c = ManualClock::new();
        let t0 = c.instant();
        let mut sleep = c.sleep_until(t0 + Duration::from_millis(1500));
        c.advance(Duration::from_millis(1499));
        assert!(sleep.as_mut().now_or_never().is_none());
        c.advance(Duration::from_millis(1));
        assert!(sleep.as_mut().now_or_never().is_some());
        assert_eq!(c.instant() - t0, Duration::from_millis(1500));
    }
}
