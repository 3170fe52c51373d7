//! The soak: live load held for a long time while the server's resources
//! are sampled, to show that nothing grows without bound (memory, file
//! descriptors, threads, staged uploads) and that the output keeps up.
//!
//! The load is [`Load`]: channels × 2 pipelines × 3 renditions pushing 2 s
//! segments, with players reading every channel's output, plus an archive
//! pair receiving one MPEG-TS file per pipeline every rollover over S3
//! (SigV4). Every `every` the server is sampled from `/proc` (RSS, open
//! descriptors, threads) and its data directory (files under `staging/`),
//! with the publish delay (segment's last byte in → named by the output)
//! of the interval.
//!
//! Flatness is judged after the warm-up (the first 5 minutes, or the first
//! half of a shorter run): each figure's maximum after it must stay within
//! a stated bound of its value when the warm-up ended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client::{BodyMode, Conn};
use crate::scenarios::{Load, Percentiles, Target, rss_bytes};
use crate::sign::{Payload, Signer};

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub channels: usize,
    /// Players per channel.
    pub readers: usize,
    /// Segment size in bytes.
    pub size: usize,
    pub duration: Duration,
    /// Sampling interval.
    pub every: Duration,
    /// The server's data directory, to count `staging/` entries.
    pub data: Option<PathBuf>,
    /// Archive uploads: an archive pair `soak-archive` gets a file per
    /// pipeline this often (`None`: none).
    pub archive_every: Option<Duration>,
    /// The S3 listener, when the archive view's endpoint is not reachable
    /// as given (a listener bound to port 0).
    pub s3: Option<SocketAddr>,
}

/// One sample of the server.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at: Duration,
    pub rss_bytes: u64,
    pub fds: u64,
    pub threads: u64,
    pub staging: u64,
    /// Publish delay over the interval.
    pub delay: Option<Percentiles>,
    /// Failed requests so far (pushes, reads, archive uploads).
    pub errors: u64,
    pub archive_files: u64,
}

/// A figure's course over the soak.
#[derive(Debug, Clone)]
pub struct Trend {
    pub name: &'static str,
    pub unit: &'static str,
    pub start: f64,
    pub end: f64,
    pub max: f64,
    /// The value when the warm-up ended, and the bound on growth after it.
    pub settled: f64,
    pub bound: f64,
    pub flat: bool,
}

/// What the soak measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    pub samples: Vec<Sample>,
    pub trends: Vec<Trend>,
    pub errors: u64,
}

impl SoakReport {
    pub fn flat(&self) -> bool {
        self.trends.iter().all(|t| t.flat)
    }
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// Threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// Files under `dir` (recursively; bounded depth).
pub fn files_under(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() && depth < 8 => walk(&e.path(), depth + 1),
                Ok(t) if t.is_dir() => 0,
                _ => 1,
            })
            .sum()
    }
    walk(dir, 0)
}

/// An archive pair's upload side: one signer and bucket per pipeline.
struct Archive {
    conn: Conn,
    sides: Vec<(String, Signer)>,
    body: Vec<u8>,
    next: u64,
}

