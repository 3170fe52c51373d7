//! `tandem-bench chaos`: kill points. `tandem serve` runs on a data
//! directory on disk while two HLS pipelines (PUT, and WebDAV PUT+MOVE,
//! both Digest), S3 PutObject and multipart uploads and control-API
//! changes load it; at a seeded random moment it gets SIGKILL, is started
//! again, and the promises are checked (see [`ledger::Invariant`]).
//!
//! Every operation is entered in a [`ledger::Ledger`] before it is sent,
//! so whatever the kill interrupted is known, and after the restart every
//! key must hold what its answered uploads promise.

mod check;
pub mod ledger;
mod load;
mod rng;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

pub use ledger::{Invariant, Violation};
use load::{ARCHIVE, CHANNEL, RETENTION_SECS, World, with};
use rng::Rng;
use server::Process;
pub use server::default_binary;

use crate::client::Conn;

/// A campaign's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kill points.
    pub points: usize,
    pub seed: u64,
    /// The `tandem` binary.
    pub tandem: PathBuf,
    /// The data directory (on disk, not tmpfs); created if missing.
    pub data: PathBuf,
    /// The kill comes this long after the load starts, uniformly.
    pub kill_after: std::ops::Range<Duration>,
    /// Extra environment for the server.
    pub env: Vec<(String, String)>,
}

/// A campaign's outcome.
#[derive(Debug, Default)]
pub struct Report {
    pub points: usize,
    pub objects_checked: u64,
    pub violations: Vec<Violation>,
    pub elapsed: Duration,
}

impl Report {
    /// The violations of one invariant.
    pub fn of(&self, inv: Invariant) -> usize {
        self.violations
            .iter()
            .filter(|v| v.invariant == inv)
            .count()
    }

    /// The summary line, the command's last.
    pub fn summary(&self) -> String {
        format!(
            "chaos: {} points, {} objects checked, {} violations",
            self.points,
            self.objects_checked,
            self.violations.len()
        )
    }

    /// The violations grouped by invariant, then the summary line.
    pub fn render(&self) -> String {
        let mut by: BTreeMap<Invariant, Vec<&Violation>> = BTreeMap::new();
        for v in &self.violations {
            by.entry(v.invariant).or_default().push(v);
        }
        let mut out = String::new();
        for inv in Invariant::ALL {
            let Some(vs) = by.get(&inv) else { continue };
            out.push_str(&format!("{} ({} violations):\n", inv.title(), vs.len()));
            for v in vs {
                out.push_str(&format!("  point {}: {}\n", v.point, v.detail));
            }
        }
        out.push_str(&self.summary());
        out
    }
}

fn fail(status: u16, body: &[u8], what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: HTTP {status} {}", String::from_utf8_lossy(body))
}

/// Creates the campaign's channel and archive pair on the first server.
async fn setup(srv: &Process) -> anyhow::Result<World> {
    let mut conn = Conn::new(srv.http);
    let body =
        format!("{{\"id\":\"{CHANNEL}\",\"retention\":{{\"input_secs\":{RETENTION_SECS}}}}}");
    let r = load::api(&mut conn, &srv.token, "POST", "/api/v1/channels", &body).await?;
    if r.status != 201 {
        return Err(fail(r.status, &r.body, "creating the campaign's channel"));
    }
    let ch: serde_json::Value = serde_json::from_slice(&r.body)?;
    let r = load::api(
        &mut conn,
        &srv.token,
        "POST",
        "/api/v1/archives",
        &format!("{{\"id\":\"{ARCHIVE}\"}}"),
    )
    .await?;
    if r.status != 201 {
        return Err(fail(
            r.status,
            &r.body,
            "creating the campaign's archive pair",
        ));
    }
    let arc: serde_json::Value = serde_json::from_slice(&r.body)?;
    let input = |p: usize| -> anyhow::Result<(String, String)> {
        let i = &ch["inputs"][p];
        Ok((
            i["username"].as_str().context("username")?.to_owned(),
            i["password"].as_str().context("password")?.to_owned(),
        ))
    };
    let key = |p: usize| -> anyhow::Result<(String, String)> {
        let d = &arc["destinations"][p];
        Ok((
            d["access_key_id"]
                .as_str()
                .context("access key")?
                .to_owned(),
            d["secret_access_key"]
                .as_str()
                .context("secret")?
                .to_owned(),
        ))
    };
    let mut w = World {
        ledger: Default::default(),
        defs: Default::default(),
        inputs: [input(0)?, input(1)?],
        keys: [key(0)?, key(1)?],
        region: arc["destinations"][0]["region"]
            .as_str()
            .unwrap_or("us-east-1")
            .to_owned(),
        next_msn: [0, 0],
        window: [Vec::new(), Vec::new()],
        archive_round: [0, 0],
        output_msn: None,
        churn_n: 0,
        churn_step: 0,
        churn_archive_step: 0,
        churn_channel: None,
    };
    w.defs.acked(CHANNEL, load::channel_canon(&ch));
    w.defs.acked(ARCHIVE, load::archive_canon(&arc));
    Ok(w)
}

