//! MPEG-TS archive files: is each file whole, and does one of two buckets
//! hold every file of the archive?
//!
//! An encoder (AWS Elemental MediaLive's archive output group, or ffmpeg's
//! segment muxer) writes one transport stream file per rollover interval into
//! two buckets, primary (pipeline 0) and backup (pipeline 1). This crate
//! checks each file's bytes, lines both buckets' files up by the counter in
//! their names, reports which bucket covers each index with a whole file, and
//! plans the copies that would make both buckets complete.
//!
//! No sockets, no clock (a recording's time is passed in), no files: bytes and listings come in, reports and
//! repair plans come out; the caller lists, reads and copies objects.
//!
//! Packet, adaptation field, PES header and PSI table parsing come from the
//! [`mpeg2ts_reader`] crate. The checks built on them (continuity counters,
//! timestamp monotonicity, table presence, duration, the archive rules) are
//! Tandem's own.
//!
//! - [`check`]: one file's bytes → [`TsCheck`]: whole, truncated or corrupt,
//!   with its duration and every problem found, located by packet and byte.
//! - [`archive`]: file names → indexes ([`NamePattern`]), both buckets'
//!   checked listings → a [`Report`] per index, and the [`Repair`] copies.
//! - [`record`]: a live stream → where each archive file of a recording
//!   starts and ends ([`Rollover`]).

pub mod archive;
pub mod check;
pub mod record;

pub use archive::{
    Coverage, FileFacts, FileState, IndexReport, ListedFile, NamePattern, PatternError, Repair,
    Report, Side, SideListing, VerifyError, verify,
};
pub use check::{Clock, Problem, TsCheck, TsChecker, TsState, check_ts};
pub use record::{Rollover, Step};
