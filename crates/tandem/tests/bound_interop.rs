//! Interop of bound channels with real encoders: two ffmpeg pipelines push
//! the same live source into one channel by different routes, a reader
//! polls the merged output every 500 ms and downloads every new segment as
//! a player would, and killing either pipeline (SIGKILL) must leave the
//! output continuous, as `failover.rs` checks for two PUT pipelines.
//!
//! - Channel `mix`: pipeline 0 is ffmpeg's HLS muxer with `-method POST`
//!   straight into `/in/mix/0/`; pipeline 1 publishes into the
//!   MediaStore-style container `enc-1` under `live/`.
//! - Channel `buckets`: both pipelines publish into the S3 buckets `arc-0`
//!   and `arc-1` under `live/`.
//!
//! ffmpeg cannot sign requests (SigV4), so a pipeline bound to a container
//! or bucket is ffmpeg writing HLS to a local directory plus a small upload
//! adapter in this file, as an encoder's own uploader would be: a thread
//! watches the directory and, each time the playlist changes, uploads the
//! segments it names that were not uploaded yet, then the playlist (a
//! segment is complete once ffmpeg's playlist names it; ffmpeg renames the
//! playlist into place, so it is never read half-written).
//!
//! The uploads go through one long-lived `python3` process per pipeline
//! with boto3 (`mediastore-data` / `s3` `put_object`, the same botocore
//! requests `aws mediastore-data put-object` and `aws s3 cp` send for a
//! small file), fed file names on stdin. Spawning the AWS CLI per file costs
//! 0.6 s on an idle machine and about 3 s with a build running on 2 cores
//! (`aws --version` alone), twice per 2 s segment (segment, then playlist):
//! it cannot keep up with a live encoder, and its lag, not Tandem, would
//! decide the switch delays. boto3 answers a put in 20-100 ms.
//!
//! Killing a pipeline kills its ffmpeg and its adapter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::player::reader;
use support::{Tandem, http, peer, python_module};

/// Target duration and loss threshold (1.5 × target) of this setup.
const TARGET: f64 = 2.0;
const THRESHOLD: f64 = 3.0;
/// Jitter failover.rs allows over the threshold for direct PUT (the
/// switch timer, the 0.3 s between the encoders' starts).
const JITTER: f64 = 0.5;

/// The upload half of the adapter: one boto3 client, one object per line
/// `FILE\tKEY` on stdin, answered `ok MS` or `err MESSAGE`.
const UPLOADER: &str = r#"
import sys, time, boto3
from botocore.config import Config
kind, endpoint, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)
svc = "mediastore-data" if kind == "mediastore" else "s3"
c = boto3.client(svc, endpoint_url=endpoint, region_name="us-east-1", config=cfg)
print("ready", flush=True)
for line in sys.stdin:
    path, key = line.rstrip("\n").split("\t")
    t = time.monotonic()
    try:
        with open(path, "rb") as f:
            body = f.read()
        ctype = "application/vnd.apple.mpegurl" if key.endswith(".m3u8") else "video/MP2T"
        if kind == "mediastore":
            c.put_object(Body=body, Path=key, ContentType=ctype)
        else:
            c.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype)
        print("ok %.1f" % ((time.monotonic() - t) * 1000), flush=True)
    except Exception as e:
        print("err " + str(e).replace("\n", " "), flush=True)
"#;

/// Where one pipeline's HLS goes.
#[derive(Clone)]
enum Dest {
    /// ffmpeg itself, `-method POST`, to this URL (credentials in it).
    Post(String),
    /// The adapter, into a container or bucket, under `live/`.
    Upload {
        kind: &'static str,
        endpoint: String,
        bucket: String,
        key: (String, String),
    },
}

/// What one adapter measured.
#[derive(Default, Debug, Clone)]
struct AdapterStats {
    segments: usize,
    playlists: usize,
    /// Every put_object, in ms, as boto3 saw it.
    uploads_ms: Vec<f64>,
    /// ffmpeg renamed a playlist into place → that playlist uploaded
    /// (the segments it newly names uploaded before it), in ms.
    publish_ms: Vec<f64>,
    errors: Vec<String>,
}

