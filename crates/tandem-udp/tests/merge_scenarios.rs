//! ST 2022-7 merge scenarios, driven by an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use bytes::Bytes;
use support::{drain, ms, rtp, seqs, tick_until};
use tandem_udp::Pipeline::{P0, P1};
use tandem_udp::fec::{FecDirection, FecPacket};
use tandem_udp::merge::{Merge, MergeConfig, MergeEvent, MergedPacket, Source};

const SSRC: u32 = 0x1234_5678;

fn merge() -> Merge {
    Merge::new(MergeConfig::default())
}

#[test]
fn sequence_numbers_wrap_from_65535_to_0_without_loss() {
    let t0 = Instant::now();
    let mut m = merge();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        let seq = 65530u16.wrapping_add(i as u16);
        expected.push(seq);
        let t = t0 + ms(i);
        m.on_packet(t, P0, rtp(seq, SSRC));
        m.on_packet(t + ms(3), P1, rtp(seq, SSRC));
        m.check_invariants();
    }
    tick_until(&mut m, t0 + ms(200));
    let (out, _) = drain(&mut m);
    assert_eq!(seqs(&out), expected);
    let ext: Vec<u64> = out.iter().map(|p| p.extended_sequence).collect();
    assert!(ext.windows(2).all(|w| w[1] == w[0] + 1), "{ext:?}");
    assert_eq!(m.counters().output_lost, 0);
    assert_eq!(m.counters().legs[1].redundant, 20);
}

#[test]
fn a_long_run_with_losses_on_each_leg_keeps_the_bookkeeping_bounded() {
    // Several times the buffer's size in packets, a packet in 7 lost on
    // leg 0 and one in 11 on leg 1 (never the same one), leg 1 5 ms late:
    // every packet goes out once, and what the merge keeps to find the
    // earliest packet waiting stays within a bound of the buffer.
    let cfg = MergeConfig {
        capacity: 2048,
        history: 1024,
        ..MergeConfig::default()
    };
    let t0 = Instant::now();
    let mut m = Merge::new(cfg);
    let n = 5 * 2048u64;
    for i in 0..n {
        let seq = i as u16;
        let t = t0 + std::time::Duration::from_micros(i * 100);
        if i % 7 != 3 {
            m.on_packet(t, P0, rtp(seq, SSRC));
        }
        if i % 11 != 5 || i % 7 == 3 {
            m.on_packet(t + ms(5), P1, rtp(seq, SSRC));
        }
        if i % 512 == 0 {
            m.check_invariants();
        }
    }
    tick_until(&mut m, t0 + ms(n / 10 + 200));
    let (out, _) = drain(&mut m);
    assert_eq!(out.len() as u64, n);
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, p)| p.extended_sequence == out[0].extended_sequence + i as u64),
        "not every packet once in order"
    );
    assert_eq!(m.counters().output_lost, 0);
}

#[test]
fn a_packet_with_csrcs_and_padding_goes_out_whole_and_its_payload_without_them() {
    // Two CSRCs and 5 bytes of padding around the seven TS packets.
    let with_extras = |seq: u16| -> Bytes {
        let plain = rtp(seq, SSRC);
        let mut v = vec![0x80 | 0x20 | 2, 33];
        v.extend_from_slice(&plain[2..12]);
        v.extend_from_slice(&[0xaa; 8]);
        v.extend_from_slice(&plain[12..]);
        v.extend_from_slice(&[0, 0, 0, 0, 5]);
        Bytes::from(v)
    };
    let t0 = Instant::now();
    let mut m = merge();
    // Packet 5 is lost on both legs.
    for i in (0..10u16).filter(|&i| i != 5) {
        m.on_packet(t0 + ms(u64::from(i)), P0, with_extras(i));
    }
    tick_until(&mut m, t0 + ms(200));
    let (out, _) = drain(&mut m);
    let want: Vec<u16> = (0..10).filter(|&i| i != 5).collect();
    assert_eq!(seqs(&out), want);
    for (p, &i) in out.iter().zip(&want) {
        assert_eq!(p.datagram, with_extras(i), "forwarded as received");
        assert_eq!(p.payload(), rtp(i, SSRC).slice(12..), "TS only");
    }
    // The output's TS counters, read past the CSRCs and before the
    // padding, break once: at the hole, on the one PID.
    assert_eq!(m.counters().continuity_errors, 1);
}

