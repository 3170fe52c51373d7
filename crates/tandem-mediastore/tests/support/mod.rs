//! A MediaStore listener over a temporary local store, a SigV4 signer
//! (`aws-sigv4`, independent of the server's verifier), an HTTP client
//! that streams, and the AWS CLI as a peer.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tandem_mediastore::{MediaStore, Settings};
use tandem_store::LocalStore;
use tokio::sync::mpsc;

/// Whether `name` is on PATH. Prints the skip notice, or panics when peers
/// are required (`TANDEM_REQUIRE_PEERS=1`).
pub fn peer(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("TANDEM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{name} not installed, and TANDEM_REQUIRE_PEERS=1 requires it (run .ci/run to install peers)"
            );
        }
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

pub const ADMIN_SECRET: &str = "admin-secret-token";
pub const KEY0: (&str, &str) = ("TDMNEWS0", "secret-zero-0000000000000000000000000000");
pub const KEY1: (&str, &str) = ("TDMNEWS1", "secret-one-11111111111111111111111111111");

pub struct Server {
    pub addr: SocketAddr,
    pub ms: MediaStore,
    pub _dir: tempfile::TempDir,
}

impl Server {
    /// A listener with the pair `news` (containers news-0 and news-1).
    pub async fn start(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStore::open(dir.path()).unwrap());
        let ms = MediaStore::new(store, settings, ADMIN_SECRET);
        ms.add_pair("news", [KEY0, KEY1]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = ms.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            addr,
            ms,
            _dir: dir,
        }
    }

    pub fn endpoint(&self, container: &str) -> String {
        format!("http://{}/{container}", self.addr)
    }
}

/// Signs for service `mediastore` in us-east-1.
#[derive(Clone)]
pub struct Signer {
    pub key: (String, String),
    pub region: String,
}

impl Signer {
    pub fn new(key: (&str, &str)) -> Self {
        Self {
            key: (key.0.into(), key.1.into()),
            region: "us-east-1".into(),
        }
    }

    /// Headers that sign the request. `body`: `None` signs
    /// `UNSIGNED-PAYLOAD` (what botocore sends for PutObject), `Some`
    /// signs the body's hash without an `x-amz-content-sha256` header.
    pub fn headers(
        &self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Vec<(String, String)> {
        let identity = Credentials::new(&self.key.0, &self.key.1, None, None, "test").into();
        let mut settings = SigningSettings::default();
        let claimed = extra
            .iter()
            .find(|(k, _)| *k == "x-amz-content-sha256")
            .map(|(_, v)| *v);
        let signable = match (claimed, body) {
            (Some(h), _) => SignableBody::Precomputed(h.to_owned()),
            (None, None) => {
                settings.payload_checksum_kind =
                    aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
                SignableBody::UnsignedPayload
            }
            (None, Some(b)) => SignableBody::Bytes(b),
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("mediastore")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let uri: http::Uri = url.parse().unwrap();
        let host = uri.authority().unwrap().to_string();
        let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
        all.extend_from_slice(extra);
        let req = SignableRequest::new(method, url, all.into_iter(), signable).unwrap();
        let (instr, _) = sign(req, &params).unwrap().into_parts();
        let mut out: Vec<(String, String)> = [("host", host.as_str())]
            .iter()
            .chain(extra)
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        out.extend(instr.headers().map(|(k, v)| (k.to_owned(), v.to_owned())));
        out
    }
}

/// A response, with its body read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Checks a MediaStore error: status, `__type` and `x-amzn-ErrorType`.
    pub fn assert_error(&self, status: u16, ty: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("x-amzn-errortype"), ty);
        let j = self.json();
        assert_eq!(j["__type"], ty, "{j}");
        assert!(j["Message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    }
}

pub type Sender = mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>;

/// Starts a request whose body the caller feeds through the returned
/// sender; drop it to end the body, send an `Err` to break it off.
pub async fn start_request(
    addr: SocketAddr,
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> (
    Sender,
    tokio::task::JoinHandle<Result<http::Response<hyper::body::Incoming>, hyper::Error>>,
) {
    let (tx, rx) = mpsc::channel(16);
    let body = StreamBody::new(tokio_stream_from(rx));
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    let req = b.body(body).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tokio::spawn(async move { send.send_request(req).await });
    (tx, resp)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Sends a whole request and reads the whole response.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Resp {
    let (tx, resp) = start_request(addr, method, url, headers).await;
    if !body.is_empty() {
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(body))))
            .await
            .unwrap();
    }
    drop(tx);
    let r = tokio::time::timeout(Duration::from_secs(20), resp)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// Runs `aws mediastore-data ARGS` against `endpoint` with `key`.
/// Returns (exit code, stdout, stderr).
pub fn aws(endpoint: &str, key: (&str, &str), args: &[&str]) -> (i32, String, String) {
    let out = Command::new("aws")
        .arg("mediastore-data")
        .args(args)
        .args(["--endpoint-url", endpoint])
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// As [`aws`], requiring success and parsing the JSON it prints.
pub fn aws_json(endpoint: &str, key: (&str, &str), args: &[&str]) -> serde_json::Value {
    let (code, out, err) = aws(endpoint, key, args);
    assert_eq!(code, 0, "aws {args:?} failed: {err}");
    if out.trim().is_empty() {
        // An operation with an empty answer (DeleteObject) prints nothing.
        return serde_json::Value::Null;
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("aws {args:?} printed {out:?}: {e}"))
}
