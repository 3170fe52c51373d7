//! SMPTE ST 2022-7 merge throughput on loopback: one RTP stream of
//! 1316-byte payloads (7 TS packets) sent on both legs of a flow at a
//! paced packet rate, the merged output counted at its target.
//!
//! The flow runs in this process exactly as `tandem serve` runs it
//! (`tandem_udp_io::start`, its own thread); the sender and the counting
//! receiver use the same batched system calls. A rate passes when every
//! sequence number sent arrives once at the target. CPU is the flow
//! thread's own (from `/proc/self/task`), so the sender and receiver do
//! not count; RSS is the whole process's.
//!
//! The sender is an encoder's stand-in: with [`Sender::Gso`] it hands the
//! kernel runs of datagrams (UDP segmentation offload), which reach the
//! legs as runs (UDP GRO), as a NIC with receive offload delivers them;
//! with [`Sender::Plain`] every datagram is its own message, as ffmpeg
//! sends, and the legs take them one by one. The counting receiver takes
//! runs too. Both keep the load generator's own cost, on the same two
//! cores, from being what is measured.
//!
//! [`Forwarder::Bare`] puts a forwarder with no merge in the flow's place:
//! the same sockets and buffers, the same batched calls, every packet of
//! leg 0 sent on and leg 1's received and dropped. It is the ceiling of
//! this topology on this machine (two legs in, one target out, sender and
//! receiver in the same process), which a single-leg send-to-receive
//! ceiling overstates by the extra receive and send every output packet
//! costs.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tandem_udp_io::batch::{BATCH, RecvBatch, SendBatch, enable_gro};
use tandem_udp_io::{FlowEvent, FlowObserver, FlowSpec, Mode, SystemFlowClock};

/// RTP header plus seven TS packets.
const DATAGRAM: usize = 12 + 7 * 188;

/// One rate's result.
#[derive(Debug, Clone)]
pub struct UdpRow {
    pub offered_pps: u64,
    /// Packets per leg actually sent per second.
    pub sent_pps: f64,
    pub received_pps: f64,
    /// Output payload rate (TS bytes, without RTP headers), Mbit/s.
    pub received_mbps: f64,
    pub sent: u64,
    pub received: u64,
    /// Sequence numbers sent that never arrived.
    pub missing: u64,
    /// The flow thread's CPU, percent of one core.
    pub flow_cpu_pct: f64,
    pub rss_mib: f64,
}

struct Quiet;

impl FlowObserver for Quiet {
    fn event(&self, _: FlowEvent) {}
}

fn free_base() -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        if base < 60000
            && [0, 2, 4, 10, 12, 14]
                .iter()
                .all(|o| UdpSocket::bind(("127.0.0.1", base + o)).is_ok())
        {
            return Ok(base);
        }
    }
    anyhow::bail!("no free UDP ports on loopback")
}

/// utime + stime of the thread named `name`, in clock ticks.
fn thread_ticks(name: &str) -> Option<u64> {
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            return Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?);
        }
    }
    None
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn big_socket(buf: usize) -> anyhow::Result<std::net::UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    tandem_udp_io::socket::grow_recv_buffer(&s, buf);
    s.set_send_buffer_size(buf)?;
    s.set_nonblocking(true)?;
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>()?.into())?;
    Ok(s.into())
}

/// Counts the output's sequence numbers until `until`.
async fn receive(sock: tokio::net::UdpSocket, until: Instant, expected: u64) -> (u64, Vec<u64>) {
    let mut seen = vec![0u64; (expected as usize).div_ceil(64) + 1];
    let mut batch = RecvBatch::gro();
    let mut received = 0u64;
    let mut last: Option<u64> = None;
    let deadline = tokio::time::Instant::from_std(until);
    loop {
        let ready = tokio::time::timeout_at(deadline, sock.readable()).await;
        if ready.is_err() {
            break;
        }
        while let Ok(n) = batch.recv(&sock) {
            if n == 0 {
                break;
            }
            for i in 0..n {
                if let Some((d, _)) = batch.get(i)
                    && d.len() >= 4
                {
                    received += 1;
                    let seq = u16::from_be_bytes([d[2], d[3]]);
                    // Unwrapped relative to the previous one (the output
                    // is in order; the sender numbers from 0).
                    let ext = match last {
                        None => u64::from(seq),
                        Some(l) => {
                            l.wrapping_add_signed(i64::from(seq.wrapping_sub(l as u16) as i16))
                        }
                    };
                    last = Some(ext);
                    if let Some(w) = seen.get_mut((ext / 64) as usize) {
                        *w |= 1 << (ext % 64);
                    }
                }
            }
        }
    }
    (received, seen)
}

