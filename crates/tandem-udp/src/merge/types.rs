//! The 2022-7 merge's configuration, events and counters.

use std::time::{Duration, Instant};

use tandem_core::Pipeline;

use crate::fec::{FecDirection, FecError};
use crate::rtp::{PAYLOAD_TYPE_MP2T, RtpError};
use crate::ts::TsError;

/// The skew classes of SMPTE ST 2022-7 §6 (maximum differential delay
/// between the two paths a receiver must absorb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkewClass {
    /// 10 ms.
    A,
    /// 50 ms.
    B,
    /// 150 ms.
    C,
    /// 450 ms.
    D,
}

impl SkewClass {
    pub fn window(self) -> Duration {
        Duration::from_millis(match self {
            Self::A => 10,
            Self::B => 50,
            Self::C => 150,
            Self::D => 450,
        })
    }
}

/// How a flow merges its two legs. Defaults suit MediaLive and ffmpeg RTP
/// outputs on a network with ordinary jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConfig {
    /// How long a missing packet is waited for once a later one arrived.
    /// 50 ms: ST 2022-7 class B, which covers two paths through different
    /// routers in one region; classes C and D are for long-haul paths.
    pub skew_window: Duration,
    /// Only RTP packets of this payload type are media; others are counted
    /// and dropped. 33 (MP2T): what ffmpeg and MediaLive send. `None`
    /// accepts any.
    pub payload_type: Option<u8>,
    /// Extra time a packet missing on both legs is waited for while FEC may
    /// still rebuild it (only while FEC packets are arriving). 250 ms: a
    /// 10×10 matrix of a 10 Mbit/s stream spans about 100 ms, and a column
    /// FEC packet comes after the last packet of its column.
    pub fec_wait: Duration,
    /// A leg that delivered nothing of the followed stream for this long is
    /// lost. 100 ms: twice the default window; a leg that is merely late
    /// still delivers packets.
    pub leg_lost_after: Duration,
    /// Packets kept after output so that FEC can use them and late copies
    /// are recognised: 1024 ≥ the largest 2022-1 matrix (20 × 20) plus the
    /// packets a column FEC packet may lag.
    pub history: usize,
    /// Capacity of the reorder buffer in packets (rounded up to a power of
    /// two): 32768, half the 16-bit sequence space, the most that can be
    /// told apart. At 100,000 packets/s that is 327 ms of skew.
    pub capacity: usize,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self {
            skew_window: SkewClass::B.window(),
            payload_type: Some(PAYLOAD_TYPE_MP2T),
            fec_wait: Duration::from_millis(250),
            leg_lost_after: Duration::from_millis(100),
            history: 1024,
            capacity: 32768,
        }
    }
}

/// Where an output packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The first leg to deliver it.
    Leg(Pipeline),
    /// Rebuilt from FEC: neither leg delivered it in time.
    Fec(FecDirection),
}

/// One packet to forward, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedPacket {
    /// The RTP datagram as received (or as rebuilt by FEC, bit-exact).
    pub datagram: bytes::Bytes,
    pub sequence_number: u16,
    /// Sequence number extended past 16-bit wrap-around; increases by one
    /// per output packet or lost packet, and by an arbitrary step at a
    /// stream restart.
    pub extended_sequence: u64,
    pub ssrc: u32,
    pub source: Source,
    /// Where the RTP payload lies in `datagram`.
    pub(crate) payload: std::ops::Range<usize>,
}

impl MergedPacket {
    /// The RTP payload (the TS packets), without header or padding.
    pub fn payload(&self) -> bytes::Bytes {
        self.datagram.slice(self.payload.clone())
    }
}

/// Why a datagram from a leg was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    NotRtp(RtpError),
    WrongPayloadType { expected: u8, found: u8 },
    BadTs(TsError),
    BadFec(FecError),
}

/// What happened, in order. The driver logs, counts and publishes them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MergeEvent {
    /// The output started following a stream.
    Started {
        at: Instant,
        leg: Pipeline,
        ssrc: u32,
        sequence_number: u16,
    },
    /// A leg delivered nothing of the followed stream for `leg_lost_after`.
    LegLost {
        at: Instant,
        leg: Pipeline,
        last_packet: Instant,
    },
    /// A lost leg delivers the followed stream again.
    LegRestored {
        at: Instant,
        leg: Pipeline,
        silent_for: Duration,
    },
    /// A leg now carries another stream (new SSRC or sequence base) than the
    /// one the output follows; its packets are not forwarded while the other
    /// leg carries on.
    LegRestarted {
        at: Instant,
        leg: Pipeline,
        previous_ssrc: u32,
        ssrc: u32,
        sequence_number: u16,
    },
    /// The followed stream ended on both legs; the output now follows the
    /// restarted one. The extended sequence jumps here.
    StreamRestarted {
        at: Instant,
        leg: Pipeline,
        previous_ssrc: u32,
        ssrc: u32,
        sequence_number: u16,
    },
    /// A packet neither leg delivered was rebuilt from FEC.
    RecoveredByFec {
        at: Instant,
        sequence_number: u16,
        direction: FecDirection,
    },
    /// `count` packets from `sequence_number` on reached neither leg in the
    /// window and FEC could not rebuild them: output loss.
    Lost {
        at: Instant,
        sequence_number: u16,
        count: u64,
    },
    /// A datagram was dropped (counted as well; log at a limited rate).
    Dropped {
        at: Instant,
        leg: Pipeline,
        reason: DropReason,
    },
    /// The merged output's transport stream skipped continuity counters on
    /// `pid` (after an output loss, or an encoder's own error).
    ContinuityError {
        at: Instant,
        pid: u16,
        expected: u8,
        found: u8,
    },
}

/// Per-leg counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegCounters {
    /// Media datagrams received (valid or not).
    pub packets: u64,
    pub bytes: u64,
    /// Not RTP, wrong payload type, or a payload that is not whole TS packets.
    pub invalid: u64,
    /// Gaps in this leg's own sequence numbers (packets it skipped).
    pub sequence_gaps: u64,
    /// Packets older than this leg's newest.
    pub out_of_order: u64,
    /// Second copies of a packet from the same leg.
    pub duplicates: u64,
    /// Copies of packets the other leg delivered first (the redundancy working).
    pub redundant: u64,
    /// Packets that came after their sequence number was given up on or left the history.
    pub late: u64,
    /// Packets of another stream (SSRC or sequence base) than the followed one.
    pub foreign: u64,
    /// Output packets this leg never delivered, taken from the other leg
    /// (counted when they leave the history).
    pub filled_by_other: u64,
    pub fec_packets: u64,
    pub fec_invalid: u64,
}

/// Counters of one merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeCounters {
    pub legs: [LegCounters; 2],
    pub output_packets: u64,
    pub output_bytes: u64,
    /// Packets neither leg nor FEC delivered.
    pub output_lost: u64,
    pub recovered_by_fec: u64,
    /// Transport stream continuity errors seen on the output.
    pub continuity_errors: u64,
    /// Arrival of the second copy minus arrival of the first, last seen.
    pub differential_delay: Option<Duration>,
    pub max_differential_delay: Duration,
    /// Which leg delivered the second copy last (the later leg).
    pub later_leg: Option<Pipeline>,
}
