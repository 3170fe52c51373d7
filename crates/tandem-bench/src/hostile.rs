//! The honest encoder's upload latency, unloaded and under each hostile
//! load of the listeners: 5,000 idle and slowloris connections, 1 MB
//! heads, 10,000-line heads, trickling bodies, Digest guessing at full
//! speed and bad S3 signatures at full speed.
//!
//! The encoder uploads from 127.0.0.1 as ffmpeg does: a PUT without
//! credentials for the challenge, then the PUT with Digest (SHA-256), one
//! upload after the other. Each attacker binds its own loopback address
//! (127.0.0.2 and up) before connecting, as another host would be.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::scenarios::{Percentiles, Target};

/// One input's credentials.
#[derive(Debug, Clone)]
pub struct Creds {
    pub username: String,
    pub password: String,
}

/// Creates (or re-creates) a channel; input 0's credentials.
pub async fn channel(t: &Target, id: &str) -> anyhow::Result<Creds> {
    let v = crate::scenarios::create_channel_view(t, id).await?;
    let i = &v["inputs"][0];
    Ok(Creds {
        username: i["username"].as_str().context("username")?.to_owned(),
        password: i["password"].as_str().context("password")?.to_owned(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// The Digest SHA-256 header answering `challenge` (RFC 7616).
pub fn digest(challenge: &str, c: &Creds, method: &str, uri: &str) -> Option<String> {
    let nonce = challenge.split("nonce=\"").nth(1)?.split('"').next()?;
    let ha1 = sha(&format!("{}:tandem:{}", c.username, c.password));
    let ha2 = sha(&format!("{method}:{uri}"));
    let resp = sha(&format!("{ha1}:{nonce}:00000001:9b1c2d3e:auth:{ha2}"));
    Some(format!(
        "Digest username=\"{}\", realm=\"tandem\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=SHA-256, response=\"{resp}\", qop=auth, nc=00000001, cnonce=\"9b1c2d3e\"",
        c.username
    ))
}

/// One upload as ffmpeg makes it, on a fresh connection from 127.0.0.1:
/// the challenge, then the Digest PUT; its duration.
async fn upload(addr: SocketAddr, c: &Creds, path: &str, body: &[u8]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut s = connect_from(IpAddr::from([127, 0, 0, 1]), addr).await?;
    let host = addr.to_string();
    s.write_all(
        format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .await?;
    let ch = read_answer(&mut s)
        .await
        .context("no answer to the challenge request")?;
    if ch.status != 401 {
        bail!("challenge: HTTP {}", ch.status);
    }
    let www = ch
        .head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.contains("SHA-256"))
        .map(|(_, v)| v.trim().to_owned())
        .context("no SHA-256 challenge")?;
    let auth = digest(&www, c, "PUT", path).context("challenge without nonce")?;
    if ch.closes {
        s = connect_from(IpAddr::from([127, 0, 0, 1]), addr).await?;
    }
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let r = read_answer(&mut s).await.context("no answer to the PUT")?;
    if r.status / 100 != 2 {
        bail!("PUT {path}: HTTP {}", r.status);
    }
    Ok(started.elapsed())
}

/// The encoder's uploads for `count` rounds; their latencies.
pub async fn encoder(
    addr: SocketAddr,
    c: &Creds,
    count: usize,
    size: usize,
) -> anyhow::Result<Percentiles> {
    let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut v = Vec::with_capacity(count);
    for i in 0..count {
        let path = format!(
            "/in/{}/0/hostile/seg{}.ts",
            c.username.trim_end_matches("_0"),
            i % 32
        );
        v.push(upload(addr, c, &path, &body).await?);
    }
    Ok(Percentiles::of(v))
}

async fn connect_from(ip: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(ip, 0))?;
    s.connect(to).await
}

fn attacker(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// What an attack did while it ran.
#[derive(Debug, Default)]
pub struct AttackCount {
    /// Connections or requests made.
    pub sent: AtomicU64,
    /// Answers by class: the status the limit gives.
    pub limited: AtomicU64,
}

/// The hostile loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    Slowloris,
    HugeHead,
    ManyHeaderLines,
    TrickleBody,
    DigestGuessing,
    BadS3Signatures,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::Slowloris,
        Attack::HugeHead,
        Attack::ManyHeaderLines,
        Attack::TrickleBody,
        Attack::DigestGuessing,
        Attack::BadS3Signatures,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Attack::Slowloris => {
                "5,000 connections, half idle, half sending a head a byte a second"
            }
            Attack::HugeHead => "1 MB request heads, 2 at a time",
            Attack::ManyHeaderLines => "10,000-line request heads, 2 at a time",
            Attack::TrickleBody => "200 uploads sending their body a byte a second",
            Attack::DigestGuessing => "one client guessing Digest passwords at full speed",
            Attack::BadS3Signatures => "bad S3 signatures at full speed, 2 at a time",
        }
    }

    /// The answer the attacker is meant to get.
    pub fn expected(self) -> &'static str {
        match self {
            Attack::Slowloris => "408",
            Attack::HugeHead | Attack::ManyHeaderLines => "431",
            Attack::TrickleBody => "408",
            Attack::DigestGuessing | Attack::BadS3Signatures => "429",
        }
    }
}

