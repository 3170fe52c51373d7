//! A two-path network in a thread: takes one sender's datagrams (ffmpeg's)
//! and sends each to both legs of a flow with chosen losses, silences and,
//! for RTP, SMPTE 2022-1 column and row FEC. Keeps every original datagram
//! so that the forwarded output can be compared byte for byte.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tandem_udp::FecDirection;
use tandem_udp::fec::FecPacket;

/// Whether the `i`th datagram (from 0) is lost on leg `leg`.
pub type DropFn = Box<dyn Fn(u64, usize) -> bool + Send>;

pub struct Plan {
    pub legs: [SocketAddr; 2],
    pub drop: DropFn,
    /// `(leg, from, until)`: the leg sends nothing from `from` after the
    /// first datagram until `until` (for ever if `None`).
    pub silence: Option<(usize, Duration, Option<Duration>)>,
    /// `(L, D)`: column FEC (to each leg's port + 2) over L columns of D
    /// rows, and row FEC (port + 4), as a 2022-1 sender emits them.
    pub fec: Option<(u8, u8)>,
}

/// What the relay saw and did.
#[derive(Debug, Default)]
pub struct Report {
    pub original: Vec<Vec<u8>>,
    /// Datagrams sent per leg.
    pub sent: [u64; 2],
    /// When each leg last sent a datagram.
    pub last_sent: [Option<SystemTime>; 2],
    pub fec_sent: u64,
}

pub struct Relay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Report>>,
}

/// A UDP socket with room for a whole test stream.
pub fn big_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(16 << 20);
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.into()
}

impl Relay {
    pub fn start(plan: Plan) -> Self {
        let sock = big_socket();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || run(sock, plan, &flag));
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until the sender has been quiet for 1.5 s (it finished), then
    /// returns what the relay saw.
    pub fn finish(mut self) -> Report {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(sock: UdpSocket, plan: Plan, stop: &AtomicBool) -> Report {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut report = Report::default();
    let mut buf = vec![0u8; 65536];
    let mut first: Option<Instant> = None;
    let mut last_rx = Instant::now();
    let hard_stop = Instant::now() + Duration::from_secs(120);
    let mut matrix: Vec<Bytes> = Vec::new();
    let mut fec_seq: u16 = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => {
                if first.is_some() && last_rx.elapsed() > Duration::from_millis(1500) {
                    break;
                }
                continue;
            }
        };
        last_rx = Instant::now();
        let t0 = *first.get_or_insert(last_rx);
        let since = last_rx - t0;
        let i = report.original.len() as u64;
        let d = buf[..n].to_vec();
        for leg in 0..2 {
            let silent = plan.silence.is_some_and(|(l, from, until)| {
                l == leg && since >= from && until.is_none_or(|u| since < u)
            });
            if silent || (plan.drop)(i, leg) {
                continue;
            }
            out.send_to(&d, plan.legs[leg]).unwrap();
            report.sent[leg] += 1;
            report.last_sent[leg] = Some(SystemTime::now());
        }
        if let Some((l, rows)) = plan.fec {
            matrix.push(Bytes::from(d.clone()));
            let (l, rows) = (usize::from(l), usize::from(rows));
            let mut fecs = Vec::new();
            let base = u16::from_be_bytes([matrix[0][2], matrix[0][3]]);
            if matrix.len().is_multiple_of(l) {
                // A row is complete: its row FEC goes out at once.
                let r = matrix.len() / l - 1;
                let row: Vec<Bytes> = matrix[r * l..(r + 1) * l].to_vec();
                let sn = base.wrapping_add((r * l) as u16);
                fecs.push((
                    4,
                    FecPacket::encode(FecDirection::Row, fec_seq, sn, 1, &row).unwrap(),
                ));
                fec_seq = fec_seq.wrapping_add(1);
            }
            if matrix.len() == l * rows {
                for c in 0..l {
                    let col: Vec<Bytes> = (0..rows).map(|r| matrix[r * l + c].clone()).collect();
                    let sn = base.wrapping_add(c as u16);
                    fecs.push((
                        2,
                        FecPacket::encode(FecDirection::Column, fec_seq, sn, l as u8, &col)
                            .unwrap(),
                    ));
                    fec_seq = fec_seq.wrapping_add(1);
                }
                matrix.clear();
            }
            for (off, f) in fecs {
                for leg in plan.legs {
                    out.send_to(&f, SocketAddr::new(leg.ip(), leg.port() + off))
                        .unwrap();
                    report.fec_sent += 1;
                }
            }
        }
        report.original.push(d);
    }
    report
}

/// Collects datagrams arriving on `sock` until none came for `idle` after
/// the first (or `limit` passed).
pub fn capture(sock: UdpSocket, idle: Duration, limit: Duration) -> JoinHandle<Vec<Vec<u8>>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let end = Instant::now() + limit;
        let mut got = Vec::new();
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    got.push(buf[..n].to_vec());
                    last = Instant::now();
                }
                Err(_) if !got.is_empty() && last.elapsed() > idle => break,
                Err(_) => {}
            }
        }
        got
    })
}

/// A base port whose +0, +2, +4 and +10, +12, +14 are free now.
pub fn free_base() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base < 60000
            && [0, 2, 4, 10, 12, 14]
                .iter()
                .all(|o| UdpSocket::bind(("127.0.0.1", base + o)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports")
}
