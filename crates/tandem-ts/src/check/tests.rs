use super::{Clock, PACKET_SIZE, Problem, TsChecker, TsState, check_ts};
use proptest::prelude::*;
use std::time::Duration;

/// Segment 0 of `ffmpeg -f segment -segment_time 2` (testdata/ts/README.md):
/// H.264 on PID 0x100 (carries the PCR), AAC on 0x101, PMT on 0x1000.
const SEGMENT: &[u8] = include_bytes!("../../../../testdata/ts/ffmpeg_segment_2s.000000.ts");
/// Two seconds of H.264 with two B-frames between references: PTS goes
/// back and forth, DTS rises.
const BFRAMES: &[u8] = include_bytes!("../../../../testdata/ts/ffmpeg_bframes_2s.ts");

const VIDEO_PID: u16 = 0x100;

fn pid(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2])
}

fn unit_start(packet: &[u8]) -> bool {
    packet[1] & 0x40 != 0
}

fn has_adaptation_field(packet: &[u8]) -> bool {
    packet[3] & 0x20 != 0
}

fn has_pcr(packet: &[u8]) -> bool {
    has_adaptation_field(packet) && packet[4] > 0 && packet[5] & 0x10 != 0
}

/// Offset of the payload within the packet.
fn payload_start(packet: &[u8]) -> usize {
    if has_adaptation_field(packet) {
        5 + usize::from(packet[4])
    } else {
        4
    }
}

/// Index of the `nth` packet (from 0) of `pid` that matches `pred`.
fn find_packet(data: &[u8], pid_wanted: u16, nth: usize, pred: impl Fn(&[u8]) -> bool) -> usize {
    data.chunks_exact(PACKET_SIZE)
        .enumerate()
        .filter(|(_, p)| pid(p) == pid_wanted && pred(p))
        .nth(nth)
        .map(|(i, _)| i)
        .expect("fixture has such a packet")
}

fn encode_timestamp(prefix: u8, value: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((value >> 30) as u8 & 0x07) << 1) | 1,
        (value >> 22) as u8,
        (((value >> 15) as u8 & 0x7f) << 1) | 1,
        (value >> 7) as u8,
        ((value as u8 & 0x7f) << 1) | 1,
    ]
}

fn decode_timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] & 0x0e) << 29)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] & 0xfe) << 14)
        | (u64::from(b[3]) << 7)
        | (u64::from(b[4]) >> 1)
}

/// Adds `shift` (mod 2^33) to every PTS, DTS and PCR base in the file.
fn shift_clocks(data: &mut [u8], shift: u64) {
    const RANGE: u64 = 1 << 33;
    for packet in data.chunks_exact_mut(PACKET_SIZE) {
        if has_pcr(packet) {
            let p = &mut packet[6..12];
            let base = (u64::from(p[0]) << 25)
                | (u64::from(p[1]) << 17)
                | (u64::from(p[2]) << 9)
                | (u64::from(p[3]) << 1)
                | (u64::from(p[4]) >> 7);
            let base = (base + shift) % RANGE;
            p[0] = (base >> 25) as u8;
            p[1] = (base >> 17) as u8;
            p[2] = (base >> 9) as u8;
            p[3] = (base >> 1) as u8;
            p[4] = (p[4] & 0x7f) | (((base & 1) as u8) << 7);
        }
        let start = payload_start(packet);
        if !unit_start(packet) || pid(packet) < 0x100 || pid(packet) > 0x1ff {
            continue;
        }
        let pes = &mut packet[start..];
        let flags = pes[7] >> 6;
        let mut shift_at = |at: usize, prefix: u8| {
            let value = (decode_timestamp(&pes[at..at + 5]) + shift) % RANGE;
            pes[at..at + 5].copy_from_slice(&encode_timestamp(prefix, value));
        };
        match flags {
            0b10 => shift_at(9, 0b0010),
            0b11 => {
                shift_at(9, 0b0011);
                shift_at(14, 0b0001);
            }
            _ => {}
        }
    }
}

fn remove_packet(data: &[u8], index: usize) -> Vec<u8> {
    let mut out = data[..index * PACKET_SIZE].to_vec();
    out.extend_from_slice(&data[(index + 1) * PACKET_SIZE..]);
    out
}