/// How the encoder's stand-in sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// Runs of datagrams per system call (UDP GSO), reaching the legs as
    /// runs (UDP GRO).
    Gso,
    /// One message per datagram (`sendmmsg`), as ffmpeg sends.
    Plain,
}

/// Sends `total` packets at `pps` to both legs, paced per millisecond.
async fn send(
    sock: tokio::net::UdpSocket,
    legs: [SocketAddr; 2],
    pps: u64,
    total: u64,
    how: Sender,
) -> u64 {
    let mut headers = vec![[0u8; 12]; BATCH];
    // Seven null packets (PID 0x1FFF): what a constant-rate multiplex
    // pads with; the merge checks their sync bytes like any others.
    let payload: Vec<u8> = (0..7 * 188)
        .map(|i| match i % 188 {
            0 => 0x47,
            1 => 0x1f,
            2 => 0xff,
            3 => 0x10,
            _ => (i % 251) as u8,
        })
        .collect();
    let mut batch = match how {
        Sender::Gso => SendBatch::new(),
        Sender::Plain => SendBatch::without_gso(),
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * pps as f64) as u64).min(total);
        while sent < due {
            let n = (due - sent).min(BATCH as u64) as usize;
            for (k, h) in headers.iter_mut().enumerate().take(n) {
                let seq = (sent + k as u64) as u16;
                h[0] = 0x80;
                h[1] = 33;
                h[2..4].copy_from_slice(&seq.to_be_bytes());
                h[4..8].copy_from_slice(&((sent + k as u64) as u32 * 90).to_be_bytes());
                h[8..12].copy_from_slice(&0x5eed_u32.to_be_bytes());
            }
            for leg in legs {
                let hs = &headers;
                let p = &payload[..];
                let _ = batch
                    .send(&sock, leg, n, |i| {
                        (hs.get(i).map_or(&[][..], |h| &h[..]), p)
                    })
                    .await;
            }
            sent += n as u64;
        }
    }
    sent
}

/// What stands between the legs and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    /// A Tandem 2022-7 flow, as `tandem serve` runs it.
    Tandem,
    /// Leg 0 sent on as it comes, leg 1 received and dropped.
    Bare,
}

impl Forwarder {
    /// As the bench's tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Tandem => "tandem 2022-7",
            Self::Bare => "bare (no merge)",
        }
    }
}

/// The bare forwarder's thread (named as the flow's, so that its CPU is
/// read the same way) until `until`.
fn bare_forwarder(
    legs: [SocketAddr; 2],
    target: SocketAddr,
    until: Instant,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
    let mut socks = Vec::new();
    for addr in legs {
        let leg = tandem_udp_io::LegAddr { source: None, addr };
        let s = tandem_udp_io::socket::open_receiver(&leg, None)?.socket;
        anyhow::ensure!(enable_gro(&s), "UDP GRO on a leg");
        socks.push(s);
    }
    let out = big_socket(8 << 20)?;
    Ok(std::thread::Builder::new().name("udp-bench".into()).spawn(
        move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut socks = socks.into_iter().map(tokio::net::UdpSocket::from_std);
                let (Some(l0), Some(l1)) = (socks.next(), socks.next()) else {
                    anyhow::bail!("two legs");
                };
                let (l0, l1) = (l0?, l1?);
                let out = tokio::net::UdpSocket::from_std(out)?;
                let (mut rb, mut sb) = (RecvBatch::gro(), SendBatch::new());
                let deadline = tokio::time::Instant::from_std(until);
                loop {
                    tokio::select! {
                        r = l0.readable() => {
                            r?;
                            while let Ok(n) = rb.recv(&l0) {
                                if n == 0 {
                                    break;
                                }
                                let rb = &rb;
                                let _ = sb
                                    .send(&out, target, n, |i| {
                                        (rb.get(i).map_or(&[][..], |(d, _)| d), &[][..])
                                    })
                                    .await;
                            }
                        }
                        r = l1.readable() => {
                            r?;
                            while let Ok(n) = rb.recv(&l1) {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        () = tokio::time::sleep_until(deadline) => return Ok(()),
                    }
                }
            })
        },
    )?)
}

