//! Running the real `tandem` binary, and real peers, in tests.
//!
//! [`peer`] is the one place that decides whether a test with an external
//! peer runs: a missing peer prints `SKIPPED: <peer> not installed` and the
//! test passes, unless `TANDEM_REQUIRE_PEERS=1`, where it fails.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

pub mod player;
pub mod udp_relay;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A live ffmpeg HLS encoder: `src` in real time, 2 s segments, a window
/// of six, program date-times, written to `out` (a URL, with `upload`
/// naming the method and options, or a local playlist path).
pub fn ffmpeg_hls(src: &Path, upload: &[&str], out: &str) -> Child {
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
        ])
        .args(upload)
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Whether `name` is on PATH. Prints the skip notice, or panics when peers
/// are required.
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

/// Whether python3 can import `module`; same rules as [`peer`].
pub fn python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("TANDEM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{module} not installed, and TANDEM_REQUIRE_PEERS=1 requires it (run .ci/run to install peers)"
            );
        }
        eprintln!("SKIPPED: {module} not installed");
    }
    ok
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tandem")
}

/// One input as the banner printed it.
#[derive(Debug, Clone)]
pub struct Input {
    pub url: String,
    pub username: String,
    pub password: String,
}

/// A running `tandem serve`, killed on drop.
pub struct Tandem {
    pub child: Child,
    pub data: PathBuf,
    pub base: String,
    pub addr: SocketAddr,
    pub demo: Vec<Input>,
    pub banner: String,
    pub log: PathBuf,
    /// The S3 listener's endpoint, from the banner.
    pub s3: String,
}

impl Drop for Tandem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tandem {
    /// Starts `tandem serve --data DATA --listen 127.0.0.1:0 EXTRA…` and
    /// reads its banner.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_on(data, "127.0.0.1:0", extra)
    }

    /// As [`start`](Self::start), listening on `listen` (a restarted
    /// process keeps the address encoders were given). Appends to the log,
    /// so earlier runs on the same data directory stay readable.
    pub fn start_on(data: &Path, listen: &str, extra: &[&str]) -> Self {
        let log = data.with_extension("log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--listen",
                listen,
                "--s3-listen",
                "127.0.0.1:0",
                "--mediastore-listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .env_remove("TANDEM_LISTEN")
            .env_remove("TANDEM_DATA")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
                panic!(
                    "tandem exited or stalled before its banner; stdout so far:\n{banner}\nlog:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            banner.push_str(&line);
            if line.starts_with("output:") || line.contains("channel(s)") {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
        let base = banner
            .lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned();
        let authority = base.split("://").nth(1).unwrap();
        let addr: SocketAddr = authority.parse().unwrap();
        let field = |label: &str| -> Vec<String> {
            banner
                .lines()
                .filter_map(|l| l.trim().strip_prefix(label))
                .map(|v| v.trim().to_owned())
                .collect()
        };
        let (urls, users, passwords) = (field("URL:"), field("username:"), field("password:"));
        let demo = (0..urls.len())
            .map(|i| Input {
                url: urls[i].clone(),
                username: users[i].clone(),
                password: passwords[i].clone(),
            })
            .collect();
        let s3 = banner
            .lines()
            .find_map(|l| l.strip_prefix("S3 (archive pairs): "))
            .and_then(|r| r.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        Self {
            child,
            data: data.to_path_buf(),
            base,
            addr,
            demo,
            banner,
            log,
            s3,
        }
    }

    /// Creates an archive pair through the control API; returns its JSON.
    pub fn create_archive(&self, id: &str) -> serde_json::Value {
        let out = Command::new(bin())
            .args(["--data"])
            .arg(&self.data)
            .args(["archive", "create", id, "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// An input URL with credentials in it, as ffmpeg takes them.
    pub fn url_with_credentials(&self, input: &Input, path: &str) -> String {
        let (scheme, rest) = input.url.split_once("://").unwrap();
        format!(
            "{scheme}://{}:{}@{rest}{path}",
            input.username, input.password
        )
    }

    pub fn object(&self, key: &str) -> PathBuf {
        self.data.join("objects").join(key)
    }

    /// One plain-HTTP request with Basic credentials; returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        basic: Option<&Input>,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        http(self.addr, method, path, basic, body)
    }
}

/// A minimal blocking HTTP/1.1 exchange (Connection: close).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    basic: Option<&Input>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use base64::Engine;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(i) = basic {
        let b = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", i.username, i.password));
        head.push_str(&format!("Authorization: Basic {b}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let status = String::from_utf8_lossy(&raw[..end])
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, raw[end..].to_vec())
}

/// Runs a command to completion, returning (status ok, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic pseudo-random bytes, so a failure can be reproduced.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A live-like test source: H.264 with a keyframe every 2 s (so HLS
/// segments cut at 2 s) and AAC, as MPEG-TS, `secs` long.
pub fn make_source(dir: &Path, secs: u32) -> PathBuf {
    let src = dir.join("source.ts");
    let (ok, _, err) = run(Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
        ])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "mpegts"])
        .arg(&src));
    assert!(ok, "{err}");
    src
}

/// The AWS CLI against one endpoint with one key pair, isolated from the
/// machine's AWS configuration.
pub struct Aws<'a> {
    pub endpoint: &'a str,
    pub key: (String, String),
}

impl Aws<'_> {
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("aws");
        c.args(["--endpoint-url", self.endpoint]).args(args);
        // Only the transfer commands take this flag (`s3 mb`, `s3 rb` refuse it).
        if args.first() == Some(&"s3")
            && matches!(args.get(1), Some(&("cp" | "sync" | "mv" | "rm")))
        {
            c.arg("--only-show-errors");
        }
        c.env("AWS_ACCESS_KEY_ID", &self.key.0)
            .env("AWS_SECRET_ACCESS_KEY", &self.key.1)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        c
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = run(&mut self.cmd(args));
        assert!(ok, "aws {args:?} failed: {err}");
        out
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.ok(&all);
        if out.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&out).unwrap()
        }
    }
}

/// An archive pair's key pair for `pipeline`, from the API's JSON.
pub fn archive_keys(archive: &serde_json::Value, pipeline: usize) -> (String, String) {
    let d = &archive["destinations"][pipeline];
    (
        d["access_key_id"].as_str().unwrap().to_owned(),
        d["secret_access_key"].as_str().unwrap().to_owned(),
    )
}
