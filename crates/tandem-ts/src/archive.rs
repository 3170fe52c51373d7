//! Both buckets of an archive, file by file: which one holds each file whole,
//! and what to copy so that both do.
//!
//! The caller lists both buckets, keeps the keys a [`NamePattern`] gives an
//! index, checks each object with [`crate::check_ts`], and hands the result
//! to [`verify`] as one [`SideListing`] per bucket. The [`Report`] has one
//! row per index from the lowest to the highest seen on either side, so an
//! index neither bucket has shows up as a gap; [`Report::repairs`] plans the
//! copies.
//!
//! A file can be cut exactly at a packet boundary and still parse as whole,
//! so a structurally whole file must also last about one rollover interval.
//! The last index is exempt: the archive may have stopped part-way through
//! it.

mod naming;
mod repair;
mod report;

pub use naming::{NamePattern, PatternError, file_name_of};
pub use repair::Repair;
pub use report::{
    Coverage, DURATION_TOLERANCE_PERCENT, FileFacts, FileState, IndexReport, ListedFile,
    MAX_INDEX_SPAN, Report, Side, SideListing, VerifyError, verify,
};