/// Runs one rate for `secs` seconds through `forwarder`.
pub fn run_rate(
    pps: u64,
    secs: u64,
    forwarder: Forwarder,
    sender: Sender,
) -> anyhow::Result<UdpRow> {
    let base = free_base()?;
    let out = big_socket(64 << 20)?;
    anyhow::ensure!(enable_gro(&out), "UDP GRO on the counting receiver");
    let target = out.local_addr()?;
    let legs: [SocketAddr; 2] = [
        format!("127.0.0.1:{base}").parse()?,
        format!("127.0.0.1:{}", base + 10).parse()?,
    ];
    let spec = FlowSpec {
        id: "bench".into(),
        mode: Mode::Rtp2022_7,
        legs: [
            tandem_udp_io::LegAddr {
                source: None,
                addr: legs[0],
            },
            tandem_udp_io::LegAddr {
                source: None,
                addr: legs[1],
            },
        ],
        forward: vec![format!("rtp://{target}").parse()?],
        skew_ms: None,
        record: false,
        record_rollover_secs: None,
        interface: None,
    };
    let total = pps * secs;
    let until = Instant::now()
        + Duration::from_millis(100)
        + Duration::from_secs(secs)
        + Duration::from_millis(1500);
    let (flow, bare) = match forwarder {
        Forwarder::Tandem => (
            Some(
                tandem_udp_io::start(&spec, Arc::new(SystemFlowClock), Arc::new(Quiet))
                    .context("starting the flow")?,
            ),
            None,
        ),
        Forwarder::Bare => (None, Some(bare_forwarder(legs, target, until)?)),
    };
    std::thread::sleep(Duration::from_millis(100));
    let ticks0 = thread_ticks("udp-bench").unwrap_or(0);
    let t0 = Instant::now();
    let rx = std::thread::spawn(move || -> anyhow::Result<(u64, Vec<u64>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let sock = tokio::net::UdpSocket::from_std(out)?;
            Ok(receive(sock, until, total).await)
        })
    });
    let tx_sock = big_socket(8 << 20)?;
    let tx = std::thread::spawn(move || -> anyhow::Result<(u64, Duration)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let sock = tokio::net::UdpSocket::from_std(tx_sock)?;
            let start = Instant::now();
            let sent = send(sock, legs, pps, total, sender).await;
            Ok((sent, start.elapsed()))
        })
    });
    let (sent, send_time) = tx
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    let rss = rss_mib();
    let (received, seen) = rx
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    let ticks1 = thread_ticks("udp-bench").unwrap_or(ticks0);
    let busy = t0.elapsed().as_secs_f64().max(1e-9);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(flow) = flow {
        rt.block_on(flow.stop());
    }
    if let Some(b) = bare {
        b.join()
            .map_err(|_| anyhow::anyhow!("bare forwarder panicked"))??;
    }
    let arrived: u64 = (0..sent)
        .filter(|&i| {
            seen.get((i / 64) as usize)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        })
        .count() as u64;
    let send_secs = send_time.as_secs_f64().max(1e-9);
    // Ticks are 1/100 s on Linux.
    let cpu = (ticks1.saturating_sub(ticks0)) as f64 / 100.0 / busy * 100.0;
    Ok(UdpRow {
        offered_pps: pps,
        sent_pps: sent as f64 / send_secs,
        received_pps: received as f64 / send_secs,
        received_mbps: received as f64 * (DATAGRAM - 12) as f64 * 8.0 / send_secs / 1e6,
        sent,
        received,
        missing: sent - arrived,
        flow_cpu_pct: cpu,
        rss_mib: rss,
    })
}
