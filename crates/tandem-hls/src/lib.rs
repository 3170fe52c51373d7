//! HLS as encoders write it.
//!
//! For now this crate knows how encoders name their files; the playlist
//! model and the merge engine arrive with the failover work.
//!
//! - [`naming`]: segment counters in encoder file names.

pub mod naming;