#[test]
fn ffmpeg_two_second_segment_is_whole_and_lasts_two_seconds() {
    let check = check_ts(SEGMENT);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.state, TsState::Whole);
    assert_eq!(check.packets, (SEGMENT.len() / PACKET_SIZE) as u64);
    // 50 frames at 25 fps: 49 steps of 3600 ticks from first to last PTS.
    // The audio's PES packets hold 17 AAC frames each and span less.
    assert_eq!(check.duration, Some(Duration::from_millis(1960)));
}

#[test]
fn b_frames_reorder_pts_but_dts_keeps_the_file_whole() {
    let check = check_ts(BFRAMES);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.state, TsState::Whole);
    assert_eq!(check.duration, Some(Duration::from_millis(1960)));
}

#[test]
fn empty_file_is_truncated() {
    let check = check_ts(&[]);
    assert_eq!(check.state, TsState::Truncated);
    assert_eq!(check.problems, vec![Problem::Empty]);
    assert_eq!(check.duration, None);
    assert_eq!(check.packets, 0);
}

#[test]
fn file_cut_mid_packet_is_truncated_at_the_partial_packet() {
    let cut = SEGMENT.len() - 100;
    let check = check_ts(&SEGMENT[..cut]);
    let whole_packets = (cut / PACKET_SIZE) as u64;
    assert_eq!(check.state, TsState::Truncated);
    assert_eq!(check.packets, whole_packets);
    assert_eq!(
        check.problems,
        vec![Problem::PartialPacket {
            packet: whole_packets,
            offset: whole_packets * PACKET_SIZE as u64,
            len: 88,
        }]
    );
    assert!(check.problems[0].to_string().contains("cut off mid-packet"));
}

#[test]
fn file_cut_at_a_packet_boundary_is_whole_but_short() {
    let half = SEGMENT.len() / PACKET_SIZE / 2 * PACKET_SIZE;
    let check = check_ts(&SEGMENT[..half]);
    assert_eq!(check.state, TsState::Whole);
    assert_eq!(check.problems, vec![]);
    // 89 of 179 packets hold video PTS 127920..=217920.
    assert_eq!(check.duration, Some(Duration::from_secs(1)));
}

#[test]
fn flipped_sync_byte_is_corrupt_at_that_packet() {
    let mut data = SEGMENT.to_vec();
    data[5 * PACKET_SIZE] = 0x46;
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert_eq!(
        check.problems[0],
        Problem::BadSync {
            packet: 5,
            offset: 940,
            found: 0x46
        }
    );
    assert_eq!(check.problems[0].offset(), Some(940));
    assert_eq!(
        check.problems[0].to_string(),
        "packet 5 at byte 940: sync byte is 0x46, expected 0x47"
    );
}

#[test]
fn lost_packet_is_a_continuity_jump_at_the_next_packet_of_its_pid() {
    // The 10th video packet with neither a PES start nor an adaptation field.
    let lost = find_packet(SEGMENT, VIDEO_PID, 10, |p| {
        !unit_start(p) && !has_adaptation_field(p)
    });
    let expected = SEGMENT[lost * PACKET_SIZE + 3] & 0x0f;
    let data = remove_packet(SEGMENT, lost);
    let next = find_packet(&data[lost * PACKET_SIZE..], VIDEO_PID, 0, |_| true) + lost;
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert_eq!(
        check.problems,
        vec![Problem::ContinuityJump {
            packet: next as u64,
            offset: (next * PACKET_SIZE) as u64,
            pid: VIDEO_PID,
            previous: (expected + 15) & 0x0f,
            expected,
            found: (expected + 1) & 0x0f,
        }]
    );
}

#[test]
fn discontinuity_indicator_explains_a_lost_packet() {
    // Lose the packet just before a video packet that has an adaptation
    // field, and flag that one as a discontinuity.
    let flagged = find_packet(SEGMENT, VIDEO_PID, 2, has_pcr);
    let lost = (0..flagged)
        .rev()
        .find(|&i| pid(&SEGMENT[i * PACKET_SIZE..]) == VIDEO_PID)
        .expect("an earlier video packet");
    let mut data = remove_packet(SEGMENT, lost);
    data[(flagged - 1) * PACKET_SIZE + 5] |= 0x80;
    let check = check_ts(&data);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.state, TsState::Whole);
}

