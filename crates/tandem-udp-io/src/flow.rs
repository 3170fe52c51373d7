//! One flow, one tokio task: the legs' sockets in, the engine in the
//! middle, the targets out.
//!
//! Each wake-up (a socket readable, the engine's deadline, the status
//! tick) receives what every socket has queued, a batch at a time, feeds
//! it to the engine with one `now` per batch from the injected clock,
//! and sends what the engine released to every target at once. The
//! 2022-7 merge releases a packet as soon as it is next in sequence, so
//! forwarding adds no delay while either leg delivers, and at most the
//! skew window (plus FEC's wait, while FEC arrives) when both miss one.
//!
//! Bad input (not RTP, wrong payload type, not whole synchronised TS
//! packets, oversize, or from an unexpected sender) is counted per leg and
//! dropped, never forwarded, and logged at most once per
//! [`LOG_EVERY`] per leg with the count of what was not logged.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_core::Pipeline;
use tandem_udp::merge::DropReason;
use tandem_udp::{
    ContinuityCounters, LossSwitch, Merge, MergeConfig, MergeEvent, SwitchConfig, SwitchEvent,
    TsDatagram,
};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::batch::{Arena, RecvBatch, SendBatch, enable_gro};
use crate::replay::SwitchReplay;
use crate::socket::{SocketError, open_receiver, open_sender};
use crate::spec::{FlowSpec, LegAddr, Mode, SpecError, Target, TargetKind};
use crate::status::{FlowEvent, FlowStatus};

/// A future a clock resolves.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a flow's time comes from (the server passes its clock in).
pub trait FlowClock: Send + Sync {
    /// Monotonic time, what the engines run on.
    fn instant(&self) -> Instant;
    /// Resolves once [`instant`](Self::instant) reaches `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// The operating system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemFlowClock;

impl FlowClock for SystemFlowClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }
}

/// Receives a flow's events as they happen (called from the flow task:
/// must not block).
pub trait FlowObserver: Send + Sync {
    fn event(&self, event: FlowEvent);
    /// Every forwarded datagram's transport packets, in order (recording).
    fn output(&self, _ts: &Bytes) {}
}

/// Why a flow did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    Engine(#[from] tandem_udp::ConfigError),
    #[error("cannot start the flow's thread: {0}")]
    Thread(std::io::Error),
}

/// How often the status (and the bit rates) is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_millis(200);
/// Bad-input log lines per leg: at most one per 10 s.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// A leg's sender is the first address it hears from; another address is
/// accepted in its place only after the sender has been silent this long
/// (an encoder restarting from a new port), so a stray sender cannot
/// interleave its datagrams with the leg's.
pub const SENDER_HOLD: Duration = Duration::from_secs(1);
/// Rounds per wake-up (a batch from each socket, then what they released
/// sent on) before timers and status get a turn.
const BATCHES_PER_WAKE: usize = 4;
/// RTP payload type of MPEG-TS (RFC 3551).
const PT_MP2T: u8 = 33;

/// A running flow. Dropping it stops the task.
#[derive(Debug)]
pub struct FlowHandle {
    status: Arc<Mutex<FlowStatus>>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl FlowHandle {
    /// The latest status (refreshed every [`STATUS_EVERY`]).
    pub fn status(&self) -> FlowStatus {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops the task and waits until its sockets are closed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            let _ = d.await;
        }
    }
}

impl Drop for FlowHandle {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Media,
    Fec,
}

struct Input {
    leg: Pipeline,
    kind: Kind,
    socket: UdpSocket,
    /// Only this sender (SOURCE@), or the learned one.
    source: Option<IpAddr>,
    sender: Option<(SocketAddr, Instant)>,
    batch: RecvBatch,
}

enum Engine {
    Merge(Box<Merge>),
    Switch(Box<LossSwitch>),
}

struct Out {
    datagram: Bytes,
    payload: Bytes,
}

struct TargetState {
    target: Target,
    /// Switch flows to RTP targets: the stream Tandem numbers.
    rtp_seq: u16,
    ssrc: u32,
    headers: Vec<[u8; 12]>,
}

#[derive(Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(suppressed since the last line)` when a line may be logged.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

