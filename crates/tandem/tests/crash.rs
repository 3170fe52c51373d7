//! SIGKILL with uploads in flight: nothing published is lost, nothing
//! partial becomes visible, channels survive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use support::{Tandem, pattern};

#[test]
fn sigkill_with_ten_uploads_in_flight_loses_nothing_published_and_shows_nothing_partial() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut t = Tandem::start(&data, &[]);
    let input = t.demo[0].clone();
    // A second channel, created through the API, must survive too.
    let (status, _) = support::http(
        t.addr,
        "POST",
        "/api/v1/channels",
        None,
        br#"{"id":"news"}"#,
    );
    assert_eq!(status, 401, "the API needs the token");
    let token = t.token();
    let mut s = TcpStream::connect(t.addr).unwrap();
    write!(s, "POST /api/v1/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"id\":\"news\"}}").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let whole: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("done/seg{i}.ts"),
                pattern(400_000 + i * 1000, i as u32),
            )
        })
        .collect();
    for (name, body) in &whole {
        assert_eq!(
            t.request("PUT", &format!("/in/demo/0/{name}"), Some(&input), body)
                .0,
            201
        );
    }
    // Version 1 of a playlist that an interrupted upload will try to replace.
    assert_eq!(
        t.request(
            "PUT",
            "/in/demo/0/done/channel.m3u8",
            Some(&input),
            b"#EXTM3U\nv1\n"
        )
        .0,
        201
    );

    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", input.username, input.password));
    let mut in_flight = Vec::new();
    for i in 0..10 {
        let mut s = TcpStream::connect(t.addr).unwrap();
        let name = if i == 0 {
            "done/channel.m3u8".to_owned()
        } else {
            format!("cut/seg{i}.ts")
        };
        write!(s, "PUT /in/demo/0/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nContent-Length: 4000000\r\n\r\n").unwrap();
        // Past the store's in-memory batch, so each upload is staged on disk.
        s.write_all(&pattern(1_600_000, 100 + i)).unwrap();
        in_flight.push((name, s));
    }
    // Wait until every interrupted upload is staged on disk, then kill.
    let staging = data.join("staging");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&staging).unwrap().count() < 10 {
        assert!(
            Instant::now() < deadline,
            "uploads never reached the staging area"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.child.kill().unwrap(); // SIGKILL
    t.child.wait().unwrap();
    drop(in_flight);

    let t2 = Tandem::start(&data, &[]);
    let input = &t2.demo[0];
    assert_eq!(
        input.password, t.demo[0].password,
        "the demo channel and its credentials survive"
    );
    for (name, body) in &whole {
        let (status, got) = t2.request("GET", &format!("/in/demo/0/{name}"), Some(input), b"");
        assert_eq!(status, 200, "{name}");
        assert!(got == *body, "{name} is intact");
    }
    assert_eq!(
        t2.request("GET", "/in/demo/0/done/channel.m3u8", Some(input), b"")
            .1,
        b"#EXTM3U\nv1\n"
    );
    for i in 1..10 {
        assert_eq!(
            t2.request(
                "GET",
                &format!("/in/demo/0/cut/seg{i}.ts"),
                Some(input),
                b""
            )
            .0,
            404,
            "seg{i}"
        );
        assert!(!t2.object(&format!("demo/0/cut/seg{i}.ts")).exists());
    }
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "staged leftovers are discarded at start"
    );
    let token = t2.token();
    let mut s = TcpStream::connect(t2.addr).unwrap();
    write!(s, "GET /api/v1/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    assert!(
        answer.contains("\"id\":\"news\"") && answer.contains("\"id\":\"demo\""),
        "{answer}"
    );
}