#[test]
fn repeated_packet_is_allowed_once() {
    let at = find_packet(SEGMENT, VIDEO_PID, 5, |p| !unit_start(p));
    let packet = &SEGMENT[at * PACKET_SIZE..(at + 1) * PACKET_SIZE];
    let mut once = SEGMENT[..(at + 1) * PACKET_SIZE].to_vec();
    once.extend_from_slice(packet);
    once.extend_from_slice(&SEGMENT[(at + 1) * PACKET_SIZE..]);
    assert_eq!(check_ts(&once).state, TsState::Whole);

    let mut twice = SEGMENT[..(at + 1) * PACKET_SIZE].to_vec();
    twice.extend_from_slice(packet);
    twice.extend_from_slice(packet);
    twice.extend_from_slice(&SEGMENT[(at + 1) * PACKET_SIZE..]);
    let check = check_ts(&twice);
    assert_eq!(check.state, TsState::Corrupt);
    assert!(matches!(
        check.problems[0],
        Problem::ContinuityJump { packet, .. } if packet == at as u64 + 2
    ));
}

#[test]
fn pts_going_back_is_corrupt() {
    let at = find_packet(SEGMENT, VIDEO_PID, 20, unit_start);
    let mut data = SEGMENT.to_vec();
    let start = at * PACKET_SIZE + payload_start(&SEGMENT[at * PACKET_SIZE..]);
    assert_eq!(data[start + 7] >> 6, 0b10, "fixture writes PTS without DTS");
    data[start + 9..start + 14].copy_from_slice(&encode_timestamp(2, 0));
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert!(
        matches!(
            check.problems[..],
            [Problem::ClockBackwards { packet, pid: VIDEO_PID, clock: Clock::Pts, found: 0, .. }]
                if packet == at as u64
        ),
        "{:?}",
        check.problems
    );
}

#[test]
fn pcr_going_back_is_corrupt() {
    let at = find_packet(SEGMENT, VIDEO_PID, 3, has_pcr);
    let mut data = SEGMENT.to_vec();
    data[at * PACKET_SIZE + 6..at * PACKET_SIZE + 12].fill(0);
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert!(
        matches!(
            check.problems[..],
            [Problem::ClockBackwards { packet, clock: Clock::Pcr, found: 0, .. }]
                if packet == at as u64
        ),
        "{:?}",
        check.problems
    );
}

#[test]
fn clocks_wrapping_past_two_to_the_33_mid_file_stay_monotonic() {
    let mut data = SEGMENT.to_vec();
    let first_pts = {
        let at = find_packet(SEGMENT, VIDEO_PID, 0, unit_start);
        let start = at * PACKET_SIZE + payload_start(&SEGMENT[at * PACKET_SIZE..]);
        decode_timestamp(&SEGMENT[start + 9..start + 14])
    };
    // Put the wrap one second into the file.
    shift_clocks(&mut data, (1 << 33) - first_pts - 90_000);
    let check = check_ts(&data);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.state, TsState::Whole);
    assert_eq!(check.duration, check_ts(SEGMENT).duration);
}

#[test]
fn file_without_tables_is_corrupt() {
    let data: Vec<u8> = SEGMENT
        .chunks_exact(PACKET_SIZE)
        .filter(|p| pid(p) != 0)
        .flatten()
        .copied()
        .collect();
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert!(check.problems.contains(&Problem::NoPat {
        packets: (data.len() / PACKET_SIZE) as u64
    }));

    let data: Vec<u8> = SEGMENT
        .chunks_exact(PACKET_SIZE)
        .filter(|p| pid(p) != 0x1000)
        .flatten()
        .copied()
        .collect();
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert_eq!(
        check.problems,
        vec![Problem::NoPmt {
            pmt_pids: vec![0x1000],
            packets: (data.len() / PACKET_SIZE) as u64
        }]
    );
}

#[test]
fn random_bytes_list_at_most_the_cap_and_count_the_rest() {
    let data = vec![0u8; 1000 * PACKET_SIZE];
    let check = check_ts(&data);
    assert_eq!(check.state, TsState::Corrupt);
    assert_eq!(check.problems.len(), super::MAX_LISTED_PROBLEMS);
    // 1000 bad sync bytes plus the missing PAT.
    assert_eq!(
        check.omitted_problems,
        1001 - super::MAX_LISTED_PROBLEMS as u64
    );
}