struct Flow {
    id: String,
    clock: Arc<dyn FlowClock>,
    observer: Arc<dyn FlowObserver>,
    engine: Engine,
    inputs: Vec<Input>,
    arena: Arena,
    out: Vec<Out>,
    sender: UdpSocket,
    send: SendBatch,
    targets: Vec<TargetState>,
    status: Arc<Mutex<FlowStatus>>,
    local: FlowStatus,
    output_cc: ContinuityCounters,
    logs: [LogLimit; 2],
    started: Instant,
    last_rate: Option<(Instant, [u64; 2], u64)>,
    switch_lost: [bool; 2],
    replay: SwitchReplay,
    replayed_bytes: u64,
}

fn interface_v4(spec: &FlowSpec) -> Option<Ipv4Addr> {
    match spec.interface {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// A socket opened by [`start`], before the flow's runtime takes it.
struct Opened {
    leg: Pipeline,
    kind: Kind,
    socket: std::net::UdpSocket,
    source: Option<IpAddr>,
}

/// Validates `spec`, opens every socket (so that a port in use or a
/// failed join is an error here), and starts the flow: one task on a
/// thread of its own with a single-threaded runtime, so that a flow's
/// packets never wait behind HTTP work and the flow's preallocated
/// system-call headers (not `Send`) stay on one thread.
pub fn start(
    spec: &FlowSpec,
    clock: Arc<dyn FlowClock>,
    observer: Arc<dyn FlowObserver>,
) -> Result<FlowHandle, FlowError> {
    spec.validate()?;
    let merge_cfg = MergeConfig {
        skew_window: spec.skew_window(),
        ..MergeConfig::default()
    };
    merge_cfg.validate()?;
    let iface = interface_v4(spec);
    let mut opened = Vec::new();
    let mut local = FlowStatus::default();
    for leg in Pipeline::BOTH {
        let addr = spec.legs[leg.index()];
        let offsets: &[(Kind, u16)] = match spec.mode {
            Mode::Rtp2022_7 => &[(Kind::Media, 0), (Kind::Fec, 2), (Kind::Fec, 4)],
            Mode::UdpSwitch => &[(Kind::Media, 0)],
        };
        for &(kind, off) in offsets {
            let a: LegAddr = addr.at_offset(off).unwrap_or(addr);
            let r = open_receiver(&a, iface)?;
            if kind == Kind::Media {
                local.legs[leg.index()].recv_buffer_bytes = r.recv_buffer;
            }
            opened.push(Opened {
                leg,
                kind,
                socket: r.socket,
                source: addr.source,
            });
        }
        local.legs[leg.index()].leg = leg.index();
        local.legs[leg.index()].address = addr.to_string();
    }
    let sender = open_sender(&spec.forward, iface)?;
    let seed = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(&spec.id) as u32
    };
    let targets: Vec<TargetState> = spec
        .forward
        .iter()
        .enumerate()
        .map(|(i, &target)| TargetState {
            target,
            rtp_seq: (seed as u16).wrapping_add(i as u16 * 7919),
            ssrc: seed.wrapping_mul(2_654_435_761).wrapping_add(i as u32),
            headers: Vec::new(),
        })
        .collect();
    let status = Arc::new(Mutex::new(local.clone()));
    let (stop_tx, stop_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let spec = spec.clone();
    let shared = status.clone();
    let thread = std::thread::Builder::new()
        .name(format!("udp-{}", spec.id))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(flow = %spec.id, error = %e, "cannot start the flow's runtime");
                    return;
                }
            };
            rt.block_on(async move {
                let mut inputs = Vec::new();
                for o in opened {
                    // Media legs take runs of datagrams as one buffer
                    // where the kernel can (UDP GRO); FEC is sparse.
                    let batch = if matches!(o.kind, Kind::Media) && enable_gro(&o.socket) {
                        RecvBatch::gro()
                    } else {
                        RecvBatch::new()
                    };
                    match UdpSocket::from_std(o.socket) {
                        Ok(socket) => inputs.push(Input {
                            leg: o.leg,
                            kind: o.kind,
                            socket,
                            source: o.source,
                            sender: None,
                            batch,
                        }),
                        Err(e) => {
                            tracing::error!(flow = %spec.id, error = %e, "cannot register a socket");
                            return;
                        }
                    }
                }
                let sender = match UdpSocket::from_std(sender) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(flow = %spec.id, error = %e, "cannot register the sending socket");
                        return;
                    }
                };
                let engine = match spec.mode {
                    Mode::Rtp2022_7 => Engine::Merge(Box::new(Merge::new(merge_cfg))),
                    Mode::UdpSwitch => {
                        Engine::Switch(Box::new(LossSwitch::new(SwitchConfig::default())))
                    }
                };
                let now = clock.instant();
                let flow = Flow {
                    id: spec.id.clone(),
                    clock,
                    observer,
                    engine,
                    inputs,
                    arena: Arena::default(),
                    out: Vec::with_capacity(crate::batch::BATCH * 4),
                    sender,
                    send: SendBatch::new(),
                    targets,
                    status: shared,
                    local,
                    output_cc: ContinuityCounters::new(),
                    logs: Default::default(),
                    started: now,
                    last_rate: None,
                    switch_lost: [false; 2],
                    replay: SwitchReplay::default(),
                    replayed_bytes: 0,
                };
                flow.run(stop_rx).await;
            });
            let _ = done_tx.send(());
        });
    if let Err(e) = thread {
        return Err(FlowError::Thread(e));
    }
    Ok(FlowHandle {
        status,
        stop: Some(stop_tx),
        done: Some(done_rx),
    })
}

