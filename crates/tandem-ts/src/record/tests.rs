use super::*;

/// A 188-byte packet on `pid`, starting a payload unit when `start`,
/// carrying `pcr` (90 kHz base) in an adaptation field when given, its
/// payload bytes all `fill`.
fn packet(pid: u16, start: bool, pcr: Option<u64>, fill: u8) -> Vec<u8> {
    let mut p = vec![
        0x47,
        (u8::from(start) << 6) | (pid >> 8) as u8,
        pid as u8,
        0x10,
    ];
    if let Some(pcr) = pcr {
        p[3] = 0x30;
        p.extend_from_slice(&[
            7,
            0x10,
            (pcr >> 25) as u8,
            (pcr >> 17) as u8,
            (pcr >> 9) as u8,
            (pcr >> 1) as u8,
            ((pcr & 1) << 7) as u8 | 0x7e,
            0,
        ]);
    }
    p.resize(PACKET_SIZE, fill);
    p
}

/// A stream of `seconds` at 10 packets per 100 ms: a PAT every 100 ms,
/// a PCR every 100 ms starting at `pcr0`, payload packets between.
fn stream(seconds: u64, pcr0: u64) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for tenth in 0..seconds * 10 {
        v.push(packet(0, true, None, 0xff));
        v.push(packet(
            0x100,
            false,
            Some((pcr0 + tenth * 9000) % PCR_WRAP),
            0,
        ));
        for k in 0..8 {
            v.push(packet(0x101, k == 0, None, tenth as u8));
        }
    }
    v
}

/// Feeds `chunks` (each at `now` + its position × `pace`) and returns the
/// files made: (index, bytes, closed).
fn record(
    r: &mut Rollover,
    chunks: &[Vec<u8>],
    pace: Duration,
    finish: bool,
) -> Vec<(u64, Vec<u8>, bool)> {
    let t0 = Instant::now();
    let mut files: Vec<(u64, Vec<u8>, bool)> = Vec::new();
    let mut steps = Vec::new();
    let mut apply = |steps: &mut Vec<Step>, chunk: &[u8]| {
        for s in steps.drain(..) {
            match s {
                Step::Open(i) => files.push((i, Vec::new(), false)),
                Step::Write(range) => files.last_mut().unwrap().1.extend_from_slice(&chunk[range]),
                Step::Close(i) => {
                    let f = files.iter_mut().find(|f| f.0 == i).unwrap();
                    assert!(!f.2, "file {i} closed twice");
                    f.2 = true;
                }
            }
        }
    };
    for (n, c) in chunks.iter().enumerate() {
        r.push(t0 + pace * n as u32, c, &mut steps);
        apply(&mut steps, c);
    }
    if finish {
        r.finish(&mut steps);
        apply(&mut steps, &[]);
    }
    files
}

fn seven_per_chunk(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
    packets.chunks(7).map(|c| c.concat()).collect()
}

#[test]
fn files_last_the_interval_on_the_stream_clock_and_open_with_a_pat() {
    let packets = stream(10, 1000);
    let chunks = seven_per_chunk(&packets);
    // Arrival pace is irrelevant: the whole stream comes in at one instant.
    let mut r = Rollover::new(Duration::from_secs(2), 41);
    let files = record(&mut r, &chunks, Duration::ZERO, true);
    let indexes: Vec<u64> = files.iter().map(|f| f.0).collect();
    assert_eq!(indexes, [41, 42, 43, 44, 45]);
    assert!(files.iter().all(|f| f.2), "every file closed");
    assert_eq!(r.next_index(), 46);
    // Nothing lost, nothing twice, in order.
    let all: Vec<u8> = files.iter().flat_map(|f| f.1.clone()).collect();
    assert_eq!(all, packets.concat());
    for (i, f, _) in &files {
        assert!(is_pat_start(&f[..PACKET_SIZE]), "file {i} opens with a PAT");
    }
    // 2 s of stream are 20 tenths of 10 packets. The first file runs to the
    // PAT after the PCR 2 s past its first; the others start from the PCR
    // before them, so the boundaries stay 2 s apart.
    let sizes: Vec<usize> = files.iter().map(|f| f.1.len() / PACKET_SIZE).collect();
    assert_eq!(sizes, [210, 200, 200, 200, 190]);
}