#[test]
fn reordering_inside_the_window_is_put_back_in_order() {
    let t0 = Instant::now();
    let mut m = merge();
    let order = [100u16, 102, 101, 105, 103, 104, 106];
    for (i, s) in order.iter().enumerate() {
        m.on_packet(t0 + ms(i as u64 * 2), P0, rtp(*s, SSRC));
        m.check_invariants();
    }
    tick_until(&mut m, t0 + ms(200));
    let (out, _) = drain(&mut m);
    assert_eq!(seqs(&out), (100..=106).collect::<Vec<u16>>());
    assert_eq!(m.counters().legs[0].out_of_order, 3);
    assert_eq!(m.counters().output_lost, 0);
}

#[test]
fn a_packet_sent_twice_on_both_legs_goes_out_once() {
    let t0 = Instant::now();
    let mut m = merge();
    for s in 0..5u16 {
        for leg in [P0, P1, P0, P1] {
            m.on_packet(t0 + ms(u64::from(s)), leg, rtp(s, SSRC));
        }
    }
    tick_until(&mut m, t0 + ms(100));
    let (out, _) = drain(&mut m);
    assert_eq!(seqs(&out), vec![0, 1, 2, 3, 4]);
    assert_eq!(m.counters().legs[0].duplicates, 5);
    assert_eq!(m.counters().legs[1].duplicates, 5);
    assert_eq!(m.counters().legs[1].redundant, 5);
}

#[test]
fn a_packet_lost_on_one_leg_is_taken_from_the_other_within_the_window() {
    let t0 = Instant::now();
    let mut m = merge();
    let mut arrivals = Vec::new();
    for s in 0..40u16 {
        let t = t0 + ms(u64::from(s) * 5);
        // Past the first window, so nothing is held back for the start.
        if s != 24 {
            arrivals.push((t, P0, s));
        }
        // P1 lags by 40 ms, inside the 50 ms window.
        if s != 27 {
            arrivals.push((t + ms(40), P1, s));
        }
    }
    arrivals.sort_by_key(|a| a.0);
    for (t, leg, s) in arrivals {
        tick_until(&mut m, t);
        m.on_packet(t, leg, rtp(s, SSRC));
    }
    tick_until(&mut m, t0 + ms(500));
    let (out, evs) = drain(&mut m);
    assert_eq!(seqs(&out), (0..40).collect::<Vec<u16>>());
    assert_eq!(out[24].source, Source::Leg(P1));
    assert!(!evs.iter().any(|e| matches!(e, MergeEvent::Lost { .. })));
    assert_eq!(m.counters().max_differential_delay, ms(40));
}

#[test]
fn a_packet_missing_on_both_legs_is_reported_lost_when_the_window_passes() {
    let t0 = Instant::now();
    let mut m = merge();
    for s in [0u16, 1, 2, 5, 6] {
        m.on_packet(t0 + ms(u64::from(s)), P0, rtp(s, SSRC));
        m.on_packet(t0 + ms(u64::from(s) + 1), P1, rtp(s, SSRC));
    }
    tick_until(&mut m, t0 + ms(54));
    let (out, _) = drain(&mut m);
    // 5 arrived at 5 ms: the gap is given up at 55 ms, not before.
    assert_eq!(seqs(&out), vec![0, 1, 2]);
    tick_until(&mut m, t0 + ms(56));
    let (out, evs) = drain(&mut m);
    assert_eq!(seqs(&out), vec![5, 6]);
    assert!(evs.iter().any(|e| matches!(
        e,
        MergeEvent::Lost {
            sequence_number: 3,
            count: 2,
            ..
        }
    )));
    assert_eq!(m.counters().output_lost, 2);
}

#[test]
fn one_leg_dead_then_back_loses_nothing_and_is_reported() {
    let t0 = Instant::now();
    let mut m = merge();
    let mut now = t0;
    for s in 0..400u16 {
        now = t0 + ms(u64::from(s) * 10);
        m.on_packet(now, P0, rtp(s, SSRC));
        // P1 dead from packet 100 to 299 (2 s).
        if !(100..300).contains(&s) {
            m.on_packet(now + ms(2), P1, rtp(s, SSRC));
        } else {
            m.on_tick(now + ms(2));
        }
        m.check_invariants();
    }
    tick_until(&mut m, now + ms(100));
    let (out, evs) = drain(&mut m);
    assert_eq!(seqs(&out), (0..400).collect::<Vec<u16>>());
    let lost: Vec<_> = evs
        .iter()
        .filter(|e| matches!(e, MergeEvent::LegLost { leg: P1, .. }))
        .collect();
    assert_eq!(lost.len(), 1, "{evs:?}");
    assert!(
        evs.iter()
            .any(|e| matches!(e, MergeEvent::LegRestored { leg: P1, .. }))
    );
    assert!(m.counters().legs[1].sequence_gaps >= 200);
}