impl Archive {
    async fn create(t: &Target, s3: Option<SocketAddr>, every: Duration) -> anyhow::Result<Self> {
        let mut c = Conn::new(t.addr);
        let bearer = format!("Bearer {}", t.token);
        c.request(
            "DELETE",
            "/api/v1/archives/soak-archive",
            Some(&bearer),
            b"",
        )
        .await?;
        let body = format!(
            "{{\"id\":\"soak-archive\",\"rollover_secs\":{}}}",
            every.as_secs().max(1)
        );
        let r = c
            .request("POST", "/api/v1/archives", Some(&bearer), body.as_bytes())
            .await?;
        if r.status != 201 {
            bail!(
                "creating archive pair soak-archive: HTTP {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        let mut sides = Vec::new();
        let mut endpoint = s3;
        for d in v["destinations"].as_array().context("destinations")? {
            let s = |k: &str| d[k].as_str().with_context(|| format!("destination {k}"));
            if endpoint.is_none() {
                let e = s("endpoint")?;
                let hostport = e.trim_start_matches("http://").trim_end_matches('/');
                endpoint = Some(
                    hostport
                        .parse()
                        .with_context(|| format!("S3 endpoint {e}: give --s3 IP:PORT"))?,
                );
            }
            sides.push((
                s("bucket")?.to_owned(),
                Signer::for_service(
                    s("access_key_id")?,
                    s("secret_access_key")?,
                    s("region")?,
                    "s3",
                ),
            ));
        }
        let addr = endpoint.context("the archive pair has no destination")?;
        Ok(Self {
            conn: Conn::new(addr),
            sides,
            body: crate::mediastore::ts_like(376 * 1000).to_vec(),
            next: 1,
        })
    }

    /// Uploads the next index to both buckets; the files written.
    async fn upload(&mut self) -> anyhow::Result<u64> {
        let key = format!("soak/archive.{:06}.ts", self.next);
        self.next += 1;
        let mut written = 0;
        for (bucket, signer) in &self.sides {
            let path = format!("/{bucket}/{key}");
            let r = crate::mediastore::signed(
                &mut self.conn,
                signer,
                "PUT",
                &path,
                &[("content-type", "video/MP2T")],
                &Payload::Unsigned,
                &self.body,
                BodyMode::Discard,
            )
            .await?;
            if r.status != 200 {
                bail!("archive PUT {path}: HTTP {}", r.status);
            }
            written += 1;
        }
        Ok(written)
    }
}

/// Runs the soak; `on_sample` sees each sample as it is taken.
pub async fn soak(
    t: &Target,
    cfg: &SoakConfig,
    mut on_sample: impl FnMut(&Sample),
) -> anyhow::Result<SoakReport> {
    let pid = t
        .pid
        .context("the soak samples the server's process: give --pid")?;
    let load = Load::start(t, cfg.channels, cfg.readers, cfg.size).await?;
    let mut archive = match cfg.archive_every {
        Some(every) => Some((Archive::create(t, cfg.s3, every).await?, every)),
        None => None,
    };
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut archive_errors = 0u64;
    let mut archive_files = 0u64;
    let mut next_archive = t0;
    let mut next_sample = t0 + cfg.every;
    let end = t0 + cfg.duration;
    loop {
        let now = Instant::now();
        if let Some((a, every)) = archive.as_mut()
            && now >= next_archive
        {
            match a.upload().await {
                Ok(n) => archive_files += n,
                Err(_) => archive_errors += 1,
            }
            next_archive += *every;
        }
        if now >= next_sample {
            let delay = load.take_latencies().await;
            let s = Sample {
                at: now - t0,
                rss_bytes: rss_bytes(pid).unwrap_or(0),
                fds: fds(pid).unwrap_or(0),
                threads: threads(pid).unwrap_or(0),
                staging: cfg
                    .data
                    .as_deref()
                    .map_or(0, |d| files_under(&d.join("staging"))),
                delay: (!delay.is_empty()).then(|| Percentiles::of(delay)),
                errors: load.errors() + archive_errors,
                archive_files,
            };
            on_sample(&s);
            samples.push(s);
            next_sample += cfg.every;
        }
        if now >= end {
            break;
        }
        let mut wake = next_sample.min(end);
        if archive.is_some() {
            wake = wake.min(next_archive);
        }
        tokio::time::sleep_until(wake.into()).await;
    }
    let errors = load.errors() + archive_errors;
    load.finish().await;
    let trends = trends(&samples, cfg);
    Ok(SoakReport {
        samples,
        trends,
        errors,
    })
}

/// A figure: name, unit, its value in a sample, its bound from the value
/// when the warm-up ended.
type Figure = (
    &'static str,
    &'static str,
    fn(&Sample) -> f64,
    fn(f64) -> f64,
);

/// Each figure's start, end and maximum, and whether it stayed within its
/// bound after the warm-up.
fn trends(samples: &[Sample], cfg: &SoakConfig) -> Vec<Trend> {
    let warm = Duration::from_secs(300).min(cfg.duration / 2);
    let settled_at = samples.iter().position(|s| s.at >= warm).unwrap_or(0);
    // In-flight uploads at one moment: every rendition of every pipeline,
    // and both archive files.
    let in_flight = (cfg.channels * 6 + 2) as f64;
    let figures: [Figure; 5] = [
        // 10 % above the settled value, and at least 16 MB: allocator
        // and cache noise.
        (
            "RSS",
            "MB",
            |s| s.rss_bytes as f64 / 1e6,
            |v| v * 1.10 + 16.0,
        ),
        (
            "open descriptors",
            "",
            |s| s.fds as f64,
            |v| v * 1.10 + 16.0,
        ),
        ("threads", "", |s| s.threads as f64, |v| v + 4.0),
        ("staging entries", "", |s| s.staging as f64, |_| 0.0),
        (
            "publish delay p99",
            "ms",
            |s| s.delay.as_ref().map_or(0.0, |d| d.p99_ms),
            |v| v * 2.0 + 50.0,
        ),
    ];
    figures
        .into_iter()
        .map(|(name, unit, get, bound_of)| {
            let v: Vec<f64> = samples.iter().map(get).collect();
            let after = v.get(settled_at..).unwrap_or_default();
            let settled = after.first().copied().unwrap_or(0.0);
            let bound = if name == "staging entries" {
                in_flight
            } else {
                bound_of(settled)
            };
            let max_after = after.iter().copied().fold(0.0, f64::max);
            Trend {
                name,
                unit,
                start: v.first().copied().unwrap_or(0.0),
                end: v.last().copied().unwrap_or(0.0),
                max: v.iter().copied().fold(0.0, f64::max),
                settled,
                bound,
                flat: !after.is_empty() && max_after <= bound,
            }
        })
        .collect()
}