/// Runs `attack` until `stop` is set.
pub async fn run_attack(
    attack: Attack,
    http: SocketAddr,
    s3: Option<SocketAddr>,
    creds: Creds,
    stop: Arc<AtomicBool>,
    count: Arc<AttackCount>,
    expected: u16,
) {
    let mut tasks = Vec::new();
    match attack {
        Attack::Slowloris => {
            let mut conns = Vec::new();
            for i in 0..5_000usize {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = connect_from(attacker(2 + (i % 10) as u8), http).await {
                    conns.push((i % 2 == 1, s));
                    count.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            let head = b"PUT /in/x/0/slow.ts HTTP/1.1\r\nHost: x\r\nX-Pad: ".repeat(100);
            let mut k = 0;
            let mut answered = vec![false; conns.len()];
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                for (j, (slow, s)) in conns.iter_mut().enumerate() {
                    if !*slow || answered[j] {
                        continue;
                    }
                    // The answer, once the head timeout has passed.
                    if let Ok(n) = s.try_read(&mut buf) {
                        answered[j] = true;
                        if buf[..n].starts_with(format!("HTTP/1.1 {expected}").as_bytes()) {
                            count.limited.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let _ = s.try_write(&head[k % head.len()..k % head.len() + 1]);
                }
                k += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return;
        }
        Attack::HugeHead | Attack::ManyHeaderLines => {
            let head = if attack == Attack::HugeHead {
                format!(
                    "GET /out/x/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                    "a".repeat(1 << 20)
                )
            } else {
                format!(
                    "GET /out/x/ HTTP/1.1\r\nHost: x\r\n{}\r\n",
                    "x:1\r\n".repeat(10_000)
                )
            };
            let head = Arc::new(head.into_bytes());
            for w in 0..2u8 {
                let (stop, count, head) = (stop.clone(), count.clone(), head.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(s) = connect_from(attacker(20 + w), http).await else {
                            continue;
                        };
                        let (mut rd, mut wr) = s.into_split();
                        let h = head.clone();
                        let writer = tokio::spawn(async move {
                            let _ = wr.write_all(&h).await;
                        });
                        count.sent.fetch_add(1, Ordering::Relaxed);
                        let mut buf = [0u8; 64];
                        if let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await
                            && buf[..n].starts_with(format!("HTTP/1.1 {expected}").as_bytes())
                        {
                            count.limited.fetch_add(1, Ordering::Relaxed);
                        }
                        writer.abort();
                    }
                }));
            }
        }
        Attack::TrickleBody => {
            let auth = crate::client::basic(&creds.username, &creds.password);
            let channel = creds.username.trim_end_matches("_0").to_owned();
            for i in 0..200usize {
                let (stop, count, auth, channel) =
                    (stop.clone(), count.clone(), auth.clone(), channel.clone());
                tasks.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(mut s) = connect_from(attacker(30 + (i % 10) as u8), http).await else {
                            return;
                        };
                        let head = format!(
                            "PUT /in/{channel}/0/trickle{i}.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 100000\r\n\r\n"
                        );
                        if s.write_all(head.as_bytes()).await.is_err() {
                            continue;
                        }
                        count.sent.fetch_add(1, Ordering::Relaxed);
                        let (mut rd, mut wr) = s.into_split();
                        let writer = tokio::spawn(async move {
                            for _ in 0..100_000 {
                                if wr.write_all(b"x").await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                        });
                        let mut tmp = [0u8; 64];
                        loop {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            match tokio::time::timeout(Duration::from_millis(500), rd.read(&mut tmp)).await {
                                Err(_) => continue,
                                Ok(Ok(n)) if n > 0 => {
                                    if tmp[..n].starts_with(format!("HTTP/1.1 {expected}").as_bytes()) {
                                        count.limited.fetch_add(1, Ordering::Relaxed);
                                    }
                                    break;
                                }
                                _ => break,
                            }
                        }
                        writer.abort();
                    }
                }));
            }
        }
        Attack::DigestGuessing | Attack::BadS3Signatures => {
            let to = if attack == Attack::BadS3Signatures {
                s3.unwrap_or(http)
            } else {
                http
            };
            let channel = creds.username.trim_end_matches("_0").to_owned();
            let workers: u8 = if attack == Attack::DigestGuessing {
                1
            } else {
                2
            };
            for w in 0..workers {
                let (stop, count, channel) = (stop.clone(), count.clone(), channel.clone());
                tasks.push(tokio::spawn(async move {
                    let ip = attacker(40 + w);
                    let mut n = 0u64;
                    let mut conn: Option<TcpStream> = None;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let req = if attack == Attack::BadS3Signatures {
                            format!(
                                "GET /guess-bucket/x HTTP/1.1\r\nHost: {to}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAGUESS{n:08}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={}\r\nx-amz-date: 20260101T000000Z\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\nContent-Length: 0\r\n\r\n",
                                "0".repeat(64)
                            )
                        } else {
                            let guess = Creds { username: format!("{channel}_0"), password: format!("guess{n}") };
                            let path = format!("/in/{channel}/0/x.ts");
                            // A nonce of this server is not needed to be
                            // refused; a well-formed header is enough.
                            let fake = "Digest realm=\"tandem\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"";
                            let auth = digest(fake, &guess, "GET", &path).unwrap_or_default();
                            format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\n\r\n")
                        };
                        let s = match conn.as_mut() {
                            Some(s) => s,
                            None => match connect_from(ip, to).await {
                                Ok(s) => conn.insert(s),
                                Err(_) => continue,
                            },
                        };
                        if s.write_all(req.as_bytes()).await.is_err() {
                            conn = None;
                            continue;
                        }
                        count.sent.fetch_add(1, Ordering::Relaxed);
                        match read_answer(s).await {
                            Some(a) => {
                                if a.status == expected {
                                    count.limited.fetch_add(1, Ordering::Relaxed);
                                }
                                if a.closes {
                                    conn = None;
                                }
                            }
                            None => conn = None,
                        }
                    }
                }));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// One whole response (Content-Length bodies) read on a kept-alive
/// connection: its status, head and whether the server closes.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub closes: bool,
}

