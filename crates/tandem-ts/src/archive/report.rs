//! The verification report: one row per index, both buckets' verdicts, and
//! which bucket covers it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::{TsCheck, TsState};

/// How far a file's duration may stray from the rollover interval, in
/// percent. MediaLive rolls over at the first keyframe after the interval,
/// so a file runs up to one GOP long or short; 10 % allows a 2 s GOP at a
/// 20 s interval and still catches a file cut anywhere in its first 90 %.
pub const DURATION_TOLERANCE_PERCENT: u64 = 10;

/// Most indexes one report may span. MediaLive's counter has six digits,
/// so a real archive spans fewer; a wider span means a stray key matched a
/// pattern, and a report over it would hold millions of empty rows.
pub const MAX_INDEX_SPAN: u64 = 1_000_000;

/// One of the two buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The bucket pipeline 0 writes.
    Primary,
    /// The bucket pipeline 1 writes.
    Backup,
}

impl Side {
    /// The encoder pipeline that writes this bucket: 0 or 1.
    pub fn pipeline(self) -> u8 {
        match self {
            Side::Primary => 0,
            Side::Backup => 1,
        }
    }

    /// The other bucket.
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Backup,
            Side::Backup => Side::Primary,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Primary => "primary",
            Side::Backup => "backup",
        })
    }
}

/// What the caller knows about one listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFacts {
    /// The object is expected but absent (a HEAD or GET found nothing).
    Missing,
    /// The object was read and checked.
    Checked {
        /// [`TsCheck::state`].
        state: TsState,
        /// [`TsCheck::duration`].
        duration: Option<Duration>,
    },
}

impl From<&TsCheck> for FileFacts {
    fn from(check: &TsCheck) -> Self {
        FileFacts::Checked {
            state: check.state,
            duration: check.duration,
        }
    }
}

/// One object of a bucket listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// The object key, folders included.
    pub key: String,
    /// The index its name gives, e.g. by [`crate::NamePattern::index_of`].
    pub index: u64,
    /// What its check found.
    pub facts: FileFacts,
}

impl From<(String, u64, FileFacts)> for ListedFile {
    fn from((key, index, facts): (String, u64, FileFacts)) -> Self {
        Self { key, index, facts }
    }
}

/// One bucket's archive files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SideListing {
    /// Where copies into this bucket go: a repair's destination key is this
    /// prefix followed by the source key's file name, joined as is, so end
    /// it with `/` unless names should run on from it (`archive/curling/`,
    /// not `archive/curling`).
    pub prefix: String,
    /// The listed objects, in any order; an index may appear more than once
    /// (the best verdict counts).
    pub files: Vec<ListedFile>,
}

/// One bucket's verdict on one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Structurally whole and, unless it is the last index, about one
    /// rollover interval long.
    Whole,
    /// No object for this index.
    Missing,
    /// Cut off mid-packet, empty, or too short for its interval.
    Truncated,
    /// Damaged packets, tables, counters or clocks, or too long for its
    /// interval, or no clock at all to measure it by.
    Corrupt,
}

impl FileState {
    fn rank(self) -> u8 {
        match self {
            FileState::Whole => 0,
            FileState::Truncated => 1,
            FileState::Corrupt => 2,
            FileState::Missing => 3,
        }
    }
}

impl fmt::Display for FileState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileState::Whole => "whole",
            FileState::Missing => "missing",
            FileState::Truncated => "truncated",
            FileState::Corrupt => "corrupt",
        })
    }
}

/// Which bucket holds an index whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Only the primary bucket.
    Primary,
    /// Only the backup bucket.
    Backup,
    /// Both buckets.
    Both,
    /// Neither bucket: this part of the archive is lost.
    None,
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coverage::Primary => "primary",
            Coverage::Backup => "backup",
            Coverage::Both => "both",
            Coverage::None => "none",
        })
    }
}

/// One index of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// The counter in the file names.
    pub index: u64,
    /// The primary bucket's verdict.
    pub primary: FileState,
    /// The backup bucket's verdict.
    pub backup: FileState,
    /// Which bucket holds the index whole.
    pub covered_by: Coverage,
    /// The primary object the verdict is about, if one was listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    /// The backup object the verdict is about, if one was listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<String>,
}

