//! Hostile load on the listeners: each attack comes from its own loopback
//! address (127.0.0.2, 127.0.0.3, …), as it would from another host, and
//! gets its status code, while the honest encoder on 127.0.0.1 keeps
//! uploading with Digest and its bytes are readable.
//!
//! Every attack is bounded in connections, requests and time; socket
//! timeouts are configured short (a second or less), and the failed
//! authentication limit runs on the injected clock.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::{Resp, TestServer, digest_md5, metric_value, read_response, scrape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `ip` (bound before connecting).
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let ip: IpAddr = ip.parse().unwrap();
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(ip, 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// One request on a fresh connection from `ip`.
async fn send_from(
    ip: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = connect_from(ip, to).await;
    s.write_all(request(method, path, to, headers, body).as_slice())
        .await
        .unwrap();
    read_response(&mut s, method == "HEAD").await
}

fn request(
    method: &str,
    path: &str,
    to: SocketAddr,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The honest encoder on 127.0.0.1: a PUT without credentials for the
/// challenge, then with Digest (as ffmpeg does); the object must then
/// read back with exactly its bytes. Returns how long the PUT took.
async fn honest_put(srv: &TestServer, name: &str) -> Duration {
    let path = format!("/in/demo/0/{name}");
    let body: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let challenge = send_from("127.0.0.1", srv.addr, "PUT", &path, &[], b"").await;
    assert_eq!(challenge.status, 401, "{}", challenge.text());
    let www = challenge
        .all("www-authenticate")
        .into_iter()
        .find(|c| c.contains("MD5"))
        .unwrap()
        .to_owned();
    let auth = digest_md5(&www, &srv.creds("demo", 0), "PUT", &path, 1);
    let r = send_from(
        "127.0.0.1",
        srv.addr,
        "PUT",
        &path,
        &[("Authorization", &auth)],
        &body,
    )
    .await;
    let took = started.elapsed();
    assert!(
        r.status == 201 || r.status == 204,
        "honest PUT: {} {}",
        r.status,
        r.text()
    );
    let back = send_from(
        "127.0.0.1",
        srv.addr,
        "GET",
        &path,
        &[("Authorization", &srv.basic("demo", 0))],
        b"",
    )
    .await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body, body, "the honest upload reads back whole");
    took
}

async fn refused(srv: &TestServer, listener: &str, reason: &str) -> f64 {
    let text = scrape(srv).await;
    metric_value(
        &text,
        &format!("tandem_refused_total{{listener=\"{listener}\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Reads whatever arrives until the peer closes or `limit` passes.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_and_slowloris_connections_do_not_stop_the_encoder() {
    // Long enough that opening 5,000 connections and five honest PUTs fit
    // inside it on a loaded machine (3 s did not, in one suite run of five).
    let timeout = Duration::from_secs(6);
    let srv = TestServer::start(|c| {
        c.limits.header_read_timeout = timeout;
    })
    .await;
    // 5,000 connections from ten addresses (500 each): half send nothing,
    // half send a request head one byte at a time and never finish it.
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    let opened = Instant::now();
    for i in 0..5_000usize {
        let ip = format!("127.0.0.{}", 2 + i % 10);
        let s = connect_from(&ip, srv.addr).await;
        if i % 2 == 0 {
            idle.push(s);
        } else {
            slow.push(s);
        }
    }
    let head = b"PUT /in/demo/0/slow.ts HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    let trickle = async {
        // A byte every 500 ms on each, never a whole head.
        for k in 0..5 {
            for s in slow.iter_mut() {
                let _ = s.write_all(&head[k..k + 1]).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let honest = async {
        for n in 0..5 {
            honest_put(&srv, &format!("seg{n}.ts")).await;
        }
        opened.elapsed()
    };
    let ((), done_at) = tokio::join!(trickle, honest);
    // Done while every hostile connection was still held: before the
    // first of them could have timed out.
    assert!(
        done_at < timeout,
        "the honest PUTs finished {done_at:?} after the attack began, not while it held its connections"
    );
    // The slowloris connections got 408; the idle ones were closed.
    let mut timeouts = 0;
    for s in slow.iter_mut() {
        let got = read_until_closed(s, timeout + Duration::from_secs(2)).await;
        if got.starts_with(b"HTTP/1.1 408") {
            timeouts += 1;
        }
    }
    assert_eq!(
        timeouts, 2_500,
        "every slowloris connection is answered 408"
    );
    for s in idle.iter_mut() {
        let got = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(
            got.is_empty(),
            "an idle connection is closed without an answer"
        );
    }
    assert!(refused(&srv, "http", "header_timeout").await >= 2_500.0);
    // Still serving once the attack is over.
    honest_put(&srv, "after.ts").await;
}

#[tokio::test]
async fn connections_over_the_limits_are_refused_or_make_room_for_the_encoder() {
    let srv = TestServer::start(|c| {
        c.limits.max_connections_per_ip = 20;
        c.limits.max_connections = 60;
    })
    .await;
    // One address past its limit: the extra connections get 429.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from("127.0.0.2", srv.addr).await);
    }
    let mut over = Vec::new();
    for _ in 0..10 {
        over.push(connect_from("127.0.0.2", srv.addr).await);
    }
    for s in &mut over {
        let got = read_until_closed(s, Duration::from_secs(3)).await;
        assert!(
            got.starts_with(b"HTTP/1.1 429"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // Three more addresses fill the listener with idle connections.
    for ip in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        for _ in 0..20 {
            held.push(connect_from(ip, srv.addr).await);
        }
    }
    // The listener is full of idle connections: the encoder's connections
    // close one of the busiest address's to get in, and upload.
    for n in 0..3 {
        honest_put(&srv, &format!("full{n}.ts")).await;
    }
    assert!(refused(&srv, "http", "connection_limit_per_ip").await >= 10.0);
    assert!(refused(&srv, "http", "connection_evicted").await >= 1.0);
}

#[tokio::test]
async fn oversized_request_heads_get_431_and_the_encoder_goes_on() {
    let srv = TestServer::start(|_| {}).await;
    // 1 MB of headers in one line, then 10,000 header lines.
    let big = format!(
        "GET /out/demo/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    // Short lines (50 KB in all, under the size limit): the line count
    // is what refuses them.
    let many = format!(
        "GET /out/demo/ HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "x:1\r\n".repeat(10_000)
    );
    // 100 KB: over the 64 KiB limit, under what the HTTP parser would
    // buffer by itself.
    let medium = format!(
        "GET /out/demo/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    for (ip, head) in [
        ("127.0.0.2", big),
        ("127.0.0.3", many),
        ("127.0.0.4", medium),
    ] {
        let s = connect_from(ip, srv.addr).await;
        let (mut rd, mut wr) = s.into_split();
        let writer = tokio::spawn(async move {
            // The server stops reading at its limit: the rest may not go.
            let _ = wr.write_all(head.as_bytes()).await;
            wr
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        assert!(
            got.starts_with(b"HTTP/1.1 431"),
            "{ip}: {:?}",
            String::from_utf8_lossy(&got)
        );
        writer.abort();
        honest_put(&srv, &format!("after-{ip}.ts")).await;
    }
    assert_eq!(refused(&srv, "http", "header_too_large").await, 3.0);
}

#[tokio::test]
async fn a_body_that_trickles_is_ended_with_408_and_stores_nothing() {
    let srv = TestServer::start(|c| {
        c.limits.body_min_rate = 1000;
        c.limits.body_min_rate_window = Duration::from_millis(300);
    })
    .await;
    let path = "/in/demo/1/trickle.ts";
    let mut s = connect_from("127.0.0.4", srv.addr).await;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 1000\r\n\r\n",
        srv.basic("demo", 1)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        // One byte every 50 ms: 20 bytes a second, far under 1000; at
        // most 5 s of it.
        for _ in 0..100 {
            if wr.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let honest = honest_put(&srv, "during-trickle.ts").await;
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
            .await
            .expect("the trickle is answered within 5 s")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    trickle.abort();
    assert!(honest < Duration::from_secs(1));
    let r = srv.get(path, &srv.basic("demo", 1)).await;
    assert_eq!(r.status, 404, "nothing of the trickle was published");
    assert_eq!(refused(&srv, "http", "body_too_slow").await, 1.0);
}

/// A syntactically whole SigV4 header with a signature that cannot match.
fn bad_sigv4(n: usize) -> Vec<(String, String)> {
    vec![
        (
            "Authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIAGUESS{n:08}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}",
                "0".repeat(64)
            ),
        ),
        ("x-amz-date".into(), "20260101T000000Z".into()),
        ("x-amz-content-sha256".into(), "UNSIGNED-PAYLOAD".into()),
    ]
}

/// `count` requests on one kept-alive connection from `ip`; the statuses.
async fn burst(
    ip: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    count: usize,
    headers: impl Fn(usize) -> Vec<(String, String)>,
) -> Vec<Resp> {
    let mut s = connect_from(ip, to).await;
    let mut out = Vec::new();
    for i in 0..count {
        let h = headers(i);
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if s.write_all(&request(method, path, to, &refs, b""))
            .await
            .is_err()
        {
            s = connect_from(ip, to).await;
            s.write_all(&request(method, path, to, &refs, b""))
                .await
                .unwrap();
        }
        let r = read_response(&mut s, false).await;
        if r.header("connection") == Some("close") {
            s = connect_from(ip, to).await;
        }
        out.push(r);
    }
    out
}

#[tokio::test]
async fn guessers_on_every_listener_get_429_and_the_encoder_is_not_locked_out() {
    let srv = TestServer::start_clocked(|c| {
        c.limits.auth_failures = 20;
        c.limits.auth_failure_window = Duration::from_secs(60);
    })
    .await;
    let clock = srv.clock.clone().unwrap();
    let path = "/in/demo/0/guess.ts";
    // Digest guesses at full speed from 127.0.0.2, each on the nonce of a
    // fresh challenge, as a guessing tool would.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..200 {
        let c = send_from("127.0.0.2", srv.addr, "GET", path, &[], b"").await;
        let auth = match c.status {
            401 => {
                let www = c
                    .all("www-authenticate")
                    .into_iter()
                    .find(|c| c.contains("MD5"))
                    .unwrap()
                    .to_owned();
                let guess = tandem_core::InputCredentials {
                    username: "demo_0".into(),
                    password: format!("guess{i}"),
                };
                digest_md5(&www, &guess, "GET", path, 1)
            }
            s => panic!("challenge answered {s}"),
        };
        let r = send_from(
            "127.0.0.2",
            srv.addr,
            "GET",
            path,
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        if r.status == 429 {
            retry_after = r.header("retry-after").map(str::to_owned);
        }
        statuses.push(r.status);
        if i == 100 {
            // The encoder is not slowed by its neighbour's guessing.
            honest_put(&srv, "while-guessing.ts").await;
        }
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // 20 a minute: one guess comes back every 3 s.
    assert_eq!(retry_after.as_deref(), Some("3"));
    // Thousands of bad S3 signatures from 127.0.0.3, a hundred on the
    // MediaStore listener from 127.0.0.4, wrong admin tokens from .5.
    let s3 = burst(
        "127.0.0.3",
        srv.s3,
        "GET",
        "/guess-bucket/x",
        2_000,
        bad_sigv4,
    )
    .await;
    assert!(s3[..20].iter().all(|r| r.status == 403), "{:?}", s3[0]);
    assert!(s3[20..].iter().all(|r| r.status == 429));
    let ms = burst(
        "127.0.0.4",
        srv.mediastore,
        "GET",
        "/guess/x",
        100,
        bad_sigv4,
    )
    .await;
    assert!(ms[..20].iter().all(|r| r.status == 403), "{:?}", ms[0]);
    assert!(
        ms[20..]
            .iter()
            .all(|r| r.status == 429 && r.header("retry-after").is_some())
    );
    let api = burst("127.0.0.5", srv.addr, "GET", "/api/v1/channels", 30, |i| {
        vec![("Authorization".into(), format!("Bearer wrong{i}"))]
    })
    .await;
    assert!(api[..20].iter().all(|r| r.status == 401));
    assert!(api[20..].iter().all(|r| r.status == 429));
    // The real encoder and the real admin still get in.
    honest_put(&srv, "after-guessing.ts").await;
    let token = format!("Bearer {}", srv.state.admin_token);
    let ok = send_from(
        "127.0.0.1",
        srv.addr,
        "GET",
        "/api/v1/channels",
        &[("Authorization", &token)],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    // Once a guess's worth of time has passed, the guesser may try again:
    // one try, then 429 again.
    clock.advance(Duration::from_secs(3));
    let again = burst("127.0.0.2", srv.addr, "GET", path, 2, |_| {
        vec![("Authorization".into(), "Basic ZGVtb18wOm5vcGU=".into())]
    })
    .await;
    assert_eq!((again[0].status, again[1].status), (401, 429));
    // Every refusal is counted.
    assert_eq!(
        refused(&srv, "http", "auth_failed").await,
        20.0 + 20.0 + 1.0
    );
    assert_eq!(refused(&srv, "s3", "auth_rate_limited").await, 1_980.0);
    assert_eq!(refused(&srv, "mediastore", "auth_rate_limited").await, 80.0);
    assert_eq!(
        refused(&srv, "http", "auth_rate_limited").await,
        180.0 + 10.0 + 1.0
    );
}