#[test]
fn where_files_are_cut_does_not_depend_on_how_the_stream_is_chunked() {
    let packets = stream(7, 5);
    let whole = record(
        &mut Rollover::new(Duration::from_millis(1500), 0),
        &seven_per_chunk(&packets),
        Duration::ZERO,
        true,
    );
    let single = record(
        &mut Rollover::new(Duration::from_millis(1500), 0),
        &packets,
        Duration::ZERO,
        true,
    );
    assert_eq!(whole, single);
    assert_eq!(whole.len(), 5, "1.5, 1.5, 1.5, 1.5 and the last 1 s");
}

#[test]
fn a_pcr_that_wraps_inside_a_file_does_not_cut_it_short() {
    // Starts 1 s before the 33-bit PCR wraps.
    let packets = stream(6, PCR_WRAP - 90_000);
    let files = record(
        &mut Rollover::new(Duration::from_secs(3), 0),
        &seven_per_chunk(&packets),
        Duration::ZERO,
        true,
    );
    let sizes: Vec<usize> = files.iter().map(|f| f.1.len() / PACKET_SIZE).collect();
    assert_eq!(sizes, [310, 290]);
}

#[test]
fn a_stream_without_pcr_is_cut_by_the_clock_at_a_pat_and_without_pat_at_last() {
    // A PAT every 10 packets, no PCR; one packet per 10 ms.
    let no_pcr: Vec<Vec<u8>> = (0..1000)
        .map(|i| packet(if i % 10 == 0 { 0 } else { 0x101 }, i % 10 == 0, None, 1))
        .collect();
    let files = record(
        &mut Rollover::new(Duration::from_secs(1), 0),
        &no_pcr,
        Duration::from_millis(10),
        true,
    );
    // Twice the interval on the clock: 200 packets a file, each from a PAT.
    let sizes: Vec<usize> = files.iter().map(|f| f.1.len() / PACKET_SIZE).collect();
    assert_eq!(sizes, [200, 200, 200, 200, 200]);
    assert!(files.iter().all(|f| is_pat_start(&f.1)));

    // Neither PCR nor PAT: three times the interval, at any packet.
    let bare: Vec<Vec<u8>> = (0..700).map(|_| packet(0x101, false, None, 2)).collect();
    let files = record(
        &mut Rollover::new(Duration::from_secs(1), 0),
        &bare,
        Duration::from_millis(10),
        false,
    );
    let sizes: Vec<usize> = files.iter().map(|f| f.1.len() / PACKET_SIZE).collect();
    assert_eq!(sizes, [300, 300, 100]);
    assert_eq!(
        files.iter().map(|f| f.2).collect::<Vec<_>>(),
        [true, true, false],
        "the last file stays open until the stream ends"
    );
}

#[test]
fn a_pcr_on_another_pid_does_not_move_the_recording_clock() {
    let mut packets = stream(4, 0);
    // A second PID carrying a PCR far ahead in every tenth.
    for tenth in 0..40u64 {
        packets.insert(
            (tenth * 11 + 2) as usize,
            packet(0x200, false, Some(50 * 90_000 + tenth), 3),
        );
    }
    let files = record(
        &mut Rollover::new(Duration::from_secs(2), 0),
        &packets,
        Duration::ZERO,
        true,
    );
    let sizes: Vec<usize> = files.iter().map(|f| f.1.len() / PACKET_SIZE).collect();
    assert_eq!(sizes, [231, 209], "21 and 19 tenths of 11 packets");
}

#[test]
fn finishing_without_a_file_open_does_nothing() {
    let mut r = Rollover::new(Duration::from_secs(1), 7);
    let mut steps = Vec::new();
    r.finish(&mut steps);
    assert!(steps.is_empty());
    assert_eq!(r.next_index(), 7);
}

#[test]
fn pcr_and_pat_are_read_only_from_their_fields() {
    let p = packet(0x1abc & 0x1fff, false, Some(0x1_2345_6789), 0);
    assert_eq!(pcr(&p), Some((0x1abc, 0x1_2345_6789)));
    // Adaptation field without the PCR flag, or too short for one.
    let mut q = p.clone();
    q[5] = 0;
    assert_eq!(pcr(&q), None);
    let mut q = p.clone();
    q[4] = 6;
    assert_eq!(pcr(&q), None);
    // Payload only: the bytes where a PCR would be are payload.
    let mut q = p.clone();
    q[3] = 0x10;
    assert_eq!(pcr(&q), None);
    assert_eq!(pcr(&p[..10]), None);
    assert!(is_pat_start(&packet(0, true, None, 0)));
    assert!(!is_pat_start(&packet(0, false, None, 0)));
    assert!(!is_pat_start(&packet(0x20, true, None, 0)));
    let mut no_sync = packet(0, true, None, 0);
    no_sync[0] = 0;
    assert!(!is_pat_start(&no_sync));
}
