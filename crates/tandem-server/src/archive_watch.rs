//! Archive pairs watched while the server runs: every
//! `archive_check_every` (a setting), each new file in either bucket is
//! checked once, and an index that neither bucket holds whole once its time
//! plus `archive_grace` has passed raises an event (in the log, in
//! `GET /api/v1/archives/{id}/events`, on the event bus) and counts in
//! `tandem_archive_indexes_uncovered_total`.
//!
//! [`Watch`] decides, from a verification report, the newest file's time
//! and the clock, which indexes are overdue; it does no IO. [`run`] lists
//! the buckets through the store, checks new files, and feeds it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tandem_core::{ArchiveId, Pipeline};
use tandem_ts::{Coverage, FileFacts, FileState, ListedFile, NamePattern, Report, SideListing};

use crate::AppState;

/// Events kept per archive pair.
const EVENTS_KEPT: usize = 1000;
/// Indexes of the latest check kept per archive pair for the status page.
const GRID_KEPT: usize = 720;

/// An index found whole in neither bucket after its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Uncovered {
    pub index: u64,
    pub primary: FileState,
    pub backup: FileState,
}

/// Which overdue, uncovered indexes have been reported, per archive pair.
#[derive(Debug, Default)]
pub struct Watch {
    reported: BTreeSet<u64>,
}

impl Watch {
    /// The indexes to raise now. An index is due once a later index exists
    /// in either bucket; the last index and the one after it are due once
    /// `rollover + grace` has passed since the newest file arrived (the
    /// encoder has moved on, or stopped). Each index is raised once, and
    /// again only if it was repaired and broke anew.
    pub fn update(
        &mut self,
        report: &Report,
        newest: Option<SystemTime>,
        now: SystemTime,
        rollover: Option<Duration>,
        grace: Duration,
    ) -> Vec<Uncovered> {
        let last = report.indexes.last().map(|r| r.index);
        let quiet = match (newest, rollover.or_else(|| report.rollover())) {
            (Some(t), Some(r)) => now.duration_since(t).unwrap_or_default() > r + grace,
            _ => false,
        };
        let mut out = Vec::new();
        for r in &report.indexes {
            if r.covered_by != Coverage::None {
                self.reported.remove(&r.index);
                continue;
            }
            let due = Some(r.index) != last || quiet;
            if due && self.reported.insert(r.index) {
                out.push(Uncovered {
                    index: r.index,
                    primary: r.primary,
                    backup: r.backup,
                });
            }
        }
        if let Some(next) = last.map(|l| l + 1).filter(|_| quiet)
            && self.reported.insert(next)
        {
            out.push(Uncovered {
                index: next,
                primary: FileState::Missing,
                backup: FileState::Missing,
            });
        }
        out
    }
}

/// One archive event.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveEvent {
    /// RFC 3339.
    pub time: String,
    pub kind: &'static str,
    #[serde(flatten)]
    pub uncovered: Uncovered,
}

/// Per archive pair: what was checked, what was reported.
#[derive(Debug, Default)]
struct PairState {
    watch: Watch,
    /// (bucket, key) → (size, modified) of the checked bytes, and the verdict.
    checked: HashMap<(String, String), ((u64, SystemTime), FileFacts)>,
    events: VecDeque<ArchiveEvent>,
    /// The newest indexes of the latest check.
    grid: Vec<tandem_ts::IndexReport>,
}

/// The watch state of every archive pair.
#[derive(Debug, Default)]
pub struct ArchiveWatches {
    pairs: Mutex<HashMap<String, PairState>>,
}

impl ArchiveWatches {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut PairState) -> T) -> T {
        let mut pairs = self
            .pairs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(pairs.entry(id.to_owned()).or_default())
    }

    /// The events of one pair, oldest first.
    pub fn events(&self, id: &str) -> Vec<ArchiveEvent> {
        self.with(id, |p| p.events.iter().cloned().collect())
    }

    /// How many events the pair has raised (kept ones).
    pub fn event_count(&self, id: &str) -> usize {
        self.with(id, |p| p.events.len())
    }

    /// The newest indexes of the latest check, oldest first: each bucket's
    /// verdict per index.
    pub fn grid(&self, id: &str) -> Vec<tandem_ts::IndexReport> {
        self.with(id, |p| p.grid.clone())
    }

    pub fn forget(&self, id: &str) {
        self.pairs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }
}

/// Checks every archive pair the server hosts at start, then every
/// `archive_check_every` (a pass that takes longer delays the next).
pub async fn run(st: Arc<AppState>) {
    let every = st.cfg.archive_check_every;
    let mut next = st.clock.instant();
    loop {
        st.clock.sleep_until(next).await;
        next = st.clock.instant() + every;
        let specs = match st.db.list_archives() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "archive watch cannot read the archive list");
                continue;
            }
        };
        for spec in specs {
            let Ok(id) = spec.archive_id() else { continue };
            check_pair(&st, &id, spec.rollover_secs.map(Duration::from_secs)).await;
        }
    }
}

