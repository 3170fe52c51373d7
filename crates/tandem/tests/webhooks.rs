//! Webhooks with real encoders: two ffmpeg pipelines push the demo channel,
//! one is killed, and a receiver on loopback gets the `input_lost` and the
//! `switch` as the operator's alerting system would, within the loss
//! threshold and a margin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;
// The receiver the server crate's webhook tests use.
#[path = "../../tandem-server/tests/support/receiver.rs"]
mod receiver;

use std::process::Command;
use std::time::{Duration, Instant};

use receiver::Receiver;
use serde_json::Value;
use support::{Tandem, peer};

/// 1.5 × the 2 s target duration: when the merge declares a pipeline lost.
const THRESHOLD: Duration = Duration::from_secs(3);

#[test]
fn killing_one_ffmpeg_pipeline_sends_input_lost_and_a_switch_to_the_webhook() {
    if !peer("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nurl = \"{}\"\nname = \"ops\"\nbearer_token = \"hook-token\"\n",
            rx.url("/tandem/events")
        ),
    )
    .unwrap();
    let src = support::make_source(dir.path(), 40);
    let t = Tandem::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(t.banner.contains("webhook: ops"), "{}", t.banner);
    let push = |p: usize| {
        let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
        support::ffmpeg_hls(&src, &["-method", "PUT"], &url)
    };
    let mut p0 = push(0);
    std::thread::sleep(Duration::from_millis(300));
    let mut p1 = push(1);
    // The output starts on pipeline 0: the first switch reaches the receiver.
    let started = |got: &[receiver::Received]| {
        got.iter()
            .any(|r| r.json()["kind"] == "switch" && r.json()["reason"] == "started")
    };
    assert!(
        rx.wait_for(Duration::from_secs(20), started),
        "{:?}",
        rx.received()
    );
    // Both pipelines run for a while, then pipeline 0 dies.
    std::thread::sleep(Duration::from_secs(10));
    p0.kill().unwrap(); // SIGKILL
    p0.wait().unwrap();
    let killed = Instant::now();
    let mut lost_at = None;
    let mut switched_at = None;
    while killed.elapsed() < Duration::from_secs(20) && (lost_at.is_none() || switched_at.is_none())
    {
        let got: Vec<Value> = rx.received().iter().map(|r| r.json()).collect();
        if lost_at.is_none()
            && got
                .iter()
                .any(|e| e["kind"] == "input_lost" && e["pipeline"] == 0)
        {
            lost_at = Some(killed.elapsed());
        }
        if switched_at.is_none()
            && got.iter().any(|e| {
                e["kind"] == "switch"
                    && e["from"] == "0"
                    && e["to"] == "1"
                    && e["reason"] == "stalled"
            })
        {
            switched_at = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = p1.kill();
    let _ = p1.wait();
    let got = rx.received();
    let events: Vec<Value> = got.iter().map(|r| r.json()).collect();
    eprintln!(
        "after the kill: input_lost arrived at {lost_at:?}, the switch at {switched_at:?}; {} events received",
        events.len()
    );
    let (lost_at, switched_at) = (
        lost_at.unwrap_or_else(|| panic!("no input_lost for pipeline 0: {events:#?}")),
        switched_at.unwrap_or_else(|| panic!("no switch 0 → 1: {events:#?}")),
    );
    // The loss is detected at the threshold after the last segment, which
    // may be up to one target duration before the kill; then the event is
    // posted at once.
    let limit = THRESHOLD + Duration::from_secs(2);
    assert!(
        lost_at <= limit && switched_at <= limit,
        "{lost_at:?} {switched_at:?}"
    );
    // What arrived is the server's event, whole, to this receiver's path,
    // with its token, and only the default kinds.
    for r in &got {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/tandem/events")
        );
        assert_eq!(r.header("authorization"), Some("Bearer hook-token"));
        assert_eq!(r.header("x-tandem-event"), r.json()["kind"].as_str());
    }
    let lost = events.iter().find(|e| e["kind"] == "input_lost").unwrap();
    assert_eq!(lost["channel"], "demo");
    assert_eq!(lost["rendition"], "live/channel.m3u8");
    assert!(lost["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        events.iter().all(|e| [
            "switch",
            "input_lost",
            "input_restored",
            "segment_missing",
            "ended"
        ]
        .contains(&e["kind"].as_str().unwrap())),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["kind"] == "input_lost" && e["pipeline"] == 1),
        "{events:#?}"
    );
    // Ids increase: one stream, in order.
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    drop(t);
}

#[test]
fn serve_refuses_a_bad_webhook_or_archive_setting_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(support::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "off",
            "--mediastore-listen",
            "off",
            "--data",
        ])
        .arg(&data)
        .args(["--webhook", "alerts.example.com/hook"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: webhook \"alerts.example.com/hook\": no scheme; expected http://… or https://…"
    );
    let out = Command::new(support::bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "off",
            "--mediastore-listen",
            "off",
            "--data",
        ])
        .arg(&data)
        .args(["--archive-check-every", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: archive_check_every_secs (--archive-check-every): 0 s is outside 1 to 3600 s"
    );
    // Nothing was created for a server that did not start.
    assert!(!data.exists());
}