#[test]
fn a_leg_restarting_with_a_new_ssrc_is_reported_and_the_other_followed() {
    let t0 = Instant::now();
    let mut m = merge();
    for s in 0..50u16 {
        let t = t0 + ms(u64::from(s) * 10);
        m.on_packet(t, P0, rtp(s, SSRC));
        if s < 20 {
            m.on_packet(t + ms(1), P1, rtp(s, SSRC));
        } else {
            // P1's encoder restarted: new SSRC, new sequence base.
            m.on_packet(t + ms(1), P1, rtp(9000 + s, 0xdead));
        }
        m.check_invariants();
    }
    // Up to just before P0's silence reaches the window.
    tick_until(&mut m, t0 + ms(490 + 45));
    let (out, evs) = drain(&mut m);
    assert_eq!(seqs(&out), (0..50).collect::<Vec<u16>>());
    assert!(out.iter().all(|p| p.ssrc == SSRC));
    assert!(evs.iter().any(|e| matches!(
        e,
        MergeEvent::LegRestarted {
            leg: P1,
            previous_ssrc: SSRC,
            ssrc: 0xdead,
            ..
        }
    )));
    assert_eq!(m.counters().legs[1].foreign, 30);
}

#[test]
fn when_the_followed_stream_ends_on_both_legs_the_restarted_one_is_followed_from_its_first_packet()
{
    // Encoders start their sequence numbers at random: the old and the
    // new stream's numbers are anywhere, and may wrap. (With the old
    // stream at 40000, the new one's numbers once extended next to the
    // old stream's instead of to themselves, so nothing of the new stream
    // went out: found by the fuzz campaign.)
    for (old, new) in [
        (0u16, 500u16),
        (40_000, 7_434),
        (65_530, 65_500),
        (7_000, 60_000),
    ] {
        let t0 = Instant::now();
        let mut m = merge();
        for s in 0..10u16 {
            let t = t0 + ms(u64::from(s) * 10);
            m.on_packet(t, P0, rtp(old.wrapping_add(s), SSRC));
            m.on_packet(t, P1, rtp(new.wrapping_add(s), 0xbeef)); // P1 already restarted
        }
        // P0 stops; P1 carries on with the new stream.
        for s in 10..30u16 {
            let t = t0 + ms(u64::from(s) * 10);
            m.on_packet(t, P1, rtp(new.wrapping_add(s), 0xbeef));
            m.check_invariants();
            assert!(m.next_deadline().is_none_or(|d| d > t), "{old} → {new}");
        }
        tick_until(&mut m, t0 + ms(600));
        let (out, evs) = drain(&mut m);
        let got = seqs(&out);
        let olds: Vec<u16> = (0..10).map(|s| old.wrapping_add(s)).collect();
        assert_eq!(&got[..10], &olds[..], "{old} → {new}");
        // Held back while P0 carried on, then replayed: from the first new
        // packet P1 still held, to the last.
        let first_new = got[10].wrapping_sub(new);
        assert!(first_new <= 10, "{old} → {new}: {got:?}");
        let news: Vec<u16> = (first_new..30).map(|s| new.wrapping_add(s)).collect();
        assert_eq!(&got[10..], &news[..], "{old} → {new}");
        assert!(evs.iter().any(|e| matches!(
            e,
            MergeEvent::StreamRestarted {
                leg: P1,
                previous_ssrc: SSRC,
                ssrc: 0xbeef,
                ..
            }
        )));
        let ext: Vec<u64> = out.iter().map(|p| p.extended_sequence).collect();
        assert!(ext.windows(2).all(|w| w[1] > w[0]), "{old} → {new}");
    }
}

