//! A flow on loopback: datagrams sent to both legs with losses on each,
//! the forwarded output captured at its targets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_udp_io::{FlowEvent, FlowObserver, FlowSpec, Mode, SystemFlowClock};

#[derive(Default)]
struct Events(Mutex<Vec<FlowEvent>>);

impl FlowObserver for Events {
    fn event(&self, e: FlowEvent) {
        self.0.lock().unwrap().push(e);
    }
}

/// An RTP datagram of seven TS packets (PID 0x100) whose bytes identify `seq`.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut v = vec![0x80, 33];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&u32::from(seq).wrapping_mul(1234).to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..7u16 {
        let cc = ((u32::from(seq) * 7 + u32::from(i)) & 0x0f) as u8;
        v.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | cc]);
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend((0..182).map(|b| (b as u8) ^ (seq as u8) ^ (i as u8)));
    }
    v
}

/// Base ports whose +0, +2, +4 and +10, +12, +14 are free now.
fn free_base() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 60000 {
            continue;
        }
        let ok = [0, 2, 4, 10, 12, 14]
            .iter()
            .all(|o| UdpSocket::bind(("127.0.0.1", base + o)).is_ok());
        if ok {
            return base;
        }
    }
    panic!("no free ports")
}

/// A capture socket with a buffer for the whole stream.
fn capture() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    s.set_recv_buffer_size(16 << 20).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.into()
}

fn recv_all(sock: &UdpSocket, want: usize, limit: Duration) -> Vec<Vec<u8>> {
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want && Instant::now() < end {
        if let Ok(n) = sock.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_lossy_legs_forward_every_packet_once_in_order_and_bad_input_is_dropped() {
    let base = free_base();
    let rtp_out = capture();
    let udp_out = capture();
    let spec = FlowSpec {
        id: "loop".into(),
        mode: Mode::Rtp2022_7,
        legs: [
            format!("127.0.0.1:{base}").parse().unwrap(),
            format!("127.0.0.1:{}", base + 10).parse().unwrap(),
        ],
        forward: vec![
            format!("rtp://{}", rtp_out.local_addr().unwrap())
                .parse()
                .unwrap(),
            format!("udp://{}", udp_out.local_addr().unwrap())
                .parse()
                .unwrap(),
        ],
        skew_ms: None,
        record: false,
        record_rollover_secs: None,
        interface: None,
    };
    let events = Arc::new(Events::default());
    let flow = tandem_udp_io::start(&spec, Arc::new(SystemFlowClock), events.clone()).unwrap();
    // Both captures read while the packets flow.
    let got = tokio::task::spawn_blocking({
        let s = rtp_out.try_clone().unwrap();
        move || recv_all(&s, 3000, Duration::from_secs(10))
    });
    let raw = tokio::task::spawn_blocking({
        let s = udp_out.try_clone().unwrap();
        move || recv_all(&s, 3000, Duration::from_secs(10))
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let legs: [SocketAddr; 2] = [spec.legs[0].addr, spec.legs[1].addr];
    let n: u16 = 3000;
    // Bad input first, on leg 0: not RTP, wrong payload type, not TS.
    tx.send_to(b"hello", legs[0]).unwrap();
    let mut wrong_pt = rtp(1, 7);
    wrong_pt[1] = 96;
    tx.send_to(&wrong_pt, legs[0]).unwrap();
    let mut no_sync = rtp(1, 7);
    no_sync[12] = 0;
    tx.send_to(&no_sync, legs[0]).unwrap();
    let mut sent = Vec::new();
    for i in 0..n {
        let seq = 65000u16.wrapping_add(i);
        let d = rtp(seq, 0xdead_beef);
        // Leg 0 misses every 7th, leg 1 a burst of 50 and every 11th; where
        // both would, neither does (no common loss).
        let miss0 = i % 7 == 3;
        let miss1 = (1000..1050).contains(&i) || i % 11 == 5;
        if !miss0 || miss1 {
            tx.send_to(&d, legs[0]).unwrap();
        }
        if !miss1 || miss0 {
            tx.send_to(&d, legs[1]).unwrap();
        }
        sent.push(d);
        // About 20,000 packets/s.
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let got = got.await.unwrap();
    let raw = raw.await.unwrap();
    assert_eq!(
        got.len(),
        sent.len(),
        "every packet forwarded once: {:?}",
        flow.status()
    );
    assert!(got == sent, "RTP output is byte-identical and in order");
    assert!(
        raw.iter().zip(&sent).all(|(r, s)| r[..] == s[12..]),
        "udp:// output is the TS payload"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let st = flow.status();
    assert_eq!(st.output.packets, u64::from(n));
    assert_eq!(st.output.lost, 0);
    assert_eq!(st.legs[0].invalid, 3, "three bad datagrams counted");
    assert!(st.legs[0].recovered_from_other > 0 && st.legs[1].recovered_from_other > 0);
    assert!(st.legs[0].recv_buffer_bytes > 0);
    flow.stop().await;
}
