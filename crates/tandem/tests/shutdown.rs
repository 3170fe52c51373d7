//! SIGTERM: in-flight uploads either complete or are discarded, never
//! half-published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use support::{Tandem, pattern};

fn start_upload(t: &Tandem, name: &str, len: usize, sent: &[u8]) -> TcpStream {
    let input = &t.demo[0];
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", input.username, input.password));
    let mut s = TcpStream::connect(t.addr).unwrap();
    write!(s, "PUT /in/demo/0/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nContent-Length: {len}\r\n\r\n").unwrap();
    s.write_all(sent).unwrap();
    s
}

fn wait_staged(t: &Tandem, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(t.data.join("staging")).unwrap().count() < n {
        assert!(
            Instant::now() < deadline,
            "uploads never reached the staging area"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `secs` for the server to exit; kills it and fails if it
/// does not (so a hang is a failure, not a stuck test).
fn wait_exit(t: &mut Tandem, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = t.child.kill();
            panic!(
                "tandem did not exit within {secs} s of SIGTERM; log:\n{}",
                std::fs::read_to_string(&t.log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until both listeners have logged that they stopped accepting and
/// are draining (the server has acted on SIGTERM).
fn wait_draining(t: &Tandem) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&t.log).unwrap_or_default();
        if log
            .matches("shutting down: waiting for in-flight requests")
            .count()
            >= 2
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never started draining; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(t: &Tandem) {
    let pid = t.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_and_publishes_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Tandem::start(&dir.path().join("data"), &[]);
    let body = pattern(4_000_000, 5);
    let mut s = start_upload(&t, "live/seg.ts", body.len(), &body[..2_000_000]);
    wait_staged(&t, 1);
    sigterm(&t);
    // The rest of the body arrives only once the server is draining.
    wait_draining(&t);
    // New connections are refused from now on.
    assert!(TcpStream::connect(t.addr).is_err(), "still accepting");
    s.write_all(&body[2_000_000..]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = wait_exit(&mut t, 20);
    assert!(status.success(), "graceful exit: {status:?}");
    assert!(std::fs::read(t.object("demo/0/live/seg.ts")).unwrap() == body);
}

#[test]
fn sigterm_discards_an_upload_still_unfinished_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("grace.toml");
    std::fs::write(&config, "shutdown_grace_secs = 1\n").unwrap();
    let data = dir.path().join("data");
    let mut t = Tandem::start(&data, &["--config", config.to_str().unwrap()]);
    let input = t.demo[0].clone();
    assert_eq!(
        t.request("PUT", "/in/demo/0/live/channel.m3u8", Some(&input), b"v1")
            .0,
        201
    );
    let _s = start_upload(&t, "live/channel.m3u8", 4_000_000, &pattern(2_000_000, 9));
    wait_staged(&t, 1);
    sigterm(&t);
    // The grace period is 1 s: well within 20 s unless shutdown hangs.
    let status = wait_exit(&mut t, 20);
    assert!(status.success(), "exits after the grace period: {status:?}");
    assert_eq!(
        std::fs::read(t.object("demo/0/live/channel.m3u8")).unwrap(),
        b"v1"
    );
    let t2 = Tandem::start(&data, &[]);
    assert_eq!(
        t2.request("GET", "/in/demo/0/live/channel.m3u8", Some(&input), b"")
            .1,
        b"v1"
    );
    assert_eq!(std::fs::read_dir(data.join("staging")).unwrap().count(), 0);
}
