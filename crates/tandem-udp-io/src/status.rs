//! What a running flow reports: counters per leg and output (the API's
//! `GET /api/v1/udp/{id}` and `/metrics`), and events as they happen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tandem_core::Pipeline;

/// One leg's counters. Counters only grow while the flow runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegStatus {
    pub leg: usize,
    pub address: String,
    /// Delivering (not lost) and delivered at least once.
    pub up: bool,
    /// Media datagrams received (valid or not).
    pub packets: u64,
    pub bytes: u64,
    /// Received bit rate over the last second.
    pub bitrate_bps: u64,
    /// Not RTP, wrong payload type, not whole synchronised TS packets.
    pub invalid: u64,
    /// Datagrams from another sender than the leg's (dropped).
    pub unexpected_source: u64,
    /// Datagrams longer than the receive slot (dropped).
    pub oversize: u64,
    /// Gaps in this leg's own RTP sequence numbers.
    pub sequence_gaps: u64,
    pub out_of_order: u64,
    pub duplicates: u64,
    /// Copies of packets the other leg delivered first.
    pub redundant: u64,
    /// Arrived after their packet was given up on.
    pub late: u64,
    /// Packets of another RTP stream (SSRC or sequence base) than the
    /// followed one.
    pub foreign: u64,
    /// Output packets this leg missed that the other leg delivered.
    pub recovered_from_other: u64,
    pub fec_packets: u64,
    pub fec_invalid: u64,
    /// udp-switch: continuity errors on this leg's own transport stream.
    pub continuity_errors: u64,
    pub continuity_errors_by_pid: BTreeMap<u16, u64>,
    /// The receive buffer the kernel granted the media socket, in bytes.
    pub recv_buffer_bytes: usize,
}

/// The forwarded output's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputStatus {
    pub packets: u64,
    pub bytes: u64,
    pub bitrate_bps: u64,
    /// RTP packets neither leg nor FEC delivered.
    pub lost: u64,
    pub recovered_by_fec: u64,
    /// Transport stream continuity errors in the output.
    pub continuity_errors: u64,
    pub continuity_errors_by_pid: BTreeMap<u16, u64>,
    /// udp-switch: the leg the output follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_leg: Option<usize>,
    pub switches: u64,
    /// udp-switch: datagrams of the new leg forwarded at a switch to fill
    /// the gap (see `replay`).
    pub replayed: u64,
    /// Datagrams a target did not take (send errors).
    pub send_errors: u64,
}

/// A flow's state as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowStatus {
    pub legs: [LegStatus; 2],
    pub output: OutputStatus,
    /// Arrival of a packet's second copy minus its first, last seen (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differential_delay_ms: Option<f64>,
    pub max_differential_delay_ms: f64,
    /// The leg whose copies arrive second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub later_leg: Option<usize>,
    /// The RTP SSRC the output follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
}

/// What happened in a flow, for the event log, the status page and
/// webhooks.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FlowEvent {
    /// A leg delivered nothing for the loss threshold.
    LegLost { leg: Pipeline, silent_ms: u64 },
    /// A lost leg delivers again.
    LegRestored { leg: Pipeline, silent_ms: u64 },
    /// udp-switch: the output now follows `to`.
    Switched {
        from: Option<Pipeline>,
        to: Pipeline,
        reason: &'static str,
    },
    /// Packets neither leg nor FEC delivered.
    OutputLost { sequence_number: u16, count: u64 },
    /// The sender restarted (new SSRC or sequence base) on both legs; the
    /// output follows the new stream.
    StreamRestarted {
        leg: Pipeline,
        previous_ssrc: u32,
        ssrc: u32,
    },
}

impl FlowEvent {
    /// The event's kind as webhooks and the API name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LegLost { .. } => "udp_leg_lost",
            Self::LegRestored { .. } => "udp_leg_restored",
            Self::Switched { .. } => "udp_switch",
            Self::OutputLost { .. } => "udp_output_lost",
            Self::StreamRestarted { .. } => "udp_stream_restarted",
        }
    }
}