/// One pass over one archive pair.
pub async fn check_pair(st: &AppState, id: &ArchiveId, rollover: Option<Duration>) {
    let patterns = NamePattern::default_patterns();
    let mut sides = Vec::new();
    let mut newest: Option<SystemTime> = None;
    for p in Pipeline::BOTH {
        let bucket = id.bucket(p);
        let listed = match st.s3.list_objects(&bucket).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(archive = %id, bucket, error = %e.to_string(), "archive watch cannot list");
                return;
            }
        };
        let mut files = Vec::new();
        for obj in listed {
            let Some(index) = NamePattern::first_match(&patterns, &obj.key) else {
                continue;
            };
            newest = newest.max(Some(obj.modified));
            let stamp = (obj.size, obj.modified);
            let known = st.archive_watches.with(id.as_str(), |ps| {
                ps.checked
                    .get(&(bucket.clone(), obj.key.clone()))
                    .filter(|(s, _)| *s == stamp)
                    .map(|(_, f)| *f)
            });
            let facts = match known {
                Some(f) => f,
                None => {
                    let f = st
                        .s3
                        .check_object(&bucket, &obj.key)
                        .await
                        .map_or(FileFacts::Missing, |c| FileFacts::from(&c));
                    st.archive_watches.with(id.as_str(), |ps| {
                        ps.checked
                            .insert((bucket.clone(), obj.key.clone()), (stamp, f))
                    });
                    f
                }
            };
            files.push(ListedFile {
                key: obj.key,
                index,
                facts,
            });
        }
        sides.push(SideListing {
            prefix: String::new(),
            files,
        });
    }
    let (Some(primary), Some(backup)) = (sides.first(), sides.get(1)) else {
        return;
    };
    let report = match tandem_ts::verify(primary, backup, rollover) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(archive = %id, error = %e, "archive watch cannot verify");
            return;
        }
    };
    let now = st.clock.now();
    let raised = st.archive_watches.with(id.as_str(), |ps| {
        let raised = ps
            .watch
            .update(&report, newest, now, rollover, st.cfg.archive_grace);
        let skip = report.indexes.len().saturating_sub(GRID_KEPT);
        ps.grid = report.indexes.iter().skip(skip).cloned().collect();
        for u in &raised {
            let ev = ArchiveEvent {
                time: crate::util::rfc3339_millis(now),
                kind: "index_uncovered",
                uncovered: u.clone(),
            };
            st.events
                .publish(crate::events::Subject::Archive(id.to_string()), &ev);
            ps.events.push_back(ev);
            while ps.events.len() > EVENTS_KEPT {
                ps.events.pop_front();
            }
        }
        raised
    });
    for u in raised {
        tracing::warn!(
            archive = %id,
            index = u.index,
            primary = %u.primary,
            backup = %u.backup,
            "archive index is whole in neither bucket"
        );
        metrics::counter!("tandem_archive_indexes_uncovered_total", "archive" => id.to_string())
            .increment(1);
    }
    metrics::gauge!("tandem_archive_indexes", "archive" => id.to_string())
        .set(report.indexes.len() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_ts::TsState;

    fn listing(indexes: &[u64]) -> SideListing {
        SideListing {
            prefix: String::new(),
            files: indexes
                .iter()
                .map(|&i| ListedFile {
                    key: format!("a.{i:06}.ts"),
                    index: i,
                    facts: FileFacts::Checked {
                        state: TsState::Whole,
                        duration: Some(Duration::from_secs(10)),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn a_gap_is_raised_once_when_a_later_index_exists_and_stalls_after_grace() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let roll = Some(Duration::from_secs(10));
        let grace = Duration::from_secs(30);
        let mut w = Watch::default();
        // 0, 1 on both; nothing is due.
        let r = tandem_ts::verify(&listing(&[0, 1]), &listing(&[0, 1]), roll).unwrap();
        assert_eq!(w.update(&r, Some(t0), t0, roll, grace), vec![]);
        // 2 lost on both sides, 3 arrives: 2 is due at once, and only once.
        let r = tandem_ts::verify(&listing(&[0, 1, 3]), &listing(&[0, 1, 3]), roll).unwrap();
        let missing = |index| Uncovered {
            index,
            primary: FileState::Missing,
            backup: FileState::Missing,
        };
        assert_eq!(w.update(&r, Some(t0), t0, roll, grace), vec![missing(2)]);
        assert_eq!(w.update(&r, Some(t0), t0, roll, grace), vec![]);
        // 40 s after index 3: within rollover + grace, nothing new.
        let t = t0 + Duration::from_secs(40);
        assert_eq!(w.update(&r, Some(t0), t, roll, grace), vec![]);
        // 41 s: index 4 is overdue in both buckets.
        let t = t0 + Duration::from_secs(41);
        assert_eq!(w.update(&r, Some(t0), t, roll, grace), vec![missing(4)]);
        // Index 2 repaired into one bucket: covered, and a later loss of it
        // would be raised again.
        let r = tandem_ts::verify(&listing(&[0, 1, 2, 3]), &listing(&[0, 1, 3]), roll).unwrap();
        assert_eq!(w.update(&r, Some(t0), t0, roll, grace), vec![]);
        assert!(!w.reported.contains(&2));
    }
}