impl IndexReport {
    /// One side's verdict.
    pub fn state(&self, side: Side) -> FileState {
        match side {
            Side::Primary => self.primary,
            Side::Backup => self.backup,
        }
    }

    /// One side's key.
    pub fn key(&self, side: Side) -> Option<&str> {
        match side {
            Side::Primary => self.primary_key.as_deref(),
            Side::Backup => self.backup_key.as_deref(),
        }
    }
}

/// The verdict on a whole archive.
///
/// Serializes as `{"complete":false,"indexes":[{"index":3,"primary":"truncated",
/// "backup":"whole","covered_by":"backup","primary_key":"…","backup_key":"…"},…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every index from the first to the last is held whole by at least one
    /// bucket, and there is at least one index.
    pub complete: bool,
    /// One row per index, lowest first, gaps included.
    pub indexes: Vec<IndexReport>,
    #[serde(skip)]
    pub(super) rollover: Option<Duration>,
    #[serde(skip)]
    pub(super) primary_prefix: String,
    #[serde(skip)]
    pub(super) backup_prefix: String,
}

/// [`verify`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The indexes span more than [`MAX_INDEX_SPAN`].
    #[error(
        "indexes run from {first} to {last}, more than {max} apart; \
         does a stray key match the name pattern?"
    )]
    IndexSpanTooLarge {
        /// Lowest index listed.
        first: u64,
        /// Highest index listed.
        last: u64,
        /// [`MAX_INDEX_SPAN`].
        max: u64,
    },
}

/// Lines up both buckets' files by index and judges each.
///
/// `rollover` is the archive's rollover interval. When `None` it is inferred
/// as the median duration of the structurally whole files of both buckets,
/// the last index left out; if there are none, durations are not judged.
///
/// Per index and side: the best of the listed files counts (whole, then
/// truncated, corrupt, missing; ties go to the lowest key). A structurally
/// whole file other than at the last index is truncated if shorter than the
/// interval by more than [`DURATION_TOLERANCE_PERCENT`], corrupt if longer by
/// more, and corrupt if it has no duration at all.
pub fn verify(
    primary: &SideListing,
    backup: &SideListing,
    rollover: Option<Duration>,
) -> Result<Report, VerifyError> {
    let all = || primary.files.iter().chain(&backup.files);
    let (Some(first), Some(last)) = (all().map(|f| f.index).min(), all().map(|f| f.index).max())
    else {
        return Ok(Report {
            complete: false,
            indexes: Vec::new(),
            rollover,
            primary_prefix: primary.prefix.clone(),
            backup_prefix: backup.prefix.clone(),
        });
    };
    if last - first >= MAX_INDEX_SPAN {
        return Err(VerifyError::IndexSpanTooLarge {
            first,
            last,
            max: MAX_INDEX_SPAN,
        });
    }
    let rollover = rollover.or_else(|| {
        median(
            all()
                .filter(|f| f.index != last)
                .filter_map(|f| match f.facts {
                    FileFacts::Checked {
                        state: TsState::Whole,
                        duration,
                    } => duration,
                    _ => None,
                })
                .collect(),
        )
    });
    let judge = |f: &ListedFile| judge_file(f.facts, f.index == last, rollover);
    let best_primary = best_per_index(&primary.files, judge);
    let best_backup = best_per_index(&backup.files, judge);
    let indexes: Vec<IndexReport> = (first..=last)
        .map(|index| {
            let (primary, primary_key) = pick(&best_primary, index);
            let (backup, backup_key) = pick(&best_backup, index);
            let covered_by = match (primary == FileState::Whole, backup == FileState::Whole) {
                (true, true) => Coverage::Both,
                (true, false) => Coverage::Primary,
                (false, true) => Coverage::Backup,
                (false, false) => Coverage::None,
            };
            IndexReport {
                index,
                primary,
                backup,
                covered_by,
                primary_key,
                backup_key,
            }
        })
        .collect();
    Ok(Report {
        complete: indexes.iter().all(|i| i.covered_by != Coverage::None),
        indexes,
        rollover,
        primary_prefix: primary.prefix.clone(),
        backup_prefix: backup.prefix.clone(),
    })
}