/// Found by the fuzz campaign: the old stream ended at 65534; the new one
/// sent 36 and 73, then 65526, an earlier number, which in the new
/// stream's first window moves its start back. The new stream's base must
/// lie far enough past the old stream that such a start never falls at or
/// before the last packet out.
#[test]
fn a_restarted_stream_whose_start_moves_back_still_goes_out_after_the_old_one() {
    let t0 = Instant::now();
    let mut m = merge();
    m.on_packet(t0, P1, rtp(65534, SSRC));
    tick_until(&mut m, t0 + ms(2000));
    for (k, s) in [36u16, 73, 65526].into_iter().enumerate() {
        m.on_packet(t0 + ms(2000 + k as u64), P1, rtp(s, 0xbeef));
        m.check_invariants();
    }
    tick_until(&mut m, t0 + ms(3000));
    let (out, evs) = drain(&mut m);
    assert!(
        evs.iter()
            .any(|e| matches!(e, MergeEvent::StreamRestarted { ssrc: 0xbeef, .. })),
        "{evs:?}"
    );
    let ext: Vec<u64> = out.iter().map(|p| p.extended_sequence).collect();
    assert!(ext.windows(2).all(|w| w[1] > w[0]), "{ext:?}");
    let got = seqs(&out);
    assert_eq!(got[0], 65534);
    assert!(got.contains(&36) && got.contains(&73), "{got:?}");
}

fn column_fec(media: &[Bytes], base: usize, l: usize, d: usize, fec_seq: u16) -> Bytes {
    let col: Vec<Bytes> = (0..d).map(|i| media[base + i * l].clone()).collect();
    let sn = u16::from_be_bytes([media[base][2], media[base][3]]);
    FecPacket::encode(FecDirection::Column, fec_seq, sn, l as u8, &col).unwrap()
}

fn row_fec(media: &[Bytes], base: usize, l: usize, fec_seq: u16) -> Bytes {
    let row: Vec<Bytes> = media[base..base + l].to_vec();
    let sn = u16::from_be_bytes([media[base][2], media[base][3]]);
    FecPacket::encode(FecDirection::Row, fec_seq, sn, 1, &row).unwrap()
}

#[test]
fn fec_recovers_a_single_loss_per_column_on_both_legs_bit_exact() {
    let (l, d) = (5usize, 4usize);
    let media: Vec<Bytes> = (0..l * d)
        .map(|i| rtp(65530u16.wrapping_add(i as u16), SSRC))
        .collect();
    let lost = [1usize, 7, 13, 14]; // one per column (columns 1, 2, 3, 4)
    let t0 = Instant::now();
    let mut m = merge();
    for (i, p) in media.iter().enumerate() {
        let t = t0 + ms(i as u64);
        if !lost.contains(&i) {
            m.on_packet(t, P0, p.clone());
            m.on_packet(t + ms(1), P1, p.clone());
        }
        m.check_invariants();
    }
    for c in 0..l {
        m.on_fec(t0 + ms(21), P0, column_fec(&media, c, l, d, c as u16));
    }
    tick_until(&mut m, t0 + ms(400));
    let (out, evs) = drain(&mut m);
    let want: Vec<u16> = (0..20u16).map(|i| 65530u16.wrapping_add(i)).collect();
    assert_eq!(seqs(&out), want);
    assert!(
        out.iter().zip(&media).all(|(p, m)| p.datagram == m),
        "not bit-exact"
    );
    for i in lost {
        assert_eq!(out[i].source, Source::Fec(FecDirection::Column));
    }
    assert!(
        out.iter().all(|p| p.payload() == p.datagram.slice(12..)),
        "the payload is the TS after the 12-byte header, rebuilt packets too"
    );
    assert_eq!(m.counters().recovered_by_fec, 4);
    assert_eq!(m.counters().output_lost, 0);
    // The rebuilt packets' TS counters are followed like any others.
    assert_eq!(m.counters().continuity_errors, 0);
    assert!(!evs.iter().any(|e| matches!(e, MergeEvent::Lost { .. })));
}

#[test]
fn row_fec_recovers_a_burst_that_columns_cannot() {
    let (l, d) = (4usize, 4usize);
    let media: Vec<Bytes> = (0..l * d).map(|i| rtp(i as u16, SSRC)).collect();
    // Packets 4 and 8 share column 0: the column cannot rebuild either,
    // rows 1 and 2 each lose one.
    let lost = [4usize, 8];
    let t0 = Instant::now();
    let mut m = merge();
    for (i, p) in media.iter().enumerate() {
        if !lost.contains(&i) {
            m.on_packet(t0 + ms(i as u64), P1, p.clone());
        }
    }
    for c in 0..l {
        m.on_fec(t0 + ms(17), P0, column_fec(&media, c, l, d, c as u16));
    }
    for r in 0..d {
        m.on_fec(t0 + ms(17), P1, row_fec(&media, r * l, l, r as u16));
    }
    tick_until(&mut m, t0 + ms(400));
    let (out, _) = drain(&mut m);
    assert_eq!(seqs(&out), (0..16).collect::<Vec<u16>>());
    assert!(
        out.iter().zip(&media).all(|(p, m)| p.datagram == m),
        "not bit-exact"
    );
    assert_eq!(m.counters().recovered_by_fec, 2);
}

