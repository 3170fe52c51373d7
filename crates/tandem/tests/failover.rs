//! Failover with real encoders: two ffmpeg pipelines push the same source
//! (identical segment numbering, program date-times from each process's
//! clock) while a reader polls the merged output every 500 ms and downloads
//! every new segment, as a player would. Pipelines are killed with SIGKILL
//! and restarted; the output must keep going.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::player::reader;
use support::{Tandem, peer};

/// Target duration and loss threshold (1.5 × target) of this setup.
const TARGET: f64 = 2.0;
const THRESHOLD: f64 = 3.0;

fn push(t: &Tandem, p: usize, src: &Path) -> Child {
    let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
    support::ffmpeg_hls(src, &["-method", "PUT"], &url)
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
    let (handle, seen) = reader(t.addr, "/out/demo/live/channel.m3u8", stop.clone());
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
    // Every output segment read whole, in order, nothing skipped, replayed
    // or jumped over; the two encoders' clocks differ by the 0.3 s between
    // their starts, within one target duration. The output never stood
    // still longer than the loss threshold plus one target duration (plus
    // the reader's polling interval).
    let longest = seen.lock().unwrap().assert_continuous(
        dir,
        ((total - 10.0) / TARGET).ceil() as usize,
        TARGET,
    );
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
