//! UDP flows through the control API: created flows run at once, deleted
//! ones free their ports, stored ones start with the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use serde_json::Value;
use support::{TestServer, metric_value, scrape};

/// A port whose +0, +2 and +4 (and +10, +12, +14) are free now.
fn free_base() -> u16 {
    for _ in 0..200 {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base < 60000
            && [0, 2, 4, 10, 12, 14]
                .iter()
                .all(|o| UdpSocket::bind(("127.0.0.1", base + o)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports")
}

async fn call(s: &TestServer, method: &str, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {}", s.state.admin_token);
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = s.send(method, path, &h, body.as_bytes()).await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Seven TS packets of PID 0x100 with running continuity counters.
fn ts(i: u8) -> Vec<u8> {
    let mut v = Vec::new();
    for k in 0..7u8 {
        v.extend_from_slice(&[
            0x47,
            0x01,
            0x00,
            0x10 | ((i.wrapping_mul(7).wrapping_add(k)) & 15),
        ]);
        v.extend(std::iter::repeat_n(i, 184));
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_created_through_the_api_runs_at_once_and_is_refused_when_wrong() {
    let s = TestServer::start(|_| {}).await;
    let base = free_base();
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    out.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = out.local_addr().unwrap();
    let body = |id: &str, l0: u16, l1: u16| {
        format!(
            r#"{{"id":"{id}","mode":"udp-switch","legs":["127.0.0.1:{l0}","127.0.0.1:{l1}"],"forward":["udp://{target}"]}}"#
        )
    };
    let r = s
        .send(
            "POST",
            "/api/v1/udp",
            &[],
            body("f", base, base + 10).as_bytes(),
        )
        .await;
    assert_eq!(r.status, 401);
    let (st, v) = call(&s, "POST", "/api/v1/udp", &body("f", base, base + 10)).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["state"], "running");
    assert_eq!(v["legs"][1], format!("127.0.0.1:{}", base + 10));
    // Refusals, each with the reason.
    let (st, v) = call(&s, "POST", "/api/v1/udp", &body("f", base + 20, base + 30)).await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (409, "udp flow f already exists")
    );
    let (st, v) = call(&s, "POST", "/api/v1/udp", &body("g", base + 20, base + 20)).await;
    assert_eq!(st, 400);
    assert!(
        v["error"].as_str().unwrap().contains("two different legs"),
        "{v}"
    );
    let (st, v) = call(&s, "POST", "/api/v1/udp", &body("g", base, base + 20)).await;
    assert_eq!(st, 409, "the port is taken by flow f: {v}");
    assert!(v["error"].as_str().unwrap().contains("cannot bind"), "{v}");
    let (st, v) = call(
        &s,
        "POST",
        "/api/v1/udp",
        r#"{"id":"g","mode":"udp-switch","legs":["127.0.0.1:99999","127.0.0.1:1"],"forward":["udp://127.0.0.1:9"]}"#,
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("is not [SOURCE@]ADDR:PORT"),
        "{v}"
    );
    // The running flow forwards what leg 0 receives and drops garbage.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.send_to(b"not a transport stream", ("127.0.0.1", base))
        .unwrap();
    for i in 0..20u8 {
        tx.send_to(&ts(i), ("127.0.0.1", base)).unwrap();
    }
    let mut buf = [0u8; 2048];
    for i in 0..20u8 {
        let n = out.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &ts(i)[..], "datagram {i} forwarded unchanged");
    }
    let mut shown = Value::Null;
    for _ in 0..50 {
        shown = call(&s, "GET", "/api/v1/udp/f", "").await.1;
        if shown["status"]["output"]["packets"] == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["status"]["output"]["packets"], 20, "{shown}");
    assert_eq!(shown["status"]["legs"][0]["invalid"], 1, "{shown}");
    // Silent since: lost after the 100 ms threshold, and said so.
    for _ in 0..50 {
        if shown["events"].as_array().is_some_and(|e| e.len() >= 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        shown = call(&s, "GET", "/api/v1/udp/f", "").await.1;
    }
    let kinds: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["udp_switch", "udp_leg_lost"], "{shown}");
    assert_eq!(shown["events"][1]["leg"], 0);
    let m = scrape(&s).await;
    assert_eq!(
        metric_value(&m, r#"tandem_udp_output_packets_total{flow="f"}"#),
        Some(20.0)
    );
    assert_eq!(
        metric_value(&m, r#"tandem_udp_leg_invalid_total{flow="f",leg="0"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &m,
            r#"tandem_udp_events_total{flow="f",kind="udp_leg_lost"}"#
        ),
        Some(1.0)
    );
    let (_, glance) = call(&s, "GET", "/api/v1/status", "").await;
    assert_eq!(
        glance["udp"][0]["id"], "f",
        "the status page lists the flow"
    );
    assert_eq!(glance["udp"][0]["output_packets"], 20);
    let (st, list) = call(&s, "GET", "/api/v1/udp", "").await;
    assert_eq!((st, list.as_array().unwrap().len()), (200, 1));
    // Deleted: gone, and its ports free when the answer comes.
    assert_eq!(call(&s, "DELETE", "/api/v1/udp/f", "").await.0, 204);
    UdpSocket::bind(("127.0.0.1", base)).expect("the leg's port is free again");
    assert_eq!(call(&s, "GET", "/api/v1/udp/f", "").await.0, 404);
    assert_eq!(call(&s, "DELETE", "/api/v1/udp/f", "").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_flow_starts_with_the_server() {
    let s = TestServer::start(|_| {}).await;
    let base = free_base();
    let body = format!(
        r#"{{"id":"keep","mode":"rtp-2022-7","legs":["127.0.0.1:{base}","127.0.0.1:{}"],"forward":["rtp://127.0.0.1:9"],"skew_ms":150}}"#,
        base + 10
    );
    assert_eq!(call(&s, "POST", "/api/v1/udp", &body).await.0, 201);
    let s = s.restart(|_| {}).await;
    let (st, v) = call(&s, "GET", "/api/v1/udp/keep", "").await;
    assert_eq!(st, 200);
    assert_eq!(
        (v["state"].as_str(), v["skew_ms"].as_u64()),
        (Some("running"), Some(150))
    );
    assert!(
        UdpSocket::bind(("127.0.0.1", base + 2)).is_err(),
        "the FEC port is bound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_flow_continues_the_counter_and_publishes_its_file_when_deleted() {
    let s = TestServer::start(|_| {}).await;
    let base = free_base();
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    out.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let target = out.local_addr().unwrap();
    let body = |extra: &str| {
        format!(
            r#"{{"id":"rec","mode":"udp-switch","legs":["127.0.0.1:{base}","127.0.0.1:{}"],"forward":["udp://{target}"]{extra}}}"#,
            base + 10
        )
    };
    for (extra, why) in [
        (
            r#","record_rollover_secs":10"#,
            "--record-rollover applies to flows that record",
        ),
        (
            r#","record":true,"record_rollover_secs":0"#,
            "a rollover of 0 s is out of range",
        ),
    ] {
        let (st, v) = call(&s, "POST", "/api/v1/udp", &body(extra)).await;
        assert_eq!(st, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(why), "{v}");
    }
    // An earlier recording of this flow left index 4.
    let folder = s.on_disk("s3.buckets/udp-recordings/rec");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("rec.000004.ts"), ts(99)).unwrap();
    let (st, v) = call(
        &s,
        "POST",
        "/api/v1/udp",
        &body(r#","record":true,"record_rollover_secs":60"#),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["record_rollover_secs"].as_u64(), v["recording"].as_str()),
        (Some(60), Some("s3://udp-recordings/rec/")),
        "{v}"
    );
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..20u8 {
        tx.send_to(&ts(i), ("127.0.0.1", base)).unwrap();
        // Forwarded, so offered to the recording.
        let n = out.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &ts(i)[..]);
    }
    // Nothing is published while the file is open.
    assert!(!folder.join("rec.000005.ts").exists());
    assert_eq!(call(&s, "DELETE", "/api/v1/udp/rec", "").await.0, 204);
    let sent: Vec<u8> = (0..20u8).flat_map(ts).collect();
    assert_eq!(std::fs::read(folder.join("rec.000005.ts")).unwrap(), sent);
    assert_eq!(std::fs::read(folder.join("rec.000004.ts")).unwrap(), ts(99));
    let m = scrape(&s).await;
    assert_eq!(
        metric_value(&m, r#"tandem_udp_record_files_total{flow="rec"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, r#"tandem_udp_record_bytes_total{flow="rec"}"#),
        Some(sent.len() as f64)
    );
}
