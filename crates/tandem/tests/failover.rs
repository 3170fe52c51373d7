//! Failover with real encoders: two ffmpeg pipelines push the same source
//! (identical segment numbering, program date-times from each process's
//! clock) while a reader polls the merged output every 500 ms and downloads
//! every new segment, as a player would. Pipelines are killed with SIGKILL
//! and restarted; the output must keep going.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Tandem, http, peer, run};

/// Target duration and loss threshold (1.5 × target) of this setup.
const TARGET: f64 = 2.0;
const THRESHOLD: f64 = 3.0;

fn push(t: &Tandem, p: usize, src: &Path) -> Child {
    let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(src)
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_list_size",
            "6",
            "-hls_flags",
            "program_date_time",
            "-method",
            "PUT",
            &url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// One output position as the reader saw it.
struct Position {
    uri: String,
    bytes: Vec<u8>,
    first_seen: Instant,
    /// The output's own EXT-X-PROGRAM-DATE-TIME, in ms.
    pdt: Option<i64>,
    duration: f64,
    discontinuity: bool,
}

#[derive(Default)]
struct Seen {
    /// Output media sequence → what the reader saw there.
    segments: BTreeMap<u64, Position>,
    /// EXT-X-MEDIA-SEQUENCE of every poll, in order.
    media_sequences: Vec<u64>,
    errors: Vec<String>,
}

/// Polls the output playlist every 500 ms and downloads each new segment.
fn reader(t: &Tandem, stop: Arc<AtomicBool>) -> (std::thread::JoinHandle<()>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (addr, out) = (t.addr, seen.clone());
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = http(addr, "GET", "/out/demo/live/channel.m3u8", None, b"");
            if status == 200 {
                let text = String::from_utf8_lossy(&body).into_owned();
                let pl = tandem_hls::parse_media(&text).unwrap();
                let mut s = out.lock().unwrap();
                s.media_sequences.push(pl.media_sequence);
                for (i, seg) in pl.segments.iter().enumerate() {
                    let n = pl.msn_of(i);
                    if let Some(known) = s.segments.get(&n) {
                        if known.uri != seg.uri {
                            let e =
                                format!("position {n} was {} and is now {}", known.uri, seg.uri);
                            s.errors.push(e);
                        }
                        continue;
                    }
                    let (st, bytes) = http(
                        addr,
                        "GET",
                        &format!("/out/demo/live/{}", seg.uri),
                        None,
                        b"",
                    );
                    if st != 200 {
                        s.errors.push(format!("segment {n} {}: HTTP {st}", seg.uri));
                    }
                    s.segments.insert(
                        n,
                        Position {
                            uri: seg.uri.clone(),
                            bytes,
                            first_seen: Instant::now(),
                            pdt: seg.program_date_time,
                            duration: seg.duration,
                            discontinuity: seg.discontinuity,
                        },
                    );
                }
            } else if status != 404 {
                out.lock()
                    .unwrap()
                    .errors
                    .push(format!("playlist: HTTP {status}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    (handle, seen)
}

fn events(t: &Tandem) -> Vec<Value> {
    let token = t.token();
    let mut s = std::net::TcpStream::connect(t.addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /api/v1/channels/demo/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let v: Value = serde_json::from_str(body).unwrap();
    v["events"].as_array().unwrap().clone()
}

enum Action {
    Kill(usize),
    Start(usize),
}

/// Runs both pipelines through `actions` (each `secs` after the previous)
/// and checks what a player saw. Returns the switch events.
fn scenario(dir: &Path, actions: &[(f64, Action)], tail_secs: f64) -> Vec<Value> {
    let total: f64 = actions.iter().map(|(s, _)| s).sum::<f64>() + tail_secs;
    let src = support::make_source(dir, total as u32 + 20);
    let t = Tandem::start(&dir.join("data"), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, seen) = reader(&t, stop.clone());
    let mut encoders: [Option<Child>; 2] = [Some(push(&t, 0, &src)), None];
    std::thread::sleep(Duration::from_millis(300));
    encoders[1] = Some(push(&t, 1, &src));
    for (secs, action) in actions {
        std::thread::sleep(Duration::from_secs_f64(*secs));
        match action {
            Action::Kill(p) => {
                let mut c = encoders[*p].take().expect("running");
                c.kill().unwrap(); // SIGKILL
                c.wait().unwrap();
            }
            Action::Start(p) => encoders[*p] = Some(push(&t, *p, &src)),
        }
    }
    std::thread::sleep(Duration::from_secs_f64(tail_secs));
    let events = events(&t);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    for c in encoders.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let seen = seen.lock().unwrap();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);

    // The media sequence never went backwards.
    assert!(
        seen.media_sequences.windows(2).all(|w| w[0] <= w[1]),
        "{:?}",
        seen.media_sequences
    );
    // Every output segment was read, whole, with no gap in the sequence.
    let first = *seen
        .segments
        .keys()
        .next()
        .expect("the output produced segments");
    let last = *seen.segments.keys().last().unwrap();
    assert_eq!(
        seen.segments.len() as u64,
        last - first + 1,
        "no segment was skipped by the output"
    );
    assert!(
        seen.segments.len() as f64 >= (total - 10.0) / TARGET,
        "only {} segments in {total} s",
        seen.segments.len()
    );
    let mut concat = Vec::new();
    for (n, p) in &seen.segments {
        assert!(
            !p.bytes.is_empty() && p.bytes.len() % 188 == 0 && p.bytes[0] == 0x47,
            "segment {n} {} is not whole MPEG-TS ({} bytes)",
            p.uri,
            p.bytes.len()
        );
        concat.extend_from_slice(&p.bytes);
    }
    // The output's own program date-times: every position carries one,
    // they strictly increase (no moment played twice, none back in time),
    // and where the output claims continuity (no EXT-X-DISCONTINUITY) the
    // next segment starts where the previous one ended, within one target
    // duration (the two encoders' clocks differ by the 0.3 s between their
    // starts).
    let positions: Vec<(&u64, &Position)> = seen.segments.iter().collect();
    for w in positions.windows(2) {
        let ((a, pa), (b, pb)) = (w[0], w[1]);
        let (ta, tb) = (pa.pdt.unwrap(), pb.pdt.unwrap());
        assert!(
            tb > ta,
            "position {b} ({}) starts at {tb}, not after {a} ({}) at {ta}",
            pb.uri,
            pa.uri
        );
        if !pb.discontinuity {
            let end = ta + (pa.duration * 1000.0).round() as i64;
            assert!(
                (tb - end).abs() <= (TARGET * 1000.0) as i64,
                "position {b} ({}) starts {} ms from the end of {a} ({}) with no discontinuity",
                pb.uri,
                tb - end,
                pa.uri
            );
        }
    }
    // The concatenated output decodes without a single error.
    let file = dir.join("output.ts");
    std::fs::write(&file, &concat).unwrap();
    let (_, _, err) = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"]));
    assert_eq!(err, "", "ffmpeg -v error on the concatenated output");
    // The output never stood still longer than the loss threshold plus one
    // target duration (plus the reader's polling interval).
    let appeared: Vec<Instant> = seen.segments.values().map(|p| p.first_seen).collect();
    let longest = appeared
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "longest standstill of the output: {:.2} s",
        longest.as_secs_f64()
    );
    assert!(
        longest.as_secs_f64() <= THRESHOLD + TARGET + 0.5,
        "the output stood still for {longest:?}"
    );
    events
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn the_output_survives_killing_and_restarting_either_ffmpeg_pipeline() {
    if !peer("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let events = scenario(
        dir.path(),
        &[
            (12.0, Action::Kill(0)),
            (10.0, Action::Start(0)),
            (12.0, Action::Kill(1)),
        ],
        10.0,
    );
    let switches: Vec<(Value, Value, Value, Value)> = of_kind(&events, "switch")
        .iter()
        .map(|e| {
            (
                e["from"].clone(),
                e["to"].clone(),
                e["reason"].clone(),
                e["discontinuity"].clone(),
            )
        })
        .collect();
    let s = |x: &str| Value::String(x.into());
    assert_eq!(
        switches,
        vec![
            (Value::Null, s("0"), s("started"), Value::Bool(false)),
            (s("0"), s("1"), s("stalled"), Value::Bool(false)),
            (s("1"), s("0"), s("stalled"), Value::Bool(true)),
        ],
        "{events:#?}"
    );
    let lost: Vec<&Value> = of_kind(&events, "input_state")
        .into_iter()
        .filter(|e| e["to"] == "lost")
        .collect();
    assert_eq!(
        lost.iter()
            .map(|e| e["pipeline"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1],
        "{events:#?}"
    );
    let restarts = of_kind(&events, "input_restarted");
    assert_eq!(restarts.len(), 1);
    assert_eq!(restarts[0]["pipeline"], 0);
    // A stalled pipeline is left at the loss threshold after its last
    // advance: the other pipeline's next segment is ready by then (it runs
    // 0.3 s behind), so the timer decides, not the next upload.
    for e in of_kind(&events, "switch").iter().skip(1) {
        let delay = e["switch_delay_ms"].as_u64().unwrap();
        eprintln!("switch {} -> {}: delay {delay} ms", e["from"], e["to"]);
        assert!(
            (3000..=3500).contains(&delay),
            "switch {} -> {} took {delay} ms after the last advance",
            e["from"],
            e["to"]
        );
    }
}

/// Measures switch delays over repeated kills (not part of the suite:
/// `cargo test -p tandem --test failover -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement of about two minutes, run by hand"]
fn switch_delay_over_repeated_kills() {
    if !peer("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Vec::new();
    for i in 0..6 {
        let p = i % 2;
        actions.push((11.0, Action::Kill(p)));
        actions.push((7.0, Action::Start(p)));
    }
    let events = scenario(dir.path(), &actions, 8.0);
    let mut delays: Vec<u64> = of_kind(&events, "switch")
        .iter()
        .filter(|e| e["reason"] == "stalled")
        .map(|e| e["switch_delay_ms"].as_u64().unwrap())
        .collect();
    eprintln!("switch delays (ms): {delays:?}");
    delays.sort_unstable();
    assert!(delays.len() >= 5, "{events:#?}");
    eprintln!(
        "median {} ms, worst {} ms over {} kills",
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
}
