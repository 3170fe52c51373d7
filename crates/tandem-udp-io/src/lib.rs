//! Tandem's UDP and RTP flows on the wire: the IO around the sans-IO
//! engines of `tandem-udp`.
//!
//! A crate of its own because it is the one place that touches sockets for
//! UDP: `tandem-udp` stays pure (bytes and `now` in, packets and events
//! out, fuzzable and property-tested without a network), and the HTTP
//! server only starts, stops and reports flows. This crate owns the
//! receive sockets (large buffers, multicast joins), batched system calls
//! and the one task per flow; time comes from the clock the caller passes.
//!
//! - [`spec`]: a flow's definition and its validation.
//! - [`socket`]: receive sockets (SO_RCVBUF, ASM and SSM joins) and the send socket.
//! - [`batch`]: `recvmmsg`/`sendmmsg` with preallocated buffers; the arena packets are cut from.
//! - [`flow`]: the flow task: sockets → engine → targets; bad input counted and dropped.
//! - [`replay`]: a switch flow's gap filled from the new leg when the legs are copies.
//! - [`status`]: counters per leg and output, and flow events.

pub mod batch;
pub mod flow;
pub mod replay;
pub mod socket;
pub mod spec;
pub mod status;

pub use flow::{FlowClock, FlowError, FlowHandle, FlowObserver, SystemFlowClock, start};
pub use spec::{FlowSpec, LegAddr, Mode, SpecError, Target, TargetKind};
pub use status::{FlowEvent, FlowStatus, LegStatus, OutputStatus};
