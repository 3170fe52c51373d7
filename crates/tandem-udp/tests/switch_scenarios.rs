//! Plain-UDP loss switch scenarios, driven by an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use bytes::Bytes;
use support::ms;
use tandem_udp::Pipeline::{P0, P1};
use tandem_udp::switch::{LossSwitch, SwitchConfig, SwitchEvent, SwitchReason};

/// A datagram of seven TS packets on PID 0x100; `n` numbers it (payload
/// bytes) and continuity counters run on from `cc`.
fn ts(n: u16, cc: u8) -> Bytes {
    let mut v = Vec::new();
    for i in 0..7u8 {
        v.extend_from_slice(&[0x47, 0x01, 0x00, 0x10 | ((cc + i) & 0x0f)]);
        v.extend_from_slice(&n.to_be_bytes());
        v.resize(v.len() + 182, i);
    }
    Bytes::from(v)
}

fn out(s: &mut LossSwitch) -> Vec<(u16, tandem_udp::Pipeline)> {
    let mut o = Vec::new();
    while let Some(d) = s.poll_output() {
        assert_eq!(d.datagram.len() % 188, 0);
        o.push((u16::from_be_bytes([d.datagram[4], d.datagram[5]]), d.leg));
    }
    o
}

fn events(s: &mut LossSwitch) -> Vec<SwitchEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn silent_active_leg_is_left_once_the_silence_threshold_passes() {
    let t0 = Instant::now();
    let mut s = LossSwitch::new(SwitchConfig::default());
    for n in 0..20u16 {
        let t = t0 + ms(u64::from(n) * 10);
        if n < 10 {
            s.on_datagram(t, P0, ts(n, (n * 7) as u8));
        }
        s.on_datagram(t + ms(1), P1, ts(n, (n * 7) as u8));
        s.check_invariants();
    }
    let o = out(&mut s);
    // P0's last datagram arrived at 90 ms; at 190 ms (100 ms later) P1 takes over.
    let from_p1: Vec<u16> = o
        .iter()
        .filter(|(_, l)| *l == P1)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(from_p1, vec![19]);
    assert_eq!(o.iter().filter(|(_, l)| *l == P0).count(), 10);
    let evs = events(&mut s);
    assert!(evs.iter().any(|e| matches!(
        e,
        SwitchEvent::Switched {
            from: Some(P0),
            to: P1,
            reason: SwitchReason::Silence,
            ..
        }
    )));
    assert_eq!(s.active(), Some(P1));
}

#[test]
fn silence_shorter_than_the_threshold_does_not_switch() {
    let t0 = Instant::now();
    let mut s = LossSwitch::new(SwitchConfig::default());
    s.on_datagram(t0, P0, ts(0, 0));
    s.on_datagram(t0, P1, ts(0, 0));
    s.on_tick(t0 + ms(99));
    s.on_datagram(t0 + ms(99), P1, ts(1, 7));
    s.on_datagram(t0 + ms(99), P0, ts(1, 7));
    assert_eq!(s.active(), Some(P0));
    assert_eq!(s.counters().switches, 0);
    assert_eq!(s.next_deadline(), Some(t0 + ms(199)));
}

#[test]
fn continuity_errors_past_the_rate_switch_to_the_clean_leg() {
    let t0 = Instant::now();
    let mut s = LossSwitch::new(SwitchConfig::default());
    for n in 0..20u16 {
        let t = t0 + ms(u64::from(n) * 10);
        let cc = (n * 7) as u8;
        // P0 drops every other datagram: each gap is a continuity error.
        if n % 2 == 0 {
            s.on_datagram(t, P0, ts(n, cc));
        }
        s.on_datagram(t + ms(1), P1, ts(n, cc));
        s.check_invariants();
    }
    let evs = events(&mut s);
    let switched: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, SwitchEvent::Switched { from: Some(_), .. }))
        .collect();
    assert_eq!(switched.len(), 1, "{evs:?}");
    assert!(matches!(
        switched[0],
        SwitchEvent::Switched {
            from: Some(P0),
            to: P1,
            reason: SwitchReason::ContinuityErrors,
            ..
        }
    ));
    // Five errors: P0's datagrams 2, 4, 6, 8, 10 each follow a gap; P1 from 10 on.
    let o = out(&mut s);
    let p1: Vec<u16> = o
        .iter()
        .filter(|(_, l)| *l == P1)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(p1, (10..20).collect::<Vec<u16>>());
    // P0 keeps being measured after the switch: datagrams 2, 4, …, 18.
    assert_eq!(s.counters().legs[0].continuity_errors, 9);
}

#[test]
fn datagrams_that_are_not_whole_ts_packets_are_dropped_not_forwarded() {
    let t0 = Instant::now();
    let mut s = LossSwitch::new(SwitchConfig::default());
    s.on_datagram(t0, P0, Bytes::from(vec![0x47; 1315]));
    let mut nosync = ts(1, 0).to_vec();
    nosync[188 * 3] = 0x00;
    s.on_datagram(t0, P0, Bytes::from(nosync));
    assert!(out(&mut s).is_empty());
    assert_eq!(s.active(), None);
    assert_eq!(s.counters().legs[0].invalid, 2);
}
