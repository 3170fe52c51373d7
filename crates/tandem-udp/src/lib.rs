//! MPEG-TS over UDP and RTP, two legs at a time: the protocol cores of a
//! SMPTE ST 2022-7 receiver and a plain-UDP loss switch.
//!
//! No sockets, no clock, no files: datagrams come in with their arrival
//! time (`Instant`, monotonic) and leg ([`Pipeline::P0`] or
//! [`Pipeline::P1`]); packets to forward, events and counters come out. The
//! server's flow task owns the sockets (receive, multicast joins, FEC ports
//! at media port + 2 and + 4), the timers ([`Merge::next_deadline`]), the
//! forwarding, recording and metrics.
//!
//! - [`rtp`]: the RTP fixed header (RFC 3550 §5.1), zero-copy over [`bytes::Bytes`].
//! - [`ts`]: transport packets in a datagram, continuity counters, PCR.
//! - [`fec`]: SMPTE ST 2022-1 FEC packets and XOR recovery.
//! - [`merge`]: the ST 2022-7 merge of two RTP legs, with FEC.
//! - [`switch`]: the loss switch for plain UDP legs (no RTP header).
//!
//! [`Pipeline::P0`]: tandem_core::Pipeline::P0
//! [`Pipeline::P1`]: tandem_core::Pipeline::P1

pub mod config;
pub mod fec;
pub mod merge;
pub mod rtp;
pub mod switch;
pub mod ts;

pub use config::ConfigError;
pub use fec::{FecDirection, FecError, FecPacket};
pub use merge::{Merge, MergeConfig, MergeCounters, MergeEvent, MergedPacket, SkewClass};
pub use rtp::{RtpError, RtpPacket};
pub use switch::{LossSwitch, SwitchConfig, SwitchEvent, SwitchReason, SwitchedDatagram};
pub use tandem_core::Pipeline;
pub use ts::{Continuity, ContinuityCounters, TsDatagram, TsError, TsPacket};