struct Adapter {
    python: Child,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// One running pipeline: ffmpeg, and the adapter when it has one.
struct Running {
    ffmpeg: Child,
    adapter: Option<Adapter>,
}

impl Running {
    /// SIGKILL to the adapter's uploader and to ffmpeg.
    fn kill(mut self) {
        if let Some(a) = self.adapter.take() {
            a.stop.store(true, Ordering::Relaxed);
            let mut py = a.python;
            let _ = py.kill();
            let _ = py.wait();
            a.thread.join().unwrap();
        }
        let _ = self.ffmpeg.kill();
        let _ = self.ffmpeg.wait();
    }
}

/// Starts a pipeline; `work` is a fresh directory for its local files.
fn start(dest: &Dest, src: &Path, work: &Path, stats: Arc<Mutex<AdapterStats>>) -> Running {
    match dest {
        Dest::Post(url) => Running {
            ffmpeg: support::ffmpeg_hls(
                src,
                &["-method", "POST", "-ignore_io_errors", "1"],
                url.as_str(),
            ),
            adapter: None,
        },
        Dest::Upload {
            kind,
            endpoint,
            bucket,
            key,
        } => {
            let hls = work.join("hls");
            let snapshots = work.join("snapshots");
            std::fs::create_dir_all(&hls).unwrap();
            std::fs::create_dir_all(&snapshots).unwrap();
            let mut python = Command::new("python3")
                .args(["-c", UPLOADER, kind, endpoint, bucket])
                .env("AWS_ACCESS_KEY_ID", &key.0)
                .env("AWS_SECRET_ACCESS_KEY", &key.1)
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env_remove("AWS_PROFILE")
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap();
            let stdin = python.stdin.take().unwrap();
            let stdout = BufReader::new(python.stdout.take().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let (ready_tx, ready_rx) = mpsc::channel();
            let thread = {
                let (stop, hls) = (stop.clone(), hls.clone());
                std::thread::spawn(move || {
                    watch(stdin, stdout, &hls, &snapshots, &stop, &stats, ready_tx);
                })
            };
            // Uploader up (boto3 imported) before the encoder starts.
            ready_rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the boto3 uploader did not start within 30 s");
            let out = hls.join("index.m3u8");
            Running {
                ffmpeg: support::ffmpeg_hls(src, &[], out.to_str().unwrap()),
                adapter: Some(Adapter {
                    python,
                    stop,
                    thread,
                }),
            }
        }
    }
}

/// The adapter's watch loop: every 100 ms, if ffmpeg's playlist changed,
/// upload the segments it names that were not uploaded yet, then it.
fn watch(
    mut stdin: ChildStdin,
    mut stdout: BufReader<ChildStdout>,
    hls: &Path,
    snapshots: &Path,
    stop: &AtomicBool,
    stats: &Mutex<AdapterStats>,
    ready: mpsc::Sender<()>,
) {
    let mut line = String::new();
    if stdout.read_line(&mut line).unwrap_or(0) == 0 || line.trim() != "ready" {
        return;
    }
    let _ = ready.send(());
    // One upload, answered before the next is sent: the playlist goes
    // only after the segments it names.
    let mut upload = |file: &Path, name: &str| -> Option<f64> {
        writeln!(stdin, "{}\tlive/{name}", file.display()).ok()?;
        let mut answer = String::new();
        if stdout.read_line(&mut answer).ok()? == 0 {
            return None; // killed
        }
        let mut s = stats.lock().unwrap();
        match answer.trim().strip_prefix("ok ") {
            Some(ms) => {
                let ms: f64 = ms.parse().unwrap();
                s.uploads_ms.push(ms);
                Some(ms)
            }
            None => {
                if !stop.load(Ordering::Relaxed) {
                    s.errors.push(format!("live/{name}: {}", answer.trim()));
                }
                None
            }
        }
    };
    let playlist = hls.join("index.m3u8");
    let mut uploaded: HashSet<String> = HashSet::new();
    let mut last = String::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(text) = std::fs::read_to_string(&playlist) else {
            continue;
        };
        let renamed = std::fs::metadata(&playlist)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        if text == last || !text.ends_with('\n') {
            continue;
        }
        let Ok(pl) = tandem_hls::parse_media(&text) else {
            continue;
        };
        for seg in &pl.segments {
            if uploaded.contains(&seg.uri) {
                continue;
            }
            if upload(&hls.join(&seg.uri), &seg.uri).is_none() {
                return;
            }
            uploaded.insert(seg.uri.clone());
            stats.lock().unwrap().segments += 1;
        }
        // Upload what was read, not what ffmpeg may have renamed since.
        n += 1;
        let snap = snapshots.join(format!("{n}.m3u8"));
        std::fs::write(&snap, &text).unwrap();
        if upload(&snap, "index.m3u8").is_none() {
            return;
        }
        let publish = SystemTime::now()
            .duration_since(renamed)
            .unwrap_or_default();
        let mut s = stats.lock().unwrap();
        s.playlists += 1;
        s.publish_ms.push(publish.as_secs_f64() * 1000.0);
        last = text;
    }
}

/// One control-API request with the admin token; status and JSON body.
fn api(t: &Tandem, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = std::net::TcpStream::connect(t.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        t.token(),
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn events(t: &Tandem, channel: &str) -> Vec<Value> {
    let (status, v) = api(t, "GET", &format!("/api/v1/channels/{channel}/events"), "");
    assert_eq!(status, 200, "{v}");
    v["events"].as_array().unwrap().clone()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn create_channel(t: &Tandem, body: &str) -> Value {
    let (status, v) = api(t, "POST", "/api/v1/channels", body);
    assert_eq!(status, 201, "{v}");
    v
}

/// What a scenario produced, for the test's own assertions.
struct Outcome {
    events: Vec<Value>,
    /// The pipeline active when the first kill came (killed first).
    first: usize,
    adapters: [Option<AdapterStats>; 2],
    segments: usize,
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Both pipelines ~12 s; kill the active one (A); restart it 10 s later;
/// 10 s on, kill the other (B); 10 s of tail. Checks what a player saw as
/// failover.rs does, and the switches.
fn scenario(dir: &Path, t: &Tandem, channel: &str, dests: [Dest; 2]) -> Outcome {
    let (before_kill, down, both_again, tail) = (12.0, 10.0, 10.0, 10.0);
    let total = before_kill + down + both_again + tail;
    let src = support::make_source(dir, total as u32 + 30);
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, seen) = reader(t.addr, &format!("/out/{channel}/index.m3u8"), stop.clone());
    let stats: [Arc<Mutex<AdapterStats>>; 2] = Default::default();
    let mut runs = 0;
    let mut launch = |p: usize| {
        runs += 1;
        let work = dir.join(format!("p{p}-run{runs}"));
        start(&dests[p], &src, &work, stats[p].clone())
    };
    let mut pipelines: [Option<Running>; 2] = [Some(launch(0)), None];
    std::thread::sleep(Duration::from_millis(300));
    pipelines[1] = Some(launch(1));
    let started = Instant::now();

    std::thread::sleep(Duration::from_secs_f64(before_kill));
    let ev = events(t, channel);
    let switches = of_kind(&ev, "switch");
    assert_eq!(switches.len(), 1, "one pipeline active by now: {ev:#?}");
    let a: usize = switches[0]["to"].as_str().unwrap().parse().unwrap();
    let b = 1 - a;
    eprintln!(
        "[{channel}] pipeline {a} active after {:.1} s: killing it",
        started.elapsed().as_secs_f64()
    );
    pipelines[a].take().unwrap().kill();
    std::thread::sleep(Duration::from_secs_f64(down));
    eprintln!("[{channel}] restarting pipeline {a}");
    pipelines[a] = Some(launch(a));
    std::thread::sleep(Duration::from_secs_f64(both_again));
    eprintln!("[{channel}] killing pipeline {b}");
    pipelines[b].take().unwrap().kill();
    std::thread::sleep(Duration::from_secs_f64(tail));
    let events = events(t, channel);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    for r in pipelines.iter_mut().filter_map(Option::take) {
        r.kill();
    }

    let adapters: [Option<AdapterStats>; 2] = [0, 1]
        .map(|p| matches!(dests[p], Dest::Upload { .. }).then(|| stats[p].lock().unwrap().clone()));
    for (p, s) in adapters.iter().enumerate() {
        if let Some(s) = s {
            assert!(s.errors.is_empty(), "adapter {p}: {:?}", s.errors);
            assert!(s.playlists > 0 && s.segments > 0, "adapter {p}: {s:?}");
        }
    }
    // The slowest adapter publication: the most an upload route can add
    // to a standstill or a switch.
    let worst_publish = adapters
        .iter()
        .flatten()
        .map(|s| max(&s.publish_ms))
        .fold(0.0, f64::max)
        / 1000.0;

    // Every output segment read whole, in order, nothing skipped, replayed
    // or jumped over. The output never stood still longer than failover.rs
    // allows for PUT, plus the slowest publication through an adapter.
    let seen = seen.lock().unwrap();
    let longest = seen
        .assert_continuous(dir, ((total - 10.0) / TARGET).ceil() as usize, TARGET)
        .as_secs_f64();
    let allowed = THRESHOLD + TARGET + JITTER + worst_publish;
    eprintln!(
        "[{channel}] longest standstill of the output {longest:.2} s (allowed {allowed:.2} s)"
    );
    assert!(
        longest <= allowed,
        "the output stood still for {longest:.2} s"
    );
    Outcome {
        events,
        first: a,
        adapters,
        segments: seen.segments.len(),
    }
}

/// Checks the switch events: started on A, A→B when A was killed, B→A
/// (a discontinuity: A's encoder restarted) when B was killed; each stall
/// switch within the threshold plus the jitter failover.rs allows, plus
/// the slowest publication of the adapter switched to (its next segment
/// may still be on its way when the timer fires). Prints a summary.
fn check_switches(channel: &str, o: &Outcome) {
    let (a, b) = (o.first, 1 - o.first);
    let switches: Vec<(Value, Value, Value, Value)> = of_kind(&o.events, "switch")
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
    let s = |x: String| Value::String(x);
    assert_eq!(
        switches,
        vec![
            (
                Value::Null,
                s(a.to_string()),
                s("started".into()),
                Value::Bool(false)
            ),
            (
                s(a.to_string()),
                s(b.to_string()),
                s("stalled".into()),
                Value::Bool(false)
            ),
            (
                s(b.to_string()),
                s(a.to_string()),
                s("stalled".into()),
                Value::Bool(true)
            ),
        ],
        "{:#?}",
        o.events
    );
    let lost: Vec<u64> = of_kind(&o.events, "input_state")
        .into_iter()
        .filter(|e| e["to"] == "lost")
        .map(|e| e["pipeline"].as_u64().unwrap())
        .collect();
    assert_eq!(lost, vec![a as u64, b as u64], "{:#?}", o.events);
    let restarts = of_kind(&o.events, "input_restarted");
    assert_eq!(restarts.len(), 1, "{:#?}", o.events);
    assert_eq!(restarts[0]["pipeline"], a);

    let mut delays = Vec::new();
    for e in of_kind(&o.events, "switch").iter().skip(1) {
        let delay = e["switch_delay_ms"].as_u64().unwrap();
        let to: usize = e["to"].as_str().unwrap().parse().unwrap();
        let adapter = o.adapters[to].as_ref().map_or(0.0, |s| max(&s.publish_ms));
        let allowed = (THRESHOLD + JITTER) * 1000.0 + adapter;
        eprintln!(
            "[{channel}] switch {} -> {}: delay {delay} ms (allowed {:.0} ms: threshold 3000 + jitter 500 + slowest publication of pipeline {to} {adapter:.0})",
            e["from"], e["to"], allowed
        );
        assert!(
            delay >= (THRESHOLD * 1000.0) as u64 && delay as f64 <= allowed,
            "switch {} -> {} took {delay} ms after the last advance",
            e["from"],
            e["to"]
        );
        delays.push(delay);
    }
    let mut summary = format!(
        "[{channel}] summary: {} output segments, switches {:?}, stall switch delays {delays:?} ms",
        o.segments,
        switches
            .iter()
            .map(|(f, t, r, d)| format!(
                "{}->{} {}{}",
                f.as_str().unwrap_or("none"),
                t.as_str().unwrap_or("?"),
                r.as_str().unwrap_or("?"),
                if d == &Value::Bool(true) {
                    " (discontinuity)"
                } else {
                    ""
                }
            ))
            .collect::<Vec<_>>()
    );
    for (p, s) in o.adapters.iter().enumerate() {
        if let Some(s) = s {
            summary.push_str(&format!(
                "; adapter {p}: {} segments + {} playlists uploaded, put_object median {:.0} ms max {:.0} ms, playlist renamed → uploaded median {:.0} ms max {:.0} ms",
                s.segments,
                s.playlists,
                percentile(&s.uploads_ms, 0.5),
                max(&s.uploads_ms),
                percentile(&s.publish_ms, 0.5),
                max(&s.publish_ms),
            ));
        }
    }
    eprintln!("{summary}");
}

fn peers() -> bool {
    peer("ffmpeg") && peer("python3") && python_module("boto3")
}

fn upload_dest(kind: &'static str, d: &Value, name: &str) -> Dest {
    Dest::Upload {
        kind,
        endpoint: d["endpoint"].as_str().unwrap().to_owned(),
        bucket: name.to_owned(),
        key: (
            d["access_key_id"].as_str().unwrap().to_owned(),
            d["secret_access_key"].as_str().unwrap().to_owned(),
        ),
    }
}

/// The sum of `tandem_ingest_requests_total` samples for one channel
/// pipeline whose labels contain `label`.
fn ingest_requests(metrics: &str, channel: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tandem_ingest_requests_total{"))
        .filter(|l| l.contains(&format!("channel=\"{channel}\"")) && l.contains("pipeline=\"0\""))
        .filter(|l| l.contains(label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

#[test]
fn ffmpeg_posting_and_a_mediastore_container_pipeline_fail_over_both_ways() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let (status, pair) = api(&t, "POST", "/api/v1/containers", r#"{"id":"enc"}"#);
    assert_eq!(status, 201, "{pair}");
    let c1 = &pair["containers"][1];
    assert_eq!(c1["container"], "enc-1");
    let ch = create_channel(
        &t,
        r#"{"id":"mix","inputs":[{},{"source":{"mediastore":"enc-1","prefix":"live/"}}]}"#,
    );
    let input = |p: usize| support::Input {
        url: ch["inputs"][p]["url"].as_str().unwrap().to_owned(),
        username: ch["inputs"][p]["username"].as_str().unwrap().to_owned(),
        password: ch["inputs"][p]["password"].as_str().unwrap().to_owned(),
    };
    // Pipeline 1 is bound: its /in/ URL refuses, naming the container.
    let (st, body) = t.request("PUT", "/in/mix/1/index.m3u8", Some(&input(1)), b"x");
    assert_eq!(st, 409, "{}", String::from_utf8_lossy(&body));
    // Same relative path as enc-1/live/index.m3u8: /out/mix/index.m3u8.
    let post = Dest::Post(t.url_with_credentials(&input(0), "index.m3u8"));
    let o = scenario(
        dir.path(),
        &t,
        "mix",
        [post, upload_dest("mediastore", c1, "enc-1")],
    );
    check_switches("mix", &o);

    // ffmpeg really POSTed (not assumed from its flag): Tandem's ingest
    // counters saw POSTs answered 2xx on pipeline 0, and no PUT.
    let (st, m) = http(t.addr, "GET", "/metrics", None, b"");
    assert_eq!(st, 200);
    let m = String::from_utf8_lossy(&m);
    let posts = ingest_requests(&m, "mix", "method=\"POST\",status=\"2");
    let puts = ingest_requests(&m, "mix", "method=\"PUT\"");
    eprintln!("[mix] pipeline 0 ingest: {posts} POST answered 2xx, {puts} PUT");
    assert!(
        posts as f64 >= o.segments as f64,
        "only {posts} successful POSTs for {} output segments:\n{}",
        o.segments,
        m.lines()
            .filter(|l| l.starts_with("tandem_ingest_requests_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(puts, 0);
}

#[test]
fn two_pipelines_publishing_into_bound_s3_buckets_fail_over_both_ways() {
    if !peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let archive = t.create_archive("arc");
    create_channel(
        &t,
        r#"{"id":"buckets","inputs":[{"source":{"s3":"arc-0","prefix":"live/"}},{"source":{"s3":"arc-1","prefix":"live/"}}]}"#,
    );
    let dest = |p: usize| {
        let d = &archive["destinations"][p];
        assert_eq!(d["bucket"], format!("arc-{p}"));
        assert_eq!(d["endpoint"], t.s3.as_str());
        upload_dest("s3", d, &format!("arc-{p}"))
    };
    let o = scenario(dir.path(), &t, "buckets", [dest(0), dest(1)]);
    check_switches("buckets", &o);
}