/// Queues a TS datagram of a switch flow, counting the output's
/// continuity errors per PID.
fn emit_ts(
    out: &mut Vec<Out>,
    cc: &mut ContinuityCounters,
    status: &mut crate::status::OutputStatus,
    datagram: Bytes,
) {
    if let Ok(ts) = TsDatagram::parse(datagram.clone()) {
        for p in ts.packets().flatten() {
            if let tandem_udp::Continuity::Error { .. } = cc.on_packet(&p) {
                status.continuity_errors += 1;
                *status.continuity_errors_by_pid.entry(p.pid()).or_default() += 1;
            }
        }
    }
    out.push(Out {
        payload: datagram.clone(),
        datagram,
    });
}

async fn readable(s: Option<&Input>) {
    match s {
        Some(i) => {
            if i.socket.readable().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn wait(sleep: &mut Option<(Instant, Sleep)>) {
    match sleep {
        Some((_, s)) => s.as_mut().await,
        None => std::future::pending().await,
    }
}

enum Wake {
    Stop,
    Input,
    Deadline,
    Status,
}

impl Flow {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(STATUS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sleep: Option<(Instant, Sleep)> = None;
        tracing::info!(flow = %self.id, "udp flow started");
        loop {
            let deadline = self.next_deadline();
            if sleep.as_ref().map(|s| s.0) != deadline {
                sleep = deadline.map(|d| (d, self.clock.sleep_until(d)));
            }
            let ins = &self.inputs;
            let wake = tokio::select! {
                _ = &mut stop => Wake::Stop,
                _ = readable(ins.first()) => Wake::Input,
                _ = readable(ins.get(1)) => Wake::Input,
                _ = readable(ins.get(2)) => Wake::Input,
                _ = readable(ins.get(3)) => Wake::Input,
                _ = readable(ins.get(4)) => Wake::Input,
                _ = readable(ins.get(5)) => Wake::Input,
                _ = wait(&mut sleep) => Wake::Deadline,
                _ = tick.tick() => Wake::Status,
            };
            match wake {
                Wake::Stop => break,
                Wake::Input => {
                    // A round from each socket, then out with what it
                    // released, so that a backlog is worked off in
                    // batches that stay in cache.
                    for _ in 0..BATCHES_PER_WAKE {
                        let any = self.receive();
                        self.forward().await;
                        if !any {
                            break;
                        }
                    }
                    continue;
                }
                Wake::Deadline => {
                    sleep = None;
                    let now = self.clock.instant();
                    match &mut self.engine {
                        Engine::Merge(m) => m.on_tick(now),
                        Engine::Switch(s) => s.on_tick(now),
                    }
                }
                Wake::Status => {
                    self.publish_status();
                    continue;
                }
            }
            self.drain();
            self.forward().await;
        }
        self.publish_status();
        tracing::info!(flow = %self.id, "udp flow stopped");
    }

    fn next_deadline(&self) -> Option<Instant> {
        match &self.engine {
            Engine::Merge(m) => m.next_deadline(),
            Engine::Switch(s) => s.next_deadline(),
        }
    }

    /// Takes a batch from each socket in turn, so that one leg's backlog
    /// never delays the other's packets past the skew window. Whether
    /// any socket had something.
    fn receive(&mut self) -> bool {
        let mut any = false;
        for idx in 0..self.inputs.len() {
            let Some(input) = self.inputs.get_mut(idx) else {
                break;
            };
            match input.batch.recv(&input.socket) {
                Ok(0) => continue,
                Ok(_) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::warn!(flow = %self.id, leg = input.leg.index(), error = %e, "receive failed");
                    continue;
                }
            }
            let now = self.clock.instant();
            self.take_batch(idx, now);
        }
        any
    }

    fn take_batch(&mut self, idx: usize, now: Instant) {
        let Some(input) = self.inputs.get_mut(idx) else {
            return;
        };
        let (leg, kind, count) = (input.leg, input.kind, input.batch.len());
        let li = leg.index();
        for i in 0..count {
            let Some(input) = self.inputs.get_mut(idx) else {
                return;
            };
            let Some((data, meta)) = input.batch.get(i) else {
                break;
            };
            let from_ok = match (input.source, meta.from) {
                (Some(src), Some(from)) => from.ip() == src,
                (Some(_), None) => false,
                (None, Some(from)) => match input.sender {
                    Some((s, _)) if s == from => true,
                    Some((_, seen)) if now.duration_since(seen) < SENDER_HOLD => false,
                    _ => true,
                },
                (None, None) => true,
            };
            let leg_status = &mut self.local.legs[li];
            if meta.truncated {
                leg_status.oversize += 1;
                if let Some(more) = self.logs[li].allow(now) {
                    tracing::warn!(flow = %self.id, leg = li, len_over = crate::batch::SLOT, suppressed = more, "dropped a datagram longer than the receive slot");
                }
                continue;
            }
            if !from_ok {
                leg_status.unexpected_source += 1;
                if let Some(more) = self.logs[li].allow(now) {
                    tracing::warn!(flow = %self.id, leg = li, from = ?meta.from, expected = ?input.source.map(|s| s.to_string()).or(input.sender.map(|s| s.0.to_string())), suppressed = more, "dropped a datagram from an unexpected sender");
                }
                continue;
            }
            if input.source.is_none()
                && let Some(from) = meta.from
            {
                input.sender = Some((from, now));
            }
            let bytes = self.arena.copy(data);
            match (&mut self.engine, kind) {
                (Engine::Merge(m), Kind::Media) => m.on_packet(now, leg, bytes),
                (Engine::Merge(m), Kind::Fec) => m.on_fec(now, leg, bytes),
                (Engine::Switch(s), _) => {
                    s.on_datagram(now, leg, bytes.clone());
                    // The switch's decision for this datagram first, so
                    // that a replay never repeats it.
                    self.drain();
                    if TsDatagram::parse(bytes.clone()).is_ok() {
                        self.replay.on_datagram(leg, &bytes);
                    }
                }
            }
        }
        // Forward what this batch released before the next one arrives.
        self.drain();
    }

    /// Moves released packets to `out` and handles events.
    fn drain(&mut self) {
        match &mut self.engine {
            Engine::Merge(m) => {
                while let Some(p) = m.poll_output() {
                    self.out.push(Out {
                        payload: p.payload(),
                        datagram: p.datagram,
                    });
                }
            }
            Engine::Switch(_) => {
                // Events first: a switch's replay goes before what the
                // new leg delivers next.
                self.events();
                while let Some(d) = match &mut self.engine {
                    Engine::Switch(s) => s.poll_output(),
                    Engine::Merge(_) => None,
                } {
                    self.replay.on_output(&d.datagram);
                    emit_ts(
                        &mut self.out,
                        &mut self.output_cc,
                        &mut self.local.output,
                        d.datagram,
                    );
                }
                return;
            }
        }
        self.events();
    }

    fn events(&mut self) {
        let now = self.clock.instant();
        loop {
            let ev = match &mut self.engine {
                Engine::Merge(m) => match m.poll_event() {
                    Some(e) => self.on_merge_event(now, e),
                    None => break,
                },
                Engine::Switch(s) => match s.poll_event() {
                    Some(e) => self.on_switch_event(now, e),
                    None => break,
                },
            };
            if let Some(ev) = ev {
                self.observer.event(ev);
            }
        }
    }

    fn on_merge_event(&mut self, now: Instant, e: MergeEvent) -> Option<FlowEvent> {
        match e {
            MergeEvent::LegLost {
                leg, last_packet, ..
            } => Some(FlowEvent::LegLost {
                leg,
                silent_ms: now.saturating_duration_since(last_packet).as_millis() as u64,
            }),
            MergeEvent::LegRestored {
                leg, silent_for, ..
            } => Some(FlowEvent::LegRestored {
                leg,
                silent_ms: silent_for.as_millis() as u64,
            }),
            MergeEvent::Lost {
                sequence_number,
                count,
                ..
            } => {
                if let Some(more) = self.logs[0].allow(now) {
                    tracing::warn!(flow = %self.id, sequence_number, count, suppressed = more, "packets lost on both legs");
                }
                Some(FlowEvent::OutputLost {
                    sequence_number,
                    count,
                })
            }
            MergeEvent::StreamRestarted {
                leg,
                previous_ssrc,
                ssrc,
                ..
            } => Some(FlowEvent::StreamRestarted {
                leg,
                previous_ssrc,
                ssrc,
            }),
            MergeEvent::LegRestarted {
                leg,
                previous_ssrc,
                ssrc,
                ..
            } => {
                tracing::info!(flow = %self.id, leg = leg.index(), previous_ssrc, ssrc, "leg carries a restarted stream; following the other leg");
                None
            }
            MergeEvent::Dropped { leg, reason, .. } => {
                let li = leg.index();
                if let Some(more) = self.logs[li].allow(now) {
                    let why = match &reason {
                        DropReason::NotRtp(e) => format!("not RTP: {e}"),
                        DropReason::WrongPayloadType { expected, found } => {
                            format!("RTP payload type {found}, expected {expected}")
                        }
                        DropReason::BadTs(e) => format!("not MPEG-TS: {e}"),
                        DropReason::BadFec(e) => format!("bad FEC: {e}"),
                    };
                    tracing::warn!(flow = %self.id, leg = li, suppressed = more, "dropped a datagram: {why}");
                }
                None
            }
            MergeEvent::ContinuityError { pid, .. } => {
                *self
                    .local
                    .output
                    .continuity_errors_by_pid
                    .entry(pid)
                    .or_default() += 1;
                None
            }
            _ => None,
        }
    }

    fn on_switch_event(&mut self, now: Instant, e: SwitchEvent) -> Option<FlowEvent> {
        match e {
            SwitchEvent::Switched {
                from, to, reason, ..
            } => {
                if from.is_some() {
                    let mut n = 0u64;
                    for d in self.replay.on_switch(to) {
                        n += 1;
                        self.replayed_bytes += d.len() as u64;
                        emit_ts(
                            &mut self.out,
                            &mut self.output_cc,
                            &mut self.local.output,
                            d,
                        );
                    }
                    self.local.output.replayed += n;
                    if let Some(last) = self.out.last() {
                        self.replay.on_output(&last.datagram.clone());
                    }
                }
                tracing::info!(flow = %self.id, from = ?from.map(|p| p.index()), to = to.index(), reason = reason.as_str(), "udp flow switched legs");
                Some(FlowEvent::Switched {
                    from,
                    to,
                    reason: reason.as_str(),
                })
            }
            SwitchEvent::LegLost {
                leg, last_datagram, ..
            } => {
                self.switch_lost[leg.index()] = true;
                Some(FlowEvent::LegLost {
                    leg,
                    silent_ms: now.saturating_duration_since(last_datagram).as_millis() as u64,
                })
            }
            SwitchEvent::LegRestored {
                leg, silent_for, ..
            } => {
                self.switch_lost[leg.index()] = false;
                Some(FlowEvent::LegRestored {
                    leg,
                    silent_ms: silent_for.as_millis() as u64,
                })
            }
            SwitchEvent::ContinuityError { leg, pid, .. } => {
                *self.local.legs[leg.index()]
                    .continuity_errors_by_pid
                    .entry(pid)
                    .or_default() += 1;
                None
            }
            SwitchEvent::Dropped { leg, error, .. } => {
                let li = leg.index();
                if let Some(more) = self.logs[li].allow(now) {
                    tracing::warn!(flow = %self.id, leg = li, suppressed = more, "dropped a datagram: not MPEG-TS: {error}");
                }
                None
            }
            _ => None,
        }
    }

    /// Sends `out` to every target, then empties it.
    async fn forward(&mut self) {
        if self.out.is_empty() {
            return;
        }
        for o in &self.out {
            self.observer.output(&o.payload);
        }
        let rtp_ts = (self
            .clock
            .instant()
            .duration_since(self.started)
            .as_micros()
            * 9
            / 100) as u32;
        let switch = matches!(self.engine, Engine::Switch(_));
        for t in &mut self.targets {
            let (kind, addr) = (t.target.kind, t.target.addr);
            let wrap = switch && kind == TargetKind::Rtp;
            if wrap {
                t.headers.clear();
                for _ in &self.out {
                    let mut h = [0u8; 12];
                    h[0] = 0x80;
                    h[1] = PT_MP2T;
                    h[2..4].copy_from_slice(&t.rtp_seq.to_be_bytes());
                    h[4..8].copy_from_slice(&rtp_ts.to_be_bytes());
                    h[8..12].copy_from_slice(&t.ssrc.to_be_bytes());
                    t.rtp_seq = t.rtp_seq.wrapping_add(1);
                    t.headers.push(h);
                }
            }
            let out = &self.out;
            let headers = &t.headers;
            let pick = |i: usize| -> (&[u8], &[u8]) {
                let Some(o) = out.get(i) else {
                    return (&[], &[]);
                };
                match kind {
                    TargetKind::Udp => (&[], &o.payload[..]),
                    TargetKind::Rtp if wrap => (
                        headers.get(i).map(|h| &h[..]).unwrap_or(&[]),
                        &o.payload[..],
                    ),
                    TargetKind::Rtp => (&[], &o.datagram[..]),
                }
            };
            match self.send.send(&self.sender, addr, out.len(), pick).await {
                Ok(n) => self.local.output.send_errors += (out.len() - n) as u64,
                Err(e) => {
                    self.local.output.send_errors += out.len() as u64;
                    let now = self.clock.instant();
                    if let Some(more) = self.logs[1].allow(now) {
                        tracing::warn!(flow = %self.id, target = %t.target, error = %e, suppressed = more, "cannot forward");
                    }
                }
            }
        }
        self.out.clear();
    }

    /// Copies the engine's counters into the shared status.
    fn publish_status(&mut self) {
        let now = self.clock.instant();
        let s = &mut self.local;
        match &self.engine {
            Engine::Merge(m) => {
                let c = m.counters();
                for leg in Pipeline::BOTH {
                    let (l, lc) = (&mut s.legs[leg.index()], &c.legs[leg.index()]);
                    l.packets = lc.packets;
                    l.bytes = lc.bytes;
                    l.invalid = lc.invalid;
                    l.sequence_gaps = lc.sequence_gaps;
                    l.out_of_order = lc.out_of_order;
                    l.duplicates = lc.duplicates;
                    l.redundant = lc.redundant;
                    l.late = lc.late;
                    l.foreign = lc.foreign;
                    l.recovered_from_other = lc.filled_by_other;
                    l.fec_packets = lc.fec_packets;
                    l.fec_invalid = lc.fec_invalid;
                    l.up = lc.packets > 0 && !m.leg_lost(leg);
                }
                s.output.packets = c.output_packets;
                s.output.bytes = c.output_bytes;
                s.output.lost = c.output_lost;
                s.output.recovered_by_fec = c.recovered_by_fec;
                s.output.continuity_errors = c.continuity_errors;
                s.differential_delay_ms = c.differential_delay.map(|d| d.as_secs_f64() * 1000.0);
                s.max_differential_delay_ms = c.max_differential_delay.as_secs_f64() * 1000.0;
                s.later_leg = c.later_leg.map(|p| p.index());
                s.ssrc = m.ssrc();
            }
            Engine::Switch(sw) => {
                let c = sw.counters();
                for leg in Pipeline::BOTH {
                    let (l, lc) = (&mut s.legs[leg.index()], &c.legs[leg.index()]);
                    l.packets = lc.datagrams;
                    l.bytes = lc.bytes;
                    l.invalid = lc.invalid;
                    l.continuity_errors = lc.continuity_errors;
                    l.up = lc.datagrams > 0 && !self.switch_lost[leg.index()];
                }
                s.output.packets = c.output_datagrams + s.output.replayed;
                s.output.bytes = c.output_bytes + self.replayed_bytes;
                s.output.switches = c.switches;
                s.output.active_leg = sw.active().map(|p| p.index());
            }
        }
        let bytes = [s.legs[0].bytes, s.legs[1].bytes];
        match self.last_rate {
            Some((t, prev, prev_out)) if now.duration_since(t) >= Duration::from_secs(1) => {
                let secs = now.duration_since(t).as_secs_f64();
                for i in 0..2 {
                    s.legs[i].bitrate_bps =
                        (bytes[i].saturating_sub(prev[i]) as f64 * 8.0 / secs) as u64;
                }
                s.output.bitrate_bps =
                    (s.output.bytes.saturating_sub(prev_out) as f64 * 8.0 / secs) as u64;
                self.last_rate = Some((now, bytes, s.output.bytes));
            }
            None => self.last_rate = Some((now, bytes, s.output.bytes)),
            _ => {}
        }
        *self
            .status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = s.clone();
    }
}