async fn read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&tmp[..n]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let closes = head.to_ascii_lowercase().contains("connection: close");
    let mut have = buf.len() - end;
    while have < len {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp)).await {
            Ok(Ok(n)) if n > 0 => have += n,
            _ => return None,
        }
    }
    Some(Answer {
        status,
        head,
        closes,
    })
}

/// One row of the report.
#[derive(Debug)]
pub struct Row {
    pub attack: Attack,
    pub baseline: Percentiles,
    pub loaded: Percentiles,
    pub sent: u64,
    pub limited: u64,
    /// The server's log growth during the attack, bytes a second, when
    /// its log file was given.
    pub log_bytes_per_sec: Option<f64>,
}

/// The unloaded baseline and each attack in turn, the baseline measured
/// again before each so that the ratio compares neighbouring runs.
pub async fn report(
    t: &Target,
    s3: Option<SocketAddr>,
    uploads: usize,
    size: usize,
    attacks: &[Attack],
    server_log: Option<&std::path::Path>,
    mut each: impl FnMut(&Row),
) -> anyhow::Result<()> {
    let log_len = || {
        server_log
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    };
    let creds = channel(t, "bench-hostile").await?;
    // Warm-up: connections, the store's directories.
    encoder(t.addr, &creds, 50, size).await?;
    for &attack in attacks {
        let baseline = encoder(t.addr, &creds, uploads, size).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AttackCount::default());
        let expected: u16 = attack.expected().parse().unwrap_or(0);
        let (log_before, attack_started) = (log_len(), Instant::now());
        // The attackers on their own threads: their tasks must not queue
        // ahead of the encoder's in one runtime, which would count the
        // load generator's delays as the server's.
        let attack_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let task = attack_rt.spawn(run_attack(
            attack,
            t.addr,
            s3,
            creds.clone(),
            stop.clone(),
            count.clone(),
            expected,
        ));
        // Under way before the encoder starts: the slowloris connections
        // all open, the others a second in.
        let ramp = Instant::now();
        let want = if attack == Attack::Slowloris {
            5_000
        } else {
            1
        };
        while count.sent.load(Ordering::Relaxed) < want && ramp.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let loaded = encoder(t.addr, &creds, uploads, size).await;
        // Until the limit has answered the attackers (the head timeout,
        // the minimum rate's window), within bounds.
        let (settle_for, settled_at) = match attack {
            Attack::Slowloris => (Duration::from_secs(45), 2_500),
            Attack::TrickleBody => (Duration::from_secs(20), 200),
            _ => (Duration::ZERO, 0),
        };
        let settling = Instant::now();
        while count.limited.load(Ordering::Relaxed) < settled_at && settling.elapsed() < settle_for
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        attack_rt.shutdown_background();
        let log_bytes_per_sec = match (log_before, log_len()) {
            (Some(a), Some(b)) => {
                Some(b.saturating_sub(a) as f64 / attack_started.elapsed().as_secs_f64())
            }
            _ => None,
        };
        let loaded = loaded?;
        each(&Row {
            attack,
            baseline,
            loaded,
            sent: count.sent.load(Ordering::Relaxed),
            limited: count.limited.load(Ordering::Relaxed),
            log_bytes_per_sec,
        });
        // Let closed connections drain before the next baseline.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(())
}