#[test]
fn a_double_loss_in_one_column_without_rows_is_reported_unrecoverable() {
    let (l, d) = (4usize, 4usize);
    let media: Vec<Bytes> = (0..l * d).map(|i| rtp(i as u16, SSRC)).collect();
    let lost = [4usize, 8];
    let t0 = Instant::now();
    let mut m = merge();
    for (i, p) in media.iter().enumerate() {
        if !lost.contains(&i) {
            m.on_packet(t0 + ms(i as u64), P0, p.clone());
        }
    }
    for c in 0..l {
        m.on_fec(t0 + ms(17), P0, column_fec(&media, c, l, d, c as u16));
    }
    tick_until(&mut m, t0 + ms(1000));
    let (out, evs) = drain(&mut m);
    assert_eq!(out.len(), 14);
    assert_eq!(m.counters().output_lost, 2);
    let lost: Vec<(u16, u64)> = evs
        .iter()
        .filter_map(|e| match e {
            MergeEvent::Lost {
                sequence_number,
                count,
                ..
            } => Some((*sequence_number, *count)),
            _ => None,
        })
        .collect();
    assert_eq!(lost, vec![(4, 1), (8, 1)]);
}

#[test]
fn non_rtp_and_wrong_payload_type_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut m = merge();
    m.on_packet(t0, P0, Bytes::from(vec![0x47; 188]));
    let mut wrong = rtp(1, SSRC).to_vec();
    wrong[1] = 96;
    m.on_packet(t0, P0, Bytes::from(wrong));
    let mut nosync = rtp(2, SSRC).to_vec();
    nosync[12 + 188] = 0;
    m.on_packet(t0, P1, Bytes::from(nosync));
    tick_until(&mut m, t0 + ms(100));
    let (out, evs) = drain(&mut m);
    assert!(out.is_empty());
    assert_eq!(m.counters().legs[0].invalid, 2);
    assert_eq!(m.counters().legs[1].invalid, 1);
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, MergeEvent::Dropped { .. }))
            .count(),
        3
    );
}

/// A FEC packet that does not protect what the legs carried (forged, or
/// another flow's on the same port) rebuilds garbage: the missing packet
/// is reported lost instead of replaced by it. (Found by the `udp_merge`
/// fuzz target; see fuzz/crashes/README.md.)
/// An encoder that restarted: the same sequence numbers and TS framing,
/// its own RTP timestamp base.
fn restarted(media: &[Bytes]) -> Vec<Bytes> {
    media
        .iter()
        .map(|p| {
            let mut v = p.to_vec();
            let ts = u32::from_be_bytes([v[4], v[5], v[6], v[7]]).wrapping_add(0x5bd1_e995);
            v[4..8].copy_from_slice(&ts.to_be_bytes());
            Bytes::from(v)
        })
        .collect()
}

/// Packets `0..20` but `lost` on leg 0, then `fec`; what went out.
fn with_one_lost_and_fec(media: &[Bytes], lost: usize, fec: Bytes) -> (Vec<MergedPacket>, Merge) {
    let t0 = Instant::now();
    let mut m = merge();
    for (i, p) in media.iter().enumerate() {
        if i != lost {
            m.on_packet(t0 + ms(i as u64), P0, p.clone());
        }
    }
    m.on_fec(t0 + ms(21), P0, fec);
    tick_until(&mut m, t0 + ms(1000));
    let (out, _) = drain(&mut m);
    (out, m)
}

