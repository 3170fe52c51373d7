//! A server on a loopback port with a temporary data directory, and a raw
//! HTTP/1.1 client that sends exactly the bytes a test asks for.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod receiver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use md5::{Digest, Md5};
use tandem_core::InputCredentials;
use tandem_server::{AppState, Clock, ManualClock, Server, ServerConfig, SystemClock};
use tandem_store::{LocalStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The S3 listener.
    pub s3: SocketAddr,
    /// The MediaStore-style listener.
    pub mediastore: SocketAddr,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server's run, until it has shut down.
    task: Option<tokio::task::JoinHandle<()>>,
    /// Set when the test drives time (see [`TestServer::start_clocked`]).
    pub clock: Option<Arc<ManualClock>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::start_with(None, tweak).await
    }

    pub async fn start_with(
        store: Option<Arc<dyn Store>>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        Self::launch(tempfile::tempdir().unwrap(), store, None, tweak).await
    }

    /// A server whose time moves only by `self.clock.advance(…)`.
    pub async fn start_clocked(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let clock = Arc::new(ManualClock::new());
        Self::launch(tempfile::tempdir().unwrap(), None, Some(clock), tweak).await
    }

    /// Stops the server gracefully (as SIGTERM does: ingest drains, each
    /// output saves its last step) and starts a new one on the same data
    /// directory, with the same clock, on new ports.
    pub async fn restart(mut self, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("the server stops within 30 s")
                .unwrap();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let clock = self.clock.clone();
        // The channel database is open once per process: the old state goes first.
        drop(self);
        Self::launch(dir, None, clock, tweak).await
    }

    async fn launch(
        dir: tempfile::TempDir,
        store: Option<Arc<dyn Store>>,
        manual: Option<Arc<ManualClock>>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
        cfg.s3_listen = Some("127.0.0.1:0".parse().unwrap());
        cfg.mediastore_listen = Some("127.0.0.1:0".parse().unwrap());
        // The host's free space is not the test's business: no `disk_low`
        // unless a test asks for it (events are numbered server-wide).
        cfg.disk_low_percent = 0.0;
        cfg.disk_low_bytes = 0;
        tweak(&mut cfg);
        let store = store.unwrap_or_else(|| Arc::new(LocalStore::open(dir.path()).unwrap()));
        let clock: Arc<dyn Clock> = match &manual {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let server = Server::bind_with(cfg, store, clock).await.unwrap();
        let addr = server.local_addr().unwrap();
        let s3 = server.s3_addr().unwrap_or(addr);
        let mediastore = server.mediastore_addr().unwrap_or(addr);
        let state = server.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            s3,
            mediastore,
            state,
            dir,
            stop: Some(tx),
            task: Some(task),
            clock: manual,
        }
    }

    pub fn creds(&self, channel: &str, pipeline: usize) -> InputCredentials {
        let id = tandem_core::ChannelId::parse(channel).unwrap();
        self.state.channels.get(&id).unwrap().spec.inputs[pipeline].clone()
    }

    pub fn basic(&self, channel: &str, pipeline: usize) -> String {
        let c = self.creds(channel, pipeline);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.username, c.password))
        )
    }

    /// The file an object is published as, on disk.
    pub fn on_disk(&self, key: &str) -> std::path::PathBuf {
        self.dir.path().join("objects").join(key)
    }

    pub fn staged_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("staging"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// One request on a fresh connection (`Connection: close` added).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.send_to(self.addr, method, path, headers, body).await
    }

    /// One request to `addr` (the main or the S3 listener).
    pub async fn send_to(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        }) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        read_response(&mut s, method == "HEAD").await
    }

    pub async fn put(&self, path: &str, auth: &str, body: &[u8]) -> Resp {
        self.send("PUT", path, &[("Authorization", auth)], body)
            .await
    }

    pub async fn get(&self, path: &str, auth: &str) -> Resp {
        self.send("GET", path, &[("Authorization", auth)], b"")
            .await
    }

    /// Polls `cond` for up to two seconds: for effects of another task
    /// (a dropped upload's cleanup), not for timing.
    pub async fn eventually(&self, cond: impl Fn() -> bool) -> bool {
        for _ in 0..200 {
            if cond() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response: head, then a Content-Length or chunked body.
pub async fn read_response(s: &mut TcpStream, head_only: bool) -> Resp {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 65536];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
            .await
            .expect("response within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before a response head; got {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut rest = buf[header_end..].to_vec();
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            let n = s.read(&mut tmp).await.unwrap();
            assert!(n > 0, "body cut short");
            rest.extend_from_slice(&tmp[..n]);
        }
        rest.truncate(len);
        rest
    } else if find("transfer-encoding").is_some() {
        loop {
            if rest.ends_with(b"0\r\n\r\n") {
                break;
            }
            let n = s.read(&mut tmp).await.unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        dechunk(&rest)
    } else {
        let _ = s.read_to_end(&mut rest).await;
        rest
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 4 + size..];
    }
}

/// A Digest (MD5, qop=auth) Authorization header for `challenge`, as
/// ffmpeg computes it.
pub fn digest_md5(
    challenge: &str,
    creds: &InputCredentials,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let h = |s: String| {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h(format!("{}:tandem:{}", creds.username, creds.password));
    let ha2 = h(format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let resp = h(format!("{ha1}:{nonce}:{nc}:0a4f113b:auth:{ha2}"));
    format!(
        "Digest username=\"{}\", realm=\"tandem\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5, response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"0a4f113b\"",
        creds.username
    )
}

/// The `/metrics` exposition text.
pub async fn scrape(srv: &TestServer) -> String {
    let r = srv.send("GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    r.text()
}

/// The value of one series (`name{labels…}` exactly as exposed, or a bare
/// name) in an exposition text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// A Digest (qop=auth) Authorization header for `challenge` with any
/// RFC 7616 algorithm (`MD5`, `MD5-sess`, `SHA-256`, `SHA-256-sess`),
/// computed here independently of the server's code.
pub fn digest_with(
    challenge: &str,
    username: &str,
    password: &str,
    algorithm: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let sha256 = algorithm.to_ascii_uppercase().starts_with("SHA-256");
    let h = |s: String| -> String {
        let bytes: Vec<u8> = if sha256 {
            sha2::Sha256::digest(s.as_bytes()).to_vec()
        } else {
            Md5::digest(s.as_bytes()).to_vec()
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    let cnonce = "f2a3b4c5d6e7";
    let mut ha1 = h(format!("{username}:tandem:{password}"));
    if algorithm.to_ascii_lowercase().ends_with("-sess") {
        ha1 = h(format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = h(format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let resp = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{username}\", realm=\"tandem\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm={algorithm}, response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\", opaque=\"tandem\""
    )
}
