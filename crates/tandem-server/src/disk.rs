//! Free space on the data directory's file system, watched so that people
//! hear of a filling disk before uploads start failing with 507.
//!
//! Every `disk_check` (on the injected clock) the watch asks its
//! [`SpaceSource`] (`statvfs` of the data directory; tests inject their
//! own) how much is left. When the space an unprivileged writer may still
//! use falls under the threshold — `disk_low_percent` of the file system
//! or `disk_low_bytes`, whichever is more — it raises `disk_low`; when it
//! is back above the threshold plus a tenth of it (so that a disk hovering
//! at the line does not flap), `disk_ok`. Both go to the log, to
//! `/metrics` and to the server's event bus, subject `{"disk": DATA_DIR}`.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use metrics::{counter, gauge};
use serde::Serialize;
use tandem_store::Space;

use crate::AppState;
use crate::events::{EventBus, Subject};

/// Where free-space figures come from.
pub trait SpaceSource: Send + Sync + fmt::Debug {
    fn space(&self) -> io::Result<Space>;
}

/// `statvfs` of a directory.
#[derive(Debug, Clone)]
pub struct StatVfs(pub PathBuf);

impl SpaceSource for StatVfs {
    fn space(&self) -> io::Result<Space> {
        tandem_store::space(&self.0)
    }
}

/// When the disk counts as low.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub percent: f64,
    pub bytes: u64,
}

impl Threshold {
    /// Bytes under which a file system of `total` bytes is low.
    pub fn bytes_for(&self, total: u64) -> u64 {
        let share = (total as f64 * self.percent / 100.0).max(0.0) as u64;
        share.max(self.bytes)
    }
}

/// A `disk_low` or `disk_ok` event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskEvent {
    /// RFC 3339.
    pub time: String,
    /// `disk_low` or `disk_ok`.
    pub kind: &'static str,
    pub available_bytes: u64,
    pub total_bytes: u64,
    /// Under this, the disk is low.
    pub threshold_bytes: u64,
}

/// The data directory's disk, as last checked.
#[derive(Debug)]
pub struct DiskWatch {
    dir: String,
    source: RwLock<Arc<dyn SpaceSource>>,
    low: AtomicBool,
    last: Mutex<Option<Space>>,
}

impl DiskWatch {
    /// Watches `dir` through `source`.
    pub fn new(dir: String, source: Arc<dyn SpaceSource>) -> Self {
        Self {
            dir,
            source: RwLock::new(source),
            low: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    /// Takes figures from `source` from the next check on (tests).
    pub fn set_source(&self, source: Arc<dyn SpaceSource>) {
        *self
            .source
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = source;
    }

    /// Whether the disk is low, as last checked.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// The figures of the last check.
    pub fn last(&self) -> Option<Space> {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks once; raises and returns `disk_low` or `disk_ok` on a change.
    pub fn check(&self, now: SystemTime, t: Threshold, bus: &EventBus) -> Option<DiskEvent> {
        let source = self
            .source
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let space = match source.space() {
            Ok(s) => s,
            Err(e) => {
                counter!("tandem_disk_check_errors_total").increment(1);
                tracing::warn!(dir = %self.dir, error = %e, "cannot tell the data directory's free space");
                return None;
            }
        };
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(space);
        let threshold = t.bytes_for(space.total);
        gauge!("tandem_disk_available_bytes").set(space.available as f64);
        gauge!("tandem_disk_total_bytes").set(space.total as f64);
        let was_low = self.is_low();
        let clear_at = threshold.saturating_add(threshold / 10);
        let low = if was_low {
            space.available < clear_at
        } else {
            space.available < threshold
        };
        self.low.store(low, Ordering::Relaxed);
        gauge!("tandem_disk_low").set(if low { 1.0 } else { 0.0 });
        if low == was_low {
            return None;
        }
        let kind = if low { "disk_low" } else { "disk_ok" };
        counter!("tandem_disk_events_total", "kind" => kind).increment(1);
        if low {
            tracing::error!(dir = %self.dir, available = space.available, threshold, "disk low: uploads will fail with 507 when it is full");
        } else {
            tracing::info!(dir = %self.dir, available = space.available, "disk ok again");
        }
        let ev = DiskEvent {
            time: crate::util::rfc3339_millis(now),
            kind,
            available_bytes: space.available,
            total_bytes: space.total,
            threshold_bytes: threshold,
        };
        bus.publish(Subject::Disk(self.dir.clone()), &ev);
        Some(ev)
    }
}

/// Checks the disk every `disk_check` until the server stops.
pub async fn run(st: Arc<AppState>) {
    let t = Threshold {
        percent: st.cfg.disk_low_percent,
        bytes: st.cfg.disk_low_bytes,
    };
    loop {
        st.disk.check(st.clock.now(), t, &st.events);
        let next = st.clock.instant() + st.cfg.disk_check;
        st.clock.sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(Mutex<u64>);

    impl SpaceSource for Fixed {
        fn space(&self) -> io::Result<Space> {
            Ok(Space {
                available: *self
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                total: 100_000,
            })
        }
    }

    #[test]
    fn the_threshold_is_the_larger_of_the_share_and_the_bytes() {
        let t = Threshold {
            percent: 5.0,
            bytes: 1000,
        };
        assert_eq!(t.bytes_for(100_000), 5000);
        assert_eq!(t.bytes_for(10_000), 1000);
    }

    #[test]
    fn low_is_raised_once_and_cleared_a_tenth_above_the_threshold() {
        let src = Arc::new(Fixed(Mutex::new(50_000)));
        let w = DiskWatch::new("d".into(), src.clone());
        let bus = EventBus::default();
        let t = Threshold {
            percent: 5.0,
            bytes: 0,
        };
        let now = SystemTime::UNIX_EPOCH;
        let set = |v| {
            *src.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = v
        };
        assert_eq!(w.check(now, t, &bus), None);
        set(4999);
        assert_eq!(w.check(now, t, &bus).map(|e| e.kind), Some("disk_low"));
        assert_eq!(w.check(now, t, &bus), None, "raised once");
        set(5499);
        assert_eq!(w.check(now, t, &bus), None, "not yet a tenth above");
        set(5500);
        assert_eq!(w.check(now, t, &bus).map(|e| e.kind), Some("disk_ok"));
        assert!(!w.is_low());
    }
}