#[test]
fn fec_computed_over_another_stream_never_puts_its_packet_in_place_of_a_lost_one() {
    let media: Vec<Bytes> = (0..20).map(|i| rtp(i as u16, SSRC)).collect();
    let other = restarted(&media);
    let lost = 4usize;
    // Groups of an odd number of packets, down to a one-packet row, which
    // has no other packet to check against: each is refused by the
    // timestamps of the group or of the packets held around the lost one.
    // (Over an even number of packets the other stream's timestamp base
    // cancels out of the XOR, so no timestamp can tell; see
    // fuzz/crashes/README.md.)
    for (what, fec) in [
        ("a column of 5", column_fec(&other, 0, 4, 5, 0)),
        ("a row of 3", row_fec(&other, 4, 3, 0)),
        ("a row of 1", row_fec(&other, 4, 1, 0)),
    ] {
        let (out, m) = with_one_lost_and_fec(&media, lost, fec);
        assert_eq!(out.len(), 19, "{what}");
        assert!(out.iter().all(|p| media.contains(&p.datagram)), "{what}");
        assert_eq!(m.counters().recovered_by_fec, 0, "{what}");
        assert_eq!(m.counters().output_lost, 1, "{what}");
    }
    // The same groups computed over the stream followed rebuild it.
    for (what, fec) in [
        ("a column of 5", column_fec(&media, 0, 4, 5, 0)),
        ("a column of 4", column_fec(&media, 0, 4, 4, 0)),
        ("a row of 4", row_fec(&media, 4, 4, 0)),
        ("a row of 1", row_fec(&media, 4, 1, 0)),
    ] {
        let (out, m) = with_one_lost_and_fec(&media, lost, fec);
        let got: Vec<&Bytes> = out.iter().map(|p| &p.datagram).collect();
        assert_eq!(got, media.iter().collect::<Vec<_>>(), "{what}");
        assert_eq!(m.counters().recovered_by_fec, 1, "{what}");
        assert_eq!(m.counters().output_lost, 0, "{what}");
    }
}

/// An encoder that restarted as a real one does: its own timestamp base,
/// its own content, the same PID, and its counters running from where its
/// own stream is, which pads with a null packet in every other datagram.
fn restarted_elsewhere(media: &[Bytes]) -> Vec<Bytes> {
    let mut cc = 3u8;
    restarted(media)
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut v = p.to_vec();
            for (i, ts) in v[12..].chunks_mut(188).enumerate() {
                if k % 2 == 0 && i == k * 5 % 7 {
                    ts[1..4].copy_from_slice(&[0x1f, 0xff, 0x10]);
                } else {
                    ts[3] = 0x10 | cc;
                    cc = (cc + 1) & 0x0f;
                }
                ts[4..].iter_mut().for_each(|b| *b ^= 0x5a);
            }
            Bytes::from(v)
        })
        .collect()
}

#[test]
fn fec_over_another_stream_of_an_even_group_is_refused_by_the_continuity_counters() {
    let media: Vec<Bytes> = (0..20).map(|i| rtp(i as u16, SSRC)).collect();
    let other = restarted_elsewhere(&media);
    for (what, fec) in [
        ("a column of 4", column_fec(&other, 0, 4, 4, 0)),
        ("a row of 4", row_fec(&other, 4, 4, 0)),
        ("a row of 2", row_fec(&other, 4, 2, 0)),
        // Odd groups as before.
        ("a column of 5", column_fec(&other, 0, 4, 5, 0)),
        ("a row of 1", row_fec(&other, 4, 1, 0)),
    ] {
        let (out, m) = with_one_lost_and_fec(&media, 4, fec);
        assert_eq!(out.len(), 19, "{what}");
        assert!(out.iter().all(|p| media.contains(&p.datagram)), "{what}");
        assert_eq!(m.counters().recovered_by_fec, 0, "{what}");
    }
    // A stream whose counters break inside the lost packet (the encoder's
    // own glitch) still has it rebuilt: only the joins with its neighbours
    // tell whose packet it is.
    let mut glitched = media.clone();
    let mut v = glitched[4].to_vec();
    let third = 12 + 3 * 188 + 3;
    v[third] = (v[third] & 0xf0) | ((v[third] + 9) & 0x0f);
    glitched[4] = Bytes::from(v);
    let (out, m) = with_one_lost_and_fec(&glitched, 4, row_fec(&glitched, 4, 4, 0));
    assert_eq!(out.len(), 20);
    assert_eq!(out[4].datagram, glitched[4]);
    assert_eq!(m.counters().recovered_by_fec, 1);
}

