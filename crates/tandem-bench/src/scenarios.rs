//! The scenarios of `docs/benchmarks.md` that wrk cannot run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::client::{Conn, basic};

/// A running Tandem: address, admin token, and its pid when known (for CPU
/// and memory accounting).
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub token: String,
    pub pid: Option<u32>,
}

/// Creates (or re-creates) a channel; returns the control API's answer
/// (its `inputs[]` carry each pipeline's `username` and `password`).
pub async fn create_channel_view(t: &Target, id: &str) -> anyhow::Result<serde_json::Value> {
    let mut c = Conn::new(t.addr);
    let bearer = format!("Bearer {}", t.token);
    c.request(
        "DELETE",
        &format!("/api/v1/channels/{id}"),
        Some(&bearer),
        b"",
    )
    .await?;
    let r = c
        .request(
            "POST",
            "/api/v1/channels",
            Some(&bearer),
            format!("{{\"id\":\"{id}\"}}").as_bytes(),
        )
        .await?;
    if r.status != 201 {
        bail!(
            "creating channel {id}: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    Ok(serde_json::from_slice(&r.body)?)
}

/// Creates (or re-creates) a channel; returns both inputs' Basic headers.
pub async fn create_channel(t: &Target, id: &str) -> anyhow::Result<[String; 2]> {
    let v = create_channel_view(t, id).await?;
    let cred = |p: usize| -> anyhow::Result<String> {
        let i = &v["inputs"][p];
        Ok(basic(
            i["username"].as_str().context("username")?,
            i["password"].as_str().context("password")?,
        ))
    };
    Ok([cred(0)?, cred(1)?])
}

fn media_playlist(first: u64, last: u64, name: &str) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!("#EXTINF:2.000,\n{name}{k}.ts\n"));
    }
    t
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        let at = |q: f64| {
            v.get(((v.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Self {
            samples: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

/// Where one rendition is pushed and where its output is read.
struct Rendition<'a> {
    auth: &'a str,
    /// Ingest folder, e.g. `/in/ch/0/live`.
    base_in: &'a str,
    /// Output playlist, e.g. `/out/ch/live/index.m3u8`.
    out_playlist: &'a str,
    /// Playlist stem; segments are `{name}{k}.ts`.
    name: &'a str,
}

/// Pushes one segment and its playlist as an encoder does, then polls the
/// merged output until it names the segment. Returns the time from the
/// segment's last body byte to the output naming it.
async fn push_and_watch(
    put: &mut Conn,
    get: &mut Conn,
    r: &Rendition<'_>,
    k: u64,
    body: &[u8],
) -> anyhow::Result<Duration> {
    let (auth, base_in, out_playlist, rendition) = (r.auth, r.base_in, r.out_playlist, r.name);
    let r = put
        .request(
            "PUT",
            &format!("{base_in}/{rendition}{k}.ts"),
            Some(auth),
            body,
        )
        .await?;
    if r.status / 100 != 2 {
        bail!("segment PUT: HTTP {}", r.status);
    }
    let start = r.sent;
    let pl = media_playlist(k.saturating_sub(5), k, rendition);
    let r = put
        .request(
            "PUT",
            &format!("{base_in}/{rendition}.m3u8"),
            Some(auth),
            pl.as_bytes(),
        )
        .await?;
    if r.status / 100 != 2 {
        bail!("playlist PUT: HTTP {}", r.status);
    }
    let needle = format!("/{rendition}{k}.ts\n");
    let deadline = start + Duration::from_secs(5);
    loop {
        let r = get.request("GET", out_playlist, None, b"").await?;
        if r.status == 200 && r.body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Ok(start.elapsed());
        }
        if Instant::now() > deadline {
            bail!("the output never named {rendition}{k}.ts");
        }
        tokio::task::yield_now().await;
    }
}

/// Scenario 3: publish latency over `segments` segments of `size` bytes.
pub async fn publish_latency(
    t: &Target,
    segments: u64,
    size: usize,
) -> anyhow::Result<Percentiles> {
    let [auth, _] = create_channel(t, "bench-latency").await?;
    let (mut put, mut get) = (Conn::new(t.addr), Conn::new(t.addr));
    let body = vec![0x47u8; size];
    let mut samples = Vec::with_capacity(usize::try_from(segments).unwrap_or(0));
    for k in 0..segments {
        let r = Rendition {
            auth: &auth,
            base_in: "/in/bench-latency/0/live",
            out_playlist: "/out/bench-latency/live/index.m3u8",
            name: "index",
        };
        let d = push_and_watch(&mut put, &mut get, &r, k, &body).await?;
        samples.push(d);
    }
    Ok(Percentiles::of(samples))
}

/// CPU seconds (user + system) of a process, from /proc.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Resident memory of a process in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// What one scale step measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    pub channels: usize,
    /// Server CPU, percent of one core.
    pub cpu_percent: f64,
    pub rss_bytes: u64,
    pub publish: Percentiles,
    pub errors: u64,
}

/// Live load on channels `{prefix}{i}`: each channel's 2 pipelines × 3
/// renditions push a segment of `size` bytes every 2 s (pipeline 0 timing
/// each until the output names it), and `readers` players a channel poll
/// its output. Runs until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Creates the channels and starts pushing and reading.
    pub async fn start(
        t: &Target,
        channels: usize,
        readers: usize,
        size: usize,
    ) -> anyhow::Result<Self> {
        let mut auths = Vec::new();
        for i in 0..channels {
            auths.push(create_channel(t, &format!("bench-s{i}")).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let body: Arc<[u8]> = vec![0x47u8; size].into();
        let mut tasks = Vec::new();
        let period = Duration::from_secs(2);
        for (i, auth) in auths.iter().enumerate() {
            for p in 0..2 {
                for r in ["low", "mid", "high"] {
                    let (t, auth, stop, errors, latencies, body) = (
                        t.clone(),
                        auth[p].clone(),
                        stop.clone(),
                        errors.clone(),
                        latencies.clone(),
                        body.clone(),
                    );
                    // Spread the pushes over the period, as independent encoders are.
                    let offset = period.mul_f64(((i * 6 + p * 3 + r.len()) % 97) as f64 / 97.0);
                    tasks.push(tokio::spawn(async move {
                        tokio::time::sleep(offset).await;
                        let (mut put, mut get) = (Conn::new(t.addr), Conn::new(t.addr));
                        let base = format!("/in/bench-s{i}/{p}/live");
                        let out = format!("/out/bench-s{i}/live/{r}.m3u8");
                        let mut next = Instant::now();
                        for k in 0.. {
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            // Only pipeline 0 watches the output, so readers and
                            // watchers are not double-counted.
                            let res = if p == 0 {
                                push_and_watch(
                                    &mut put,
                                    &mut get,
                                    &Rendition {
                                        auth: &auth,
                                        base_in: &base,
                                        out_playlist: &out,
                                        name: r,
                                    },
                                    k,
                                    &body,
                                )
                                .await
                            } else {
                                push_only(&mut put, &auth, &base, r, k, &body)
                                    .await
                                    .map(|()| Duration::ZERO)
                            };
                            match res {
                                Ok(d) if p == 0 => latencies.lock().await.push(d),
                                Ok(_) => {}
                                Err(_) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            next += period;
                            tokio::time::sleep_until(next.into()).await;
                        }
                    }));
                }
            }
            for j in 0..readers {
                let (t, stop, errors) = (t.clone(), stop.clone(), errors.clone());
                // Players are not in step: spread their polls over the second,
                // as the pushes are spread over the segment period.
                let offset =
                    Duration::from_secs(1).mul_f64(((i * readers + j) % 101) as f64 / 101.0);
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    let mut c = Conn::new(t.addr);
                    let mut seen = String::new();
                    while !stop.load(Ordering::Relaxed) {
                        match c
                            .request("GET", &format!("/out/bench-s{i}/live/mid.m3u8"), None, b"")
                            .await
                        {
                            Ok(r) if r.status == 200 => {
                                let text = String::from_utf8_lossy(&r.body).into_owned();
                                let newest = text
                                    .lines()
                                    .rev()
                                    .find(|l| !l.starts_with('#'))
                                    .filter(|l| *l != seen);
                                if let Some(last) = newest {
                                    let _ = c
                                        .request(
                                            "GET",
                                            &format!("/out/bench-s{i}/live/{last}"),
                                            None,
                                            b"",
                                        )
                                        .await;
                                    seen = last.to_owned();
                                }
                            }
                            Ok(_) => {}
                            Err(_) => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }));
            }
        }
        Ok(Self {
            stop,
            errors,
            latencies,
            tasks,
        })
    }

    /// Publish delays measured since the last call.
    pub async fn take_latencies(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.latencies.lock().await)
    }

    /// Failed requests so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Stops every pusher and reader (bounded wait for each).
    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Scenario 4: `channels` × 2 pipelines × 3 renditions, 2 s segments of
/// `size` bytes, `readers` readers a channel, for `duration`.
pub async fn scale(
    t: &Target,
    channels: usize,
    readers: usize,
    size: usize,
    duration: Duration,
) -> anyhow::Result<ScaleReport> {
    let load = Load::start(t, channels, readers, size).await?;
    // Measure after a warm-up period, over the rest of the run.
    let warm = duration.mul_f64(0.3);
    tokio::time::sleep(warm).await;
    let cpu0 = t.pid.and_then(cpu_secs);
    load.take_latencies().await;
    let t0 = Instant::now();
    tokio::time::sleep(duration.saturating_sub(warm)).await;
    let cpu1 = t.pid.and_then(cpu_secs);
    let wall = t0.elapsed().as_secs_f64();
    let rss = t.pid.and_then(rss_bytes).unwrap_or(0);
    let publish = Percentiles::of(load.take_latencies().await);
    let errors = load.errors();
    load.finish().await;
    let cpu_percent = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a) / wall * 100.0,
        _ => f64::NAN,
    };
    Ok(ScaleReport {
        channels,
        cpu_percent,
        rss_bytes: rss,
        publish,
        errors,
    })
}

async fn push_only(
    put: &mut Conn,
    auth: &str,
    base: &str,
    r: &str,
    k: u64,
    body: &[u8],
) -> anyhow::Result<()> {
    let s = put
        .request("PUT", &format!("{base}/{r}{k}.ts"), Some(auth), body)
        .await?;
    let pl = media_playlist(k.saturating_sub(5), k, r);
    let p = put
        .request(
            "PUT",
            &format!("{base}/{r}.m3u8"),
            Some(auth),
            pl.as_bytes(),
        )
        .await?;
    if s.status / 100 != 2 || p.status / 100 != 2 {
        bail!("push: HTTP {} / {}", s.status, p.status);
    }
    Ok(())
}

/// Scenario 5's measurements: resident memory before and at the peaks.
#[derive(Debug, Clone, Copy)]
pub struct MemoryReport {
    pub idle: u64,
    pub peak_put: u64,
    pub peak_get: u64,
    pub put_mb_s: f64,
    pub get_mb_s: f64,
}

/// Scenario 5: RSS during a PUT and a GET of `bytes` bytes.
pub async fn memory(t: &Target, bytes: u64) -> anyhow::Result<MemoryReport> {
    let pid = t
        .pid
        .context("the memory scenario needs the server's pid")?;
    let [auth, _] = create_channel(t, "bench-memory").await?;
    let idle = rss_bytes(pid).unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(idle));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(r) = rss_bytes(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut s = tokio::net::TcpStream::connect(t.addr).await?;
    let t0 = Instant::now();
    s.write_all(format!("PUT /in/bench-memory/0/big.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let chunk = vec![0x47u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        s.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await?;
    let put_secs = t0.elapsed().as_secs_f64();
    if !answer.starts_with(b"HTTP/1.1 201") {
        bail!(
            "the big PUT was refused: {}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        );
    }
    let peak_put = peak.swap(idle, Ordering::Relaxed);
    let mut s = tokio::net::TcpStream::connect(t.addr).await?;
    let t0 = Instant::now();
    s.write_all(format!("GET /in/bench-memory/0/big.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    let get_secs = t0.elapsed().as_secs_f64();
    if got < bytes {
        bail!("the big GET returned {got} of {bytes} bytes");
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let peak_get = peak.load(Ordering::Relaxed);
    let mut c = Conn::new(t.addr);
    c.request("DELETE", "/in/bench-memory/0/big.ts", Some(&auth), b"")
        .await?;
    let mb = bytes as f64 / 1e6;
    Ok(MemoryReport {
        idle,
        peak_put,
        peak_get,
        put_mb_s: mb / put_secs,
        get_mb_s: mb / get_secs,
    })
}

/// RSS added per idle channel, over `n` new channels.
pub async fn idle_channel_rss(t: &Target, n: usize) -> anyhow::Result<f64> {
    let pid = t.pid.context("needs the server's pid")?;
    let before = rss_bytes(pid).unwrap_or(0);
    for i in 0..n {
        create_channel(t, &format!("bench-idle{i}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_bytes(pid).unwrap_or(0);
    Ok(after.saturating_sub(before) as f64 / n as f64)
}
