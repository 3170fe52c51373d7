//! The parsers and engines against real ffmpeg 5.1 output captured on
//! loopback (testdata/udp/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{drain, tick_until};
use tandem_udp::Pipeline::{P0, P1};
use tandem_udp::merge::{Merge, MergeConfig, Source};
use tandem_udp::rtp::RtpPacket;
use tandem_udp::switch::{LossSwitch, SwitchConfig, SwitchEvent, SwitchReason};
use tandem_udp::ts::{Continuity, ContinuityCounters, TsDatagram};

/// (arrival since the first datagram, datagram) in capture order.
fn capture(name: &str) -> Vec<(Duration, Bytes)> {
    let path = format!("{}/../../testdata/udp/{name}", env!("CARGO_MANIFEST_DIR"));
    let d = std::fs::read(path).unwrap();
    assert_eq!(&d[..10], b"TANDEMUDP1");
    let mut i = 10;
    let mut out = Vec::new();
    while i < d.len() {
        let us = u64::from_le_bytes(d[i..i + 8].try_into().unwrap());
        let len = u32::from_le_bytes(d[i + 8..i + 12].try_into().unwrap()) as usize;
        i += 12;
        out.push((
            Duration::from_micros(us),
            Bytes::copy_from_slice(&d[i..i + len]),
        ));
        i += len;
    }
    out
}

#[test]
fn ffmpeg_rtp_mpegts_parses_as_consecutive_mp2t_packets_with_clean_continuity() {
    let cap = capture("ffmpeg-5.1-rtp_mpegts.bin");
    assert_eq!(cap.len(), 217);
    let first = RtpPacket::parse(cap[0].1.clone()).unwrap();
    let mut cc = ContinuityCounters::new();
    let mut pcrs = Vec::new();
    for (i, (_, d)) in cap.iter().enumerate() {
        assert_eq!(d.len(), 1328);
        let p = RtpPacket::parse(d.clone()).unwrap();
        assert_eq!(p.payload_type, 33);
        assert_eq!(p.ssrc, first.ssrc);
        assert_eq!(
            p.sequence_number,
            first.sequence_number.wrapping_add(i as u16)
        );
        let ts = TsDatagram::parse(p.payload()).unwrap();
        assert_eq!(ts.len(), 7);
        for pkt in ts.packets() {
            let pkt = pkt.unwrap();
            let c = cc.on_packet(&pkt);
            assert!(
                !matches!(c, Continuity::Error { .. }),
                "datagram {i}: {c:?}"
            );
            if let Some(pcr) = pkt.pcr() {
                pcrs.push(pcr);
            }
        }
    }
    assert!(pcrs.len() > 10, "{} PCRs", pcrs.len());
    assert!(pcrs.windows(2).all(|w| w[1] > w[0]), "PCR must rise");
}

#[test]
fn ffmpeg_rtp_duplicated_onto_two_legs_with_different_drops_merges_byte_identical() {
    let cap = capture("ffmpeg-5.1-rtp_mpegts.bin");
    let n = cap.len();
    // Leg A: every 37th datagram lost (about 3 %); leg B: a burst of 50 and a
    // few singles, 20 ms late; never the same datagram on both.
    let lose_a = |i: usize| i % 37 == 5 && !(100..150).contains(&i);
    let lose_b = |i: usize| (100..150).contains(&i) || (i % 41 == 3 && !lose_a(i));
    assert!((0..n).all(|i| !(lose_a(i) && lose_b(i))));
    let t0 = Instant::now();
    let mut arrivals = Vec::new();
    for (i, (at, d)) in cap.iter().enumerate() {
        if !lose_a(i) {
            arrivals.push((t0 + *at, P0, d.clone()));
        }
        if !lose_b(i) {
            arrivals.push((t0 + *at + Duration::from_millis(20), P1, d.clone()));
        }
    }
    arrivals.sort_by_key(|a| a.0);
    let mut m = Merge::new(MergeConfig::default());
    let mut out = Vec::new();
    for (t, leg, d) in arrivals {
        tick_until(&mut m, t);
        m.on_packet(t, leg, d);
        m.check_invariants();
        out.extend(drain(&mut m).0);
    }
    tick_until(&mut m, t0 + cap[n - 1].0 + Duration::from_secs(1));
    out.extend(drain(&mut m).0);
    assert_eq!(out.len(), n);
    assert!(
        out.iter().zip(&cap).all(|(o, (_, d))| o.datagram == d),
        "not byte-identical"
    );
    assert_eq!(
        out.iter().filter(|o| o.source == Source::Leg(P1)).count(),
        (0..n).filter(|&i| lose_a(i)).count()
    );
    let c = m.counters();
    assert_eq!(c.output_lost, 0);
    assert_eq!(c.continuity_errors, 0);
    assert_eq!(
        c.legs[1].sequence_gaps,
        (0..n).filter(|&i| lose_b(i)).count() as u64
    );
}

#[test]
fn ffmpeg_plain_udp_with_one_leg_killed_switches_within_the_threshold() {
    let cap = capture("ffmpeg-5.1-udp_mpegts.bin");
    assert_eq!(cap.len(), 256);
    for (_, d) in &cap {
        TsDatagram::parse(d.clone()).unwrap();
    }
    let t0 = Instant::now();
    let kill_at = cap[120].0;
    let mut s = LossSwitch::new(SwitchConfig::default());
    let mut out = Vec::new();
    for (at, d) in &cap {
        let t = t0 + *at;
        if let Some(dl) = s.next_deadline().filter(|dl| *dl <= t) {
            s.on_tick(dl);
        }
        if *at < kill_at {
            s.on_datagram(t, P0, d.clone());
        }
        s.on_datagram(t + Duration::from_millis(5), P1, d.clone());
        s.check_invariants();
        out.extend(std::iter::from_fn(|| s.poll_output()));
    }
    let evs: Vec<SwitchEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    let switched_at = evs
        .iter()
        .find_map(|e| match e {
            SwitchEvent::Switched {
                at,
                reason: SwitchReason::Silence,
                to: P1,
                ..
            } => Some(*at),
            _ => None,
        })
        .unwrap();
    let last_p0 = t0 + cap[119].0;
    let took = switched_at - last_p0;
    assert!(
        took >= Duration::from_millis(100) && took <= Duration::from_millis(100) + max_gap(&cap),
        "{took:?}"
    );
    // Every forwarded datagram is whole TS packets, from P0 then P1 only.
    let first_p1 = out.iter().position(|d| d.leg == P1).unwrap();
    assert!(out[..first_p1].iter().all(|d| d.leg == P0));
    assert!(out[first_p1..].iter().all(|d| d.leg == P1));
    assert_eq!(first_p1, 120);
}

fn max_gap(cap: &[(Duration, Bytes)]) -> Duration {
    cap.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap()
}