/// Found by the `udp_merge` fuzz target: a row of one packet has no other
/// packet to check the rebuilt one against; computed over another stream,
/// with nothing held near the lost packet either, it is not taken on its
/// word. Computed over the stream followed, it still rebuilds the packet
/// when a neighbour vouches for it.
#[test]
fn a_one_packet_group_with_nothing_held_near_it_rebuilds_nothing() {
    let media: Vec<Bytes> = (0..400).map(|i| rtp(i as u16, SSRC)).collect();
    // 0..50 arrive, 50..=250 are lost on both legs, then 251.. arrive: no
    // packet within 100 of 150 is held.
    let run = |fec: Bytes| {
        let t0 = Instant::now();
        let mut m = merge();
        let send = |m: &mut Merge, range: std::ops::Range<usize>| {
            for (i, p) in media.iter().enumerate().take(range.end).skip(range.start) {
                m.on_packet(t0 + ms(i as u64), P0, p.clone());
            }
        };
        send(&mut m, 0..50);
        m.on_fec(t0 + ms(50), P0, fec);
        send(&mut m, 251..400);
        tick_until(&mut m, t0 + ms(2000));
        let (out, _) = drain(&mut m);
        (out, m)
    };
    let (out, m) = run(row_fec(&restarted(&media), 150, 1, 0));
    assert!(out.iter().all(|p| media.contains(&p.datagram)));
    assert_eq!(out.len(), 199);
    assert_eq!(m.counters().recovered_by_fec, 0);
    // Even the stream's own one-packet row has nothing to vouch for it.
    let (out, m) = run(row_fec(&media, 150, 1, 0));
    assert_eq!(out.len(), 199);
    assert_eq!(m.counters().recovered_by_fec, 0);
}

#[test]
fn a_forged_fec_packet_never_puts_garbage_in_place_of_a_lost_packet() {
    let (l, d) = (4usize, 4usize);
    let media: Vec<Bytes> = (0..l * d).map(|i| rtp(i as u16, SSRC)).collect();
    let lost = 4usize;
    let t0 = Instant::now();
    let mut m = merge();
    for (i, p) in media.iter().enumerate() {
        if i != lost {
            m.on_packet(t0 + ms(i as u64), P0, p.clone());
        }
    }
    // What a forger sends: the right header, a payload of its own.
    let mut forged = column_fec(&media, 0, l, d, 0).to_vec();
    forged[28..].iter_mut().for_each(|b| *b ^= 0xa5);
    m.on_fec(t0 + ms(17), P0, Bytes::from(forged));
    tick_until(&mut m, t0 + ms(1000));
    let (out, _) = drain(&mut m);
    assert_eq!(out.len(), 15);
    assert!(out.iter().all(|p| media.contains(&p.datagram)));
    assert_eq!(m.counters().recovered_by_fec, 0);
    assert_eq!(m.counters().output_lost, 1);
}

/// Found by the `udp_merge` fuzz target: following a restarted stream
/// replays its held packets with their arrival times, which made a leg
/// that had been silent since due for loss at once; its deadline lay in
/// the past and a driver sleeping until it would spin.
#[test]
fn following_a_restarted_stream_never_leaves_a_deadline_in_the_past() {
    let t0 = Instant::now();
    let mut m = Merge::new(MergeConfig {
        skew_window: ms(24),
        ..MergeConfig::default()
    });
    let (a, b) = (0x2222_2222, 0x1111_1111);
    // (ms, a packet: leg, sequence number, SSRC; or a tick)
    type Step = (u64, Option<(tandem_udp::Pipeline, u16, u32)>);
    let steps: [Step; 5] = [
        (11, Some((P1, 100, a))),
        (12, Some((P0, 100, b))),
        (77, Some((P1, 99, b))),
        (332, None),
        (333, Some((P1, 145, b))),
    ];
    let mut lost = Vec::new();
    for (at, packet) in steps {
        let now = t0 + ms(at);
        match packet {
            Some((leg, seq, ssrc)) => m.on_packet(now, leg, rtp(seq, ssrc)),
            None => m.on_tick(now),
        }
        m.check_invariants();
        if let Some(d) = m.next_deadline() {
            assert!(d > now, "deadline {:?} at {at} ms", d - t0);
        }
        while let Some(e) = m.poll_event() {
            if let MergeEvent::LegLost { leg, .. } = e {
                lost.push((at, leg));
            }
        }
    }
    // P1 is lost on the first stream at 332 ms. Stream B is followed at
    // 333 ms, and P0, whose last packet of it came at 12 ms, is lost at
    // once rather than left due in the past.
    assert_eq!(lost, vec![(332, P1), (333, P0)]);
}