fn check_in_pieces(data: &[u8], piece: usize) -> super::TsCheck {
    let mut checker = TsChecker::new();
    for chunk in data.chunks(piece.max(1)) {
        checker.push(chunk);
    }
    checker.finish()
}

proptest! {
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let check = check_ts(&data);
        // Random bytes read as 192-byte BDAV packets when sync bytes fall
        // at 4 and 196 and not at 0 and 188 (about one case in 65,536).
        let sync = |i: usize| data.get(i) == Some(&0x47);
        let size = if sync(4) && sync(196) && !(sync(0) && sync(188)) {
            PACKET_SIZE + 4
        } else {
            PACKET_SIZE
        };
        prop_assert_eq!(check.packets, (data.len() / size) as u64);
    }

    #[test]
    fn random_packets_with_sync_bytes_never_panic(
        mut data in proptest::collection::vec(any::<u8>(), 0..(40 * PACKET_SIZE))
    ) {
        for packet in data.chunks_mut(PACKET_SIZE) {
            packet[0] = 0x47;
        }
        let _ = check_ts(&data);
    }

    #[test]
    fn mutated_fixture_never_panics_and_pieces_agree(
        edits in proptest::collection::vec((0..SEGMENT.len(), any::<u8>()), 1..20),
        piece in 1usize..1000,
    ) {
        let mut data = SEGMENT.to_vec();
        for (at, byte) in edits {
            data[at] = byte;
        }
        prop_assert_eq!(check_in_pieces(&data, piece), check_ts(&data));
    }

    #[test]
    fn cut_fixture_is_whole_at_packet_boundaries_and_truncated_elsewhere(
        cut in (4 * PACKET_SIZE)..SEGMENT.len()
    ) {
        let check = check_ts(&SEGMENT[..cut]);
        let expected = if cut % PACKET_SIZE == 0 { TsState::Whole } else { TsState::Truncated };
        prop_assert_eq!(check.state, expected, "{:?}", check.problems);
    }
}

/// The fixture as a BDAV `.m2ts` file: a 4-byte arrival time code before
/// each packet, as ffmpeg writes for `.m2ts` names.
fn as_bdav(ts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in ts.chunks(188).enumerate() {
        out.extend_from_slice(&u32::try_from(i * 1000).unwrap().to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn bdav_m2ts_packets_are_checked_like_plain_ones() {
    let plain = check_ts(SEGMENT);
    let bdav = as_bdav(SEGMENT);
    let check = check_ts(&bdav);
    assert_eq!(check.problems, vec![]);
    assert_eq!(check.state, TsState::Whole);
    assert_eq!(
        (check.duration, check.packets),
        (plain.duration, plain.packets)
    );
    // Pieces of any size agree with one call.
    let mut pieces = TsChecker::new();
    for chunk in bdav.chunks(100) {
        pieces.push(chunk);
    }
    assert_eq!(pieces.finish(), check);
    // Cut mid-packet: truncated, at a 192-byte boundary.
    let cut = check_ts(&bdav[..192 * 10 + 50]);
    assert_eq!(cut.state, TsState::Truncated);
    assert_eq!(cut.problems.first().and_then(Problem::offset), Some(1920));
    // A flipped sync byte in packet 5 is found at its BDAV offset.
    let mut bad = bdav.clone();
    bad[192 * 5 + 4] = 0x46;
    let bad = check_ts(&bad);
    assert_eq!(bad.state, TsState::Corrupt);
    assert_eq!(bad.problems.first().and_then(Problem::offset), Some(960));
}

/// Found by `random_bytes_never_panic`: bytes that happen to carry sync
/// bytes at 4 and 196 are read as BDAV packets, 192 bytes each.
#[test]
fn random_bytes_with_bdav_sync_positions_count_192_byte_packets() {
    let mut data = vec![8u8; 1150];
    data[4] = 0x47;
    data[196] = 0x47;
    assert_eq!(check_ts(&data).packets, 5);
    // Sync bytes at 0 and 188 too: plain 188-byte packets.
    data[0] = 0x47;
    data[188] = 0x47;
    assert_eq!(check_ts(&data).packets, 6);
}
