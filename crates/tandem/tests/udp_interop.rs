//! UDP and RTP flows against a real sender: ffmpeg sends a live MPEG-TS
//! (`-re`), a relay in the test duplicates each datagram onto both legs of
//! a flow with chosen losses, and the flow's forwarded output, captured on
//! loopback, is compared with what ffmpeg sent and decoded by ffprobe or
//! ffmpeg.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::udp_relay::{Plan, Relay, Report, big_socket, capture, free_base};
use support::{Tandem, bin, make_source, peer, run};

/// Seconds of test source: long enough for losses, a 3 s silence and a
/// kill, short enough for the suite.
const SECS: u32 = 12;

fn udp(t: &Tandem, args: &[&str]) -> Value {
    let (ok, out, err) = run(Command::new(bin())
        .arg("--data")
        .arg(&t.data)
        .arg("udp")
        .args(args)
        .arg("--json"));
    assert!(ok, "tandem udp {args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// ffmpeg sending `src` in real time with `format` to `url`.
fn ffmpeg_send(src: &Path, format: &[&str], url: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(src)
        .args(["-map", "0", "-c", "copy"])
        .args(format)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// ffmpeg's RTP output: 2 Mbit/s constant (null packets pad it, as a
/// broadcast encoder's is), RTCP to a socket of its own.
fn ffmpeg_rtp(src: &Path, to: SocketAddr, rtcp: &UdpSocket) -> Child {
    let url = format!(
        "rtp://{to}?rtcpport={}&pkt_size=1328",
        rtcp.local_addr().unwrap().port()
    );
    ffmpeg_send(
        src,
        &[
            "-f",
            "rtp_mpegts",
            "-mpegts_muxer_options",
            "muxrate=2000000",
        ],
        &url,
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    tandem: Tandem,
    src: std::path::PathBuf,
    base: u16,
    legs: [SocketAddr; 2],
}

fn setup() -> Option<Setup> {
    if !peer("ffmpeg") || !peer("ffprobe") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), SECS);
    let tandem = Tandem::start(&dir.path().join("data"), &[]);
    let base = free_base();
    let legs = [
        format!("127.0.0.1:{base}").parse().unwrap(),
        format!("127.0.0.1:{}", base + 10).parse().unwrap(),
    ];
    Some(Setup {
        _dir: dir,
        tandem,
        src,
        base,
        legs,
    })
}

/// Runs ffmpeg through the relay into a flow forwarding to one capture
/// socket; returns the relay's report, the captured datagrams and the
/// flow as `tandem udp show` prints it once the stream ended.
fn run_rtp(s: &Setup, plan: Plan, extra: &[&str]) -> (Report, Vec<Vec<u8>>, Value) {
    let out = big_socket();
    let target = format!("rtp://{}", out.local_addr().unwrap());
    let (l0, l1) = (s.legs[0].to_string(), s.legs[1].to_string());
    let mut args = vec![
        "create",
        "f",
        "--mode",
        "rtp-2022-7",
        "--leg0",
        &l0,
        "--leg1",
        &l1,
        "--forward",
        &target,
    ];
    args.extend(extra);
    let v = udp(&s.tandem, &args);
    assert_eq!(v["state"], "running", "{v}");
    let captured = capture(out, Duration::from_secs(3), Duration::from_secs(60));
    let relay = Relay::start(plan);
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut ff = ffmpeg_rtp(&s.src, relay.addr, &rtcp);
    let report = relay.finish();
    let _ = ff.wait();
    let got = captured.join().unwrap();
    // The status is refreshed every 200 ms.
    std::thread::sleep(Duration::from_millis(500));
    let shown = udp(&s.tandem, &["show", "f"]);
    (report, got, shown)
}

/// `ffprobe` reads `datagrams`' TS payloads (after `strip` header bytes)
/// without an error, and finds the video and the audio.
fn assert_probes_clean(dir: &Path, datagrams: &[Vec<u8>], strip: usize) {
    let path = dir.join("forwarded.ts");
    let ts: Vec<u8> = datagrams.iter().flat_map(|d| d[strip..].to_vec()).collect();
    std::fs::write(&path, ts).unwrap();
    let (ok, out, err) = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name"])
        .arg(&path));
    assert!(ok && err.is_empty(), "ffprobe: {err}");
    assert!(
        out.contains("codec_name=h264") && out.contains("codec_name=aac"),
        "{out}"
    );
}

/// Deterministic 1 % of indices.
fn one_percent(i: u64) -> bool {
    i.wrapping_mul(2_654_435_761).is_multiple_of(100)
}

#[test]
fn rtp_legs_with_losses_on_each_merge_into_exactly_what_ffmpeg_sent() {
    let Some(s) = setup() else { return };
    let (report, got, shown) = run_rtp(&s, losses_on_each_leg(s.legs), &[]);
    let n = report.original.len();
    assert!(n > 1000, "ffmpeg sent {n} datagrams");
    assert!(report.sent[0] < n as u64 && report.sent[1] < n as u64);
    assert_eq!(got.len(), n, "every datagram forwarded once: {shown}");
    assert!(
        got == report.original,
        "forwarded bytes equal ffmpeg's, in order"
    );
    let st = &shown["status"];
    assert_eq!(st["output"]["lost"], 0, "{shown}");
    assert_eq!(st["output"]["packets"], n as u64);
    assert!(st["legs"][0]["recovered_from_other"].as_u64().unwrap() > 0);
    assert!(st["legs"][1]["recovered_from_other"].as_u64().unwrap() >= 50);
    assert_probes_clean(s._dir.path(), &got, 12);
}

/// Leg 0 loses 1 % at random, leg 1 bursts of 50 every 400: never both.
fn losses_on_each_leg(legs: [SocketAddr; 2]) -> Plan {
    let burst = |i: u64| i % 400 >= 200 && i % 400 < 250;
    Plan {
        legs,
        drop: Box::new(move |i, leg| match leg {
            0 => one_percent(i) && !burst(i),
            _ => burst(i),
        }),
        silence: None,
        fec: None,
    }
}

#[test]
fn a_recorded_flow_writes_rollover_files_of_its_output_that_archive_verify_finds_whole() {
    let Some(s) = setup() else { return };
    let (report, got, shown) = run_rtp(
        &s,
        losses_on_each_leg(s.legs),
        &["--record", "--record-rollover", "2"],
    );
    assert_eq!(got.len(), report.original.len(), "{shown}");
    // Deleting the flow publishes the file it had open.
    let (ok, _, err) = run(Command::new(bin())
        .arg("--data")
        .arg(&s.tandem.data)
        .args(["udp", "delete", "f"]));
    assert!(ok, "tandem udp delete: {err}");
    let folder = s.tandem.data.join("objects/s3.buckets/udp-recordings/f");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (0..names.len()).map(|i| format!("f.{i:06}.ts")).collect();
    assert_eq!(names, expected);
    // 12 s of stream in 2 s files.
    assert!((6..=7).contains(&names.len()), "{names:?}");
    // The files hold exactly the TS that went out, in order.
    let recorded: Vec<u8> = names
        .iter()
        .flat_map(|n| std::fs::read(folder.join(n)).unwrap())
        .collect();
    let forwarded: Vec<u8> = got.iter().flat_map(|d| d[12..].to_vec()).collect();
    assert!(
        recorded == forwarded,
        "recorded {} bytes, forwarded {}",
        recorded.len(),
        forwarded.len()
    );
    // Each is cut before a PAT. (The first starts with the stream, whose
    // first packet from ffmpeg is its SDT.)
    for n in &names[1..] {
        let f = std::fs::read(folder.join(n)).unwrap();
        assert_eq!(&f[..3], &[0x47, 0x40, 0], "{n} starts with a PAT");
    }
    // And the archive check finds every index whole.
    let out = Command::new(bin())
        .arg("--data")
        .arg(&s.tandem.data)
        .args([
            "archive",
            "verify",
            "s3://udp-recordings/f/",
            "s3://udp-recordings/f/",
            "--rollover",
            "2",
            "--json",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "archive verify: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let rows = report["indexes"].as_array().unwrap();
    assert_eq!(rows.len(), names.len(), "{report}");
}

#[test]
fn an_rtp_leg_stopped_for_3_s_and_resumed_loses_nothing() {
    let Some(s) = setup() else { return };
    let plan = Plan {
        legs: s.legs,
        drop: Box::new(|_, _| false),
        silence: Some((0, Duration::from_secs(3), Some(Duration::from_secs(6)))),
        fec: None,
    };
    let (report, got, shown) = run_rtp(&s, plan, &[]);
    let n = report.original.len();
    assert!(
        report.sent[0] + 200 < n as u64,
        "leg 0 was silent: {report:?}"
    );
    assert_eq!(got.len(), n, "{shown}");
    assert!(
        got == report.original,
        "forwarded bytes equal ffmpeg's, in order"
    );
    // Leg 0 came back after its 3 s, and the flow said so.
    let back = shown["events"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "udp_leg_restored"
            && e["leg"] == 0
            && e["silent_ms"]
                .as_u64()
                .is_some_and(|ms| (2900..3500).contains(&ms))
    });
    assert!(back, "{shown}");
    assert_eq!(shown["status"]["output"]["lost"], 0);
    assert_probes_clean(s._dir.path(), &got, 12);
}

#[test]
fn fec_repairs_what_both_legs_lost() {
    let Some(s) = setup() else { return };
    // 4 × 4 matrices. Both legs lose, in even matrices, two packets of
    // one column (rows repair them), in odd matrices two of one row
    // (columns repair them). Leg 1 also loses a burst of its own.
    let both = |i: u64| {
        let (m, k) = (i / 16, i % 16);
        if m % 2 == 0 {
            k == 5 || k == 13
        } else {
            k == 8 || k == 10
        }
    };
    let plan = Plan {
        legs: s.legs,
        drop: Box::new(move |i, leg| both(i) || (leg == 1 && i % 500 < 30)),
        silence: None,
        fec: Some((4, 4)),
    };
    let (report, got, shown) = run_rtp(&s, plan, &[]);
    let n = report.original.len() as u64;
    assert!(report.fec_sent > 0);
    // The last matrix, cut short by the end of the stream, has no column
    // FEC: what both legs lost there is lost.
    let full = n / 16 * 16;
    let repairable = (0..full).filter(|&i| both(i)).count() as u64;
    assert!(repairable > 100, "{repairable}");
    let expected: Vec<Vec<u8>> = (0..n)
        .filter(|&i| i < full || !both(i))
        .map(|i| report.original[i as usize].clone())
        .collect();
    assert_eq!(got.len(), expected.len(), "complete output: {shown}");
    assert!(got == expected, "rebuilt packets are bit-exact");
    let st = &shown["status"]["output"];
    assert_eq!(st["recovered_by_fec"].as_u64(), Some(repairable), "{shown}");
    assert!(st["lost"].as_u64().unwrap() <= 2, "{shown}");
    assert_probes_clean(s._dir.path(), &got, 12);
}

/// Milliseconds since the epoch of an RFC 3339 time with milliseconds
/// (`2026-11-27T23:02:48.488Z`).
fn rfc3339_ms(t: &str) -> i64 {
    let n = |a: usize, b: usize| t[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[test]
fn a_killed_plain_udp_leg_switches_within_the_threshold_and_the_output_decodes_cleanly() {
    let Some(s) = setup() else { return };
    let out = big_socket();
    let target = format!("udp://{}", out.local_addr().unwrap());
    let (l0, l1) = (s.legs[0].to_string(), s.legs[1].to_string());
    udp(
        &s.tandem,
        &[
            "create",
            "sw",
            "--mode",
            "udp-switch",
            "--leg0",
            &l0,
            "--leg1",
            &l1,
            "--forward",
            &target,
        ],
    );
    let captured = capture(out, Duration::from_secs(3), Duration::from_secs(60));
    // Leg 0 dies 4 s in, for good.
    let relay = Relay::start(Plan {
        legs: s.legs,
        drop: Box::new(|_, _| false),
        silence: Some((0, Duration::from_secs(4), None)),
        fec: None,
    });
    // Paced at the mux rate by ffmpeg's UDP protocol, as a broadcast
    // encoder sends: no gap near the 100 ms threshold but the kill.
    let url = format!("udp://{}?pkt_size=1316&bitrate=2000000", relay.addr);
    let mut ff = ffmpeg_send(&s.src, &["-f", "mpegts", "-muxrate", "2000000"], &url);
    let report = relay.finish();
    let _ = ff.wait();
    let got = captured.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let shown = udp(&s.tandem, &["show", "sw"]);
    let switch = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "udp_switch" && e["reason"] == "silence")
        .unwrap_or_else(|| panic!("no switch on silence: {shown}"))
        .clone();
    assert_eq!(
        (switch["from"].as_u64(), switch["to"].as_u64()),
        (Some(0), Some(1))
    );
    let died = report.last_sent[0]
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let after = rfc3339_ms(switch["time"].as_str().unwrap()) - died;
    // The threshold is 100 ms; the rest is the event's timer and log.
    assert!(
        (100..=350).contains(&after),
        "switched {after} ms after leg 0's last datagram"
    );
    assert_eq!(shown["status"]["output"]["switches"], 1);
    // The output: every datagram ffmpeg sent, once, in order.
    assert_eq!(got.len(), report.original.len(), "{shown}");
    assert!(got == report.original, "forwarded bytes equal ffmpeg's");
    let path = s._dir.path().join("switched.ts");
    std::fs::write(&path, got.concat()).unwrap();
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"]));
    assert!(ok && err.is_empty(), "decoding the switched output: {err}");
    let _ = s.base;
}