fn pick(best: &BTreeMap<u64, (FileState, &str)>, index: u64) -> (FileState, Option<String>) {
    match best.get(&index) {
        Some((state, key)) => (*state, Some((*key).to_owned())),
        None => (FileState::Missing, None),
    }
}

fn best_per_index<'a>(
    files: &'a [ListedFile],
    judge: impl Fn(&ListedFile) -> FileState,
) -> BTreeMap<u64, (FileState, &'a str)> {
    let mut best: BTreeMap<u64, (FileState, &'a str)> = BTreeMap::new();
    for file in files {
        let candidate = (judge(file), file.key.as_str());
        best.entry(file.index)
            .and_modify(|current| {
                if (candidate.0.rank(), candidate.1) < (current.0.rank(), current.1) {
                    *current = candidate;
                }
            })
            .or_insert(candidate);
    }
    best
}

fn judge_file(facts: FileFacts, is_last: bool, rollover: Option<Duration>) -> FileState {
    let duration = match facts {
        FileFacts::Missing => return FileState::Missing,
        FileFacts::Checked {
            state: TsState::Truncated,
            ..
        } => return FileState::Truncated,
        FileFacts::Checked {
            state: TsState::Corrupt,
            ..
        } => return FileState::Corrupt,
        FileFacts::Checked {
            state: TsState::Whole,
            duration,
        } => duration,
    };
    let Some(rollover) = rollover.filter(|_| !is_last) else {
        return FileState::Whole;
    };
    let Some(duration) = duration else {
        return FileState::Corrupt;
    };
    let (actual, interval) = (duration.as_nanos(), rollover.as_nanos());
    let tolerance = u128::from(DURATION_TOLERANCE_PERCENT);
    if actual * 100 < interval * (100 - tolerance) {
        FileState::Truncated
    } else if actual * 100 > interval * (100 + tolerance) {
        FileState::Corrupt
    } else {
        FileState::Whole
    }
}

/// The median; for an even count, halfway between the middle two.
fn median(mut durations: Vec<Duration>) -> Option<Duration> {
    durations.sort_unstable();
    let upper = *durations.get(durations.len() / 2)?;
    if durations.len() % 2 == 1 {
        return Some(upper);
    }
    let lower = *durations.get(durations.len() / 2 - 1)?;
    Some(lower + (upper - lower) / 2)
}

impl Report {
    /// The rollover interval durations were judged against: the one given to
    /// [`verify`], or the one it inferred; `None` if neither.
    pub fn rollover(&self) -> Option<Duration> {
        self.rollover
    }

    /// Where copies into `side` go (see [`SideListing::prefix`]).
    pub fn prefix(&self, side: Side) -> &str {
        match side {
            Side::Primary => &self.primary_prefix,
            Side::Backup => &self.backup_prefix,
        }
    }

    /// A plain-text table for people: index, primary, backup, covered by.
    ///
    /// ```text
    /// index  primary    backup     covered by
    /// 3      truncated  whole      backup
    /// ```
    pub fn table(&self) -> String {
        const HEADER: [&str; 4] = ["index", "primary", "backup", "covered by"];
        let rows: Vec<[String; 4]> = self
            .indexes
            .iter()
            .map(|i| {
                [
                    i.index.to_string(),
                    i.primary.to_string(),
                    i.backup.to_string(),
                    i.covered_by.to_string(),
                ]
            })
            .collect();
        let width = |col: usize| {
            rows.iter()
                .filter_map(|r| r.get(col))
                .map(String::len)
                .chain(HEADER.get(col).map(|h| h.len()))
                .max()
                .unwrap_or_default()
        };
        let widths = [width(0), width(1), width(2)];
        let mut out = String::new();
        let header = HEADER.map(str::to_owned);
        for row in std::iter::once(&header).chain(&rows) {
            let [index, primary, backup, covered_by] = row;
            let [w0, w1, w2] = widths;
            out.push_str(&format!(
                "{index:<w0$}  {primary:<w1$}  {backup:<w2$}  {covered_by}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
