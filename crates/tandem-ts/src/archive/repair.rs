//! Copies that make both buckets whole where only one is.

use std::collections::HashSet;

use serde::Serialize;

use super::naming::file_name_of;
use super::report::{FileState, Report, Side};

/// Copy one bucket's whole file over the other bucket's missing or broken one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// The index being repaired.
    pub index: u64,
    /// The bucket holding the whole file.
    pub from: Side,
    /// The bucket that lacks it.
    pub to: Side,
    /// The whole object to copy.
    pub from_key: String,
    /// Where to write it: the destination bucket's prefix followed by
    /// `from_key`'s file name.
    pub to_key: String,
    /// The destination bucket's existing, non-whole object for this index.
    /// Equal to `to_key` when the copy overwrites it; otherwise (the name
    /// modifier differed) the copy leaves it in place for the caller to
    /// delete or keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

impl Report {
    /// One copy for each index that exactly one bucket holds whole, in index
    /// order. Indexes neither bucket holds whole cannot be repaired and are
    /// left out, and so is any copy whose destination key names an object
    /// the report found whole.
    pub fn repairs(&self) -> Vec<Repair> {
        let whole_keys = |side: Side| -> HashSet<&str> {
            self.indexes
                .iter()
                .filter(|i| i.state(side) == FileState::Whole)
                .filter_map(|i| i.key(side))
                .collect()
        };
        let whole = [whole_keys(Side::Primary), whole_keys(Side::Backup)];
        self.indexes
            .iter()
            .filter_map(|row| {
                let from = match (row.primary, row.backup) {
                    (FileState::Whole, FileState::Whole) => return None,
                    (FileState::Whole, _) => Side::Primary,
                    (_, FileState::Whole) => Side::Backup,
                    _ => return None,
                };
                let to = from.other();
                let from_key = row.key(from)?;
                let to_key = format!("{}{}", self.prefix(to), file_name_of(from_key));
                if whole
                    .get(usize::from(to.pipeline()))
                    .is_some_and(|keys| keys.contains(to_key.as_str()))
                {
                    return None;
                }
                let replaces = row
                    .key(to)
                    .filter(|_| row.state(to) != FileState::Missing)
                    .map(str::to_owned);
                Some(Repair {
                    index: row.index,
                    from,
                    to,
                    from_key: from_key.to_owned(),
                    to_key,
                    replaces,
                })
            })
            .collect()
    }
}
