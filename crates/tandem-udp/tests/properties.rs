//! Properties of the 2022-7 merge and 2022-1 FEC over generated schedules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use support::{drain, rtp, seqs, tick_until};
use tandem_udp::Pipeline::{self, P0, P1};
use tandem_udp::fec::{FecDirection, FecPacket};
use tandem_udp::merge::{Merge, MergeConfig};

const SSRC: u32 = 0xfeed_f00d;

/// Per packet: which leg loses it (never both), and each leg's jitter.
#[derive(Debug, Clone)]
struct Sched {
    start: u16,
    n: usize,
    skew_us: u64,
    per_packet: Vec<(u8, u64, u64)>,
}

fn sched() -> impl Strategy<Value = Sched> {
    (any::<u16>(), 1usize..400, 0u64..30_000).prop_flat_map(|(start, n, skew_us)| {
        proptest::collection::vec((0u8..6, 0u64..15_000, 0u64..15_000), n).prop_map(
            move |per_packet| Sched {
                start,
                n,
                skew_us,
                per_packet,
            },
        )
    })
}

fn run(m: &mut Merge, s: &Sched, t0: Instant, lose_both: &[bool]) -> Vec<u16> {
    // Arrivals: packet i sent at i ms; leg 0 with jitter j0, leg 1 with skew + j1.
    let mut arrivals: Vec<(Instant, Pipeline, u16)> = Vec::new();
    for (i, &(loss, j0, j1)) in s.per_packet.iter().enumerate() {
        let seq = s.start.wrapping_add(i as u16);
        let sent = t0 + Duration::from_millis(i as u64);
        if lose_both[i] {
            continue;
        }
        if loss != 0 {
            arrivals.push((sent + Duration::from_micros(j0), P0, seq));
        }
        if loss != 1 {
            arrivals.push((sent + Duration::from_micros(s.skew_us + j1), P1, seq));
        }
    }
    arrivals.sort_by_key(|a| a.0);
    let mut out = Vec::new();
    for (t, leg, seq) in arrivals {
        tick_until(m, t);
        m.on_packet(t, leg, rtp(seq, SSRC));
        m.check_invariants();
        out.extend(seqs(&drain(m).0));
    }
    tick_until(m, t0 + Duration::from_millis(s.n as u64 + 1000));
    out.extend(seqs(&drain(m).0));
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Skew (≤ 30 ms) plus jitter (≤ 15 ms) stays inside the 50 ms window;
    /// losses are never common to both legs: every packet comes out exactly
    /// once, in order, whatever the start (wrap-around included).
    #[test]
    fn every_packet_exactly_once_in_order_without_common_loss(s in sched()) {
        let t0 = Instant::now();
        let mut m = Merge::new(MergeConfig::default());
        let out = run(&mut m, &s, t0, &vec![false; s.n]);
        let want: Vec<u16> = (0..s.n).map(|i| s.start.wrapping_add(i as u16)).collect();
        prop_assert_eq!(out, want);
        prop_assert_eq!(m.counters().output_lost, 0);
    }

    /// With losses common to both legs, exactly those are missing (the
    /// last packet always arrives, so no loss is at the unobservable tail).
    #[test]
    fn output_losses_equal_the_common_losses(s in sched(), common in proptest::collection::vec(any::<bool>(), 400)) {
        let mut lose: Vec<bool> = common[..s.n].to_vec();
        lose[0] = false;
        if let Some(l) = lose.last_mut() { *l = false; }
        let t0 = Instant::now();
        let mut m = Merge::new(MergeConfig::default());
        let out = run(&mut m, &s, t0, &lose);
        let want: Vec<u16> = (0..s.n).filter(|i| !lose[*i]).map(|i| s.start.wrapping_add(i as u16)).collect();
        prop_assert_eq!(out, want);
        prop_assert_eq!(m.counters().output_lost, lose.iter().filter(|l| **l).count() as u64);
    }

    /// Random single losses per column, on both legs, come back bit-exact
    /// from column FEC.
    #[test]
    fn single_losses_per_column_are_recovered_bit_exact(
        start in any::<u16>(),
        l in 1usize..=20,
        d in 4usize..=20,
        picks in proptest::collection::vec(proptest::option::of(0usize..20), 20),
    ) {
        let n = l * d;
        let media: Vec<Bytes> = (0..n).map(|i| rtp(start.wrapping_add(i as u16), SSRC)).collect();
        // At most one loss per column; never the first or last packet (nothing
        // before or after them reveals their loss).
        let lost: Vec<usize> = (0..l)
            .filter_map(|c| picks[c].map(|r| c + (r % d) * l))
            .filter(|&i| i != 0 && i != n - 1)
            .collect();
        let t0 = Instant::now();
        let mut m = Merge::new(MergeConfig::default());
        for (i, p) in media.iter().enumerate() {
            let t = t0 + Duration::from_micros(i as u64 * 100);
            if !lost.contains(&i) {
                m.on_packet(t, P0, p.clone());
                m.on_packet(t, P1, p.clone());
            }
            m.check_invariants();
        }
        let t = t0 + Duration::from_micros(n as u64 * 100);
        for c in 0..l {
            let col: Vec<Bytes> = (0..d).map(|r| media[c + r * l].clone()).collect();
            let f = FecPacket::encode(FecDirection::Column, c as u16, start.wrapping_add(c as u16), l as u8, &col).unwrap();
            m.on_fec(t, P0, f);
        }
        tick_until(&mut m, t + Duration::from_secs(1));
        let (out, _) = drain(&mut m);
        prop_assert_eq!(out.len(), n);
        prop_assert!(out.iter().zip(&media).all(|(p, m)| p.datagram == m));
        prop_assert_eq!(m.counters().recovered_by_fec, lost.len() as u64);
    }
}