/// Whether `dir` is on a file system in memory (a crash there proves
/// nothing about the disk).
pub fn on_tmpfs(dir: &Path) -> bool {
    tandem_store::on_memory_fs(dir)
}

/// Runs the campaign; `progress` is told each point's figures as it ends.
pub async fn run(cfg: &Config, mut progress: impl FnMut(usize, &Report)) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&cfg.data)
        .with_context(|| format!("cannot create {}", cfg.data.display()))?;
    if on_tmpfs(&cfg.data) {
        bail!(
            "{} is on tmpfs: kill points must be taken on a disk (pass --data DIR on one)",
            cfg.data.display()
        );
    }
    let data = cfg.data.join("data");
    if data.exists() {
        bail!(
            "{} exists: a campaign starts on a new data directory (remove it or pass another --data)",
            data.display()
        );
    }
    let log = cfg.data.join("tandem.log");
    let started = Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut report = Report::default();
    let mut srv = Process::start(&cfg.tandem, &data, &log, &cfg.env)?;
    let w = Arc::new(Mutex::new(setup(&srv).await?));
    for point in 1..=cfg.points {
        let span = cfg.kill_after.end.saturating_sub(cfg.kill_after.start);
        let kill_after =
            cfg.kill_after.start + Duration::from_micros(rng.below(span.as_micros().max(1) as u64));
        let tasks = vec![
            tokio::spawn(load::pipeline(w.clone(), srv.http, 0, rng.fork(1))),
            tokio::spawn(load::pipeline(w.clone(), srv.http, 1, rng.fork(2))),
            tokio::spawn(load::archive(w.clone(), srv.s3, 0, rng.fork(3))),
            tokio::spawn(load::archive(w.clone(), srv.s3, 1, rng.fork(4))),
            tokio::spawn(load::control(
                w.clone(),
                srv.http,
                srv.token.clone(),
                rng.fork(5),
            )),
            tokio::spawn(load::watch_output(w.clone(), srv.http)),
        ];
        tokio::time::sleep(kill_after).await;
        srv.kill()?;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            // Each ends in an error (its server died) or was cancelled;
            // a load error before the kill is not a broken promise.
            let _ = t.await;
        }
        with(&w, |w| w.ledger.abandon_all());
        let restarted = SystemTime::now();
        srv = match Process::start(&cfg.tandem, &data, &log, &cfg.env) {
            Ok(s) => s,
            Err(e) => {
                report.violations.push(Violation {
                    invariant: Invariant::Restart,
                    point,
                    detail: format!("{e:#}"),
                });
                report.points = point;
                break;
            }
        };
        let found = check::after_restart(&w, &srv, &data, restarted, point, &mut rng).await?;
        report.points = point;
        report.objects_checked += found.objects_checked;
        report.violations.extend(found.violations);
        report.elapsed = started.elapsed();
        progress(point, &report);
    }
    drop(srv);
    report.elapsed = started.elapsed();
    Ok(report)
}
