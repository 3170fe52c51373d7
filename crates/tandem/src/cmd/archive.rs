//! `tandem archive create|list|show|delete|verify|watch`.
//!
//! Management goes through the control API when a server runs on the data
//! directory, else straight to the database (like `tandem channel`).
//! `verify` and `watch` read both buckets over S3 (Tandem's own listener by
//! default; any S3 endpoint with `--endpoint` and the usual AWS variables),
//! check every archive file, and say which bucket holds each index whole.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tandem_core::ArchiveId;
use tandem_server::DataDir;
use tandem_server::api::archives::{ArchiveView, archive_view};
use tandem_server::registry::new_archive_spec;
use tandem_ts::{FileFacts, ListedFile, NamePattern, Report, Side, SideListing};

use super::control::{ControlArgs, Target, api_call, choose_target, open_db, output};
use crate::s3client::S3Client;

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    control: ControlArgs,
    #[command(subcommand)]
    command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    #[command(flatten)]
    Manage(ManageCommand),
    /// Check that every archive file is whole in at least one bucket.
    /// Exits 0 when every index from first to last is covered, 1 otherwise.
    Verify(VerifyArgs),
    /// Verify again and again; report indexes that neither bucket holds
    /// whole once their time has passed.
    Watch {
        #[command(flatten)]
        verify: VerifyArgs,
        /// Seconds between checks.
        #[arg(long, default_value_t = 10)]
        every: u64,
        /// Stop after this many checks (default: run until killed).
        #[arg(long)]
        checks: Option<u64>,
    },
}

/// The commands that go through the control API or the database.
#[derive(Debug, Subcommand)]
enum ManageCommand {
    /// Create an archive pair: buckets ID-0 and ID-1, a key pair for each.
    Create {
        id: String,
        /// The encoder's rollover interval in seconds, if known.
        #[arg(long)]
        rollover: Option<u64>,
    },
    /// List archive pairs.
    List,
    /// Show an archive pair's buckets and keys.
    Show { id: String },
    /// Delete an archive pair and both buckets' contents.
    Delete { id: String },
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The primary side, s3://bucket/prefix (pipeline 0's bucket).
    primary: String,
    /// The backup side, s3://bucket/prefix (pipeline 1's bucket).
    backup: String,
    /// S3 endpoint. [default: this data directory's running Tandem, or
    /// http://127.0.0.1:9000]
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: Option<String>,
    /// Signing region. [default: AWS_REGION, or us-east-1]
    #[arg(long)]
    region: Option<String>,
    /// File name pattern with `*` and `{index}`, e.g. '*.{index}.ts';
    /// repeatable. [default: '*.{index}.m2ts' and '*.{index}.ts']
    #[arg(long)]
    pattern: Vec<String>,
    /// Rollover interval in seconds. [default: the median duration]
    #[arg(long)]
    rollover: Option<u64>,
    /// Copy each index's whole file over the side that lacks it.
    #[arg(long)]
    repair: bool,
}

pub fn run(
    data: Option<PathBuf>,
    config: Option<PathBuf>,
    args: ArchiveArgs,
) -> anyhow::Result<i32> {
    let cfg = super::server_config(data, config, std::env::var("TANDEM_LISTEN").ok(), None)?;
    let data = DataDir::new(cfg.data_dir.clone());
    let endpoint = data
        .read_server_file()
        .and_then(|s| s.s3_endpoint)
        .or_else(|| cfg.s3_endpoint())
        .unwrap_or_else(|| "http://127.0.0.1:9000".to_owned());
    let region = cfg.s3.region.clone();
    let command = match args.command {
        ArchiveCommand::Verify(v) => {
            return verify_cmd(&data, &endpoint, &region, &v, args.control.json);
        }
        ArchiveCommand::Watch {
            verify,
            every,
            checks,
        } => return watch(&data, &endpoint, &region, &verify, every, checks),
        ArchiveCommand::Manage(m) => m,
    };
    let target = choose_target(
        &data,
        &cfg.base_url(),
        args.control.server,
        args.control.token,
    )?;
    match command {
        ManageCommand::Create { id, rollover } => {
            let aid = ArchiveId::parse(&id)?;
            let view = match &target {
                Target::Api { .. } => {
                    let body = serde_json::json!({ "id": id, "rollover_secs": rollover });
                    serde_json::from_str(
                        &api_call(&target, "POST", "/api/v1/archives", Some(body.to_string()))?.1,
                    )?
                }
                Target::Database { data, .. } => {
                    let spec = new_archive_spec(&aid, SystemTime::now(), rollover)?;
                    open_db(data)?.insert_archive(&spec)?;
                    archive_view(&spec, &endpoint, &region)
                }
            };
            output(args.control.json, &view, || print_archive(&view))?;
        }
        ManageCommand::List => {
            let views: Vec<ArchiveView> = match &target {
                Target::Api { .. } => {
                    serde_json::from_str(&api_call(&target, "GET", "/api/v1/archives", None)?.1)?
                }
                Target::Database { data, .. } => open_db(data)?
                    .list_archives()?
                    .iter()
                    .map(|s| archive_view(s, &endpoint, &region))
                    .collect(),
            };
            output(args.control.json, &views, || {
                if views.is_empty() {
                    println!("no archive pairs; create one with 'tandem archive create ID'");
                }
                for v in &views {
                    let buckets: Vec<&str> =
                        v.destinations.iter().map(|d| d.url.as_str()).collect();
                    println!("{}\t{}", v.id, buckets.join(" "));
                }
            })?;
        }
        ManageCommand::Show { id } => {
            let aid = ArchiveId::parse(&id)?;
            let view: ArchiveView = match &target {
                Target::Api { .. } => serde_json::from_str(
                    &api_call(&target, "GET", &format!("/api/v1/archives/{aid}"), None)?.1,
                )?,
                Target::Database { data, .. } => {
                    archive_view(&open_db(data)?.archive(&aid)?, &endpoint, &region)
                }
            };
            output(args.control.json, &view, || print_archive(&view))?;
        }
        ManageCommand::Delete { id } => {
            let aid = ArchiveId::parse(&id)?;
            match &target {
                Target::Api { .. } => {
                    api_call(&target, "DELETE", &format!("/api/v1/archives/{aid}"), None)?;
                }
                Target::Database { data, .. } => {
                    if !open_db(data)?.remove_archive(&aid)? {
                        bail!("archive {aid} does not exist");
                    }
                }
            }
            if !args.control.json {
                println!("deleted archive {aid}");
            }
        }
    }
    Ok(0)
}

/// Prints what an encoder's archive destination form asks for.
fn print_archive(v: &ArchiveView) {
    println!("archive {}", v.id);
    for d in &v.destinations {
        println!();
        println!("destination {} (pipeline {})", d.pipeline, d.pipeline);
        println!("  URL:               {}", d.url);
        println!("  endpoint:          {}", d.endpoint);
        println!("  region:            {}", d.region);
        println!("  access key id:     {}", d.access_key_id);
        println!("  secret access key: {}", d.secret_access_key);
    }
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn parse_s3_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("s3://")
        .with_context(|| format!("{url:?} is not an s3://bucket/prefix URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        bail!("{url:?} names no bucket");
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

struct Sides {
    client: S3Client,
    buckets: [(String, String); 2],
    patterns: Vec<NamePattern>,
    rollover: Option<Duration>,
}

fn sides(data: &DataDir, endpoint: &str, region: &str, v: &VerifyArgs) -> anyhow::Result<Sides> {
    let endpoint = v.endpoint.clone().unwrap_or_else(|| endpoint.to_owned());
    let region = v
        .region
        .clone()
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| region.to_owned());
    let (ak, sk) = match (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(a), Ok(s)) => (a, s),
        _ => (
            tandem_server::s3::ADMIN_ACCESS_KEY.to_owned(),
            data.read_admin_token().with_context(|| {
                format!(
                    "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run on \
                     Tandem's data directory ({} has no admin token)",
                    data.root().display()
                )
            })?,
        ),
    };
    let patterns = if v.pattern.is_empty() {
        NamePattern::default_patterns()
    } else {
        v.pattern
            .iter()
            .map(|p| NamePattern::parse(p))
            .collect::<Result<_, _>>()?
    };
    Ok(Sides {
        client: S3Client::new(&endpoint, &region, &ak, &sk)?,
        buckets: [parse_s3_url(&v.primary)?, parse_s3_url(&v.backup)?],
        patterns,
        rollover: v.rollover.map(Duration::from_secs),
    })
}

fn listing(s: &Sides, side: usize) -> anyhow::Result<SideListing> {
    let Some((bucket, prefix)) = s.buckets.get(side) else {
        bail!("no such side")
    };
    let mut files = Vec::new();
    for obj in s.client.list(bucket, prefix)? {
        let Some(index) = NamePattern::first_match(&s.patterns, &obj.key) else {
            continue;
        };
        let facts = match s.client.get(bucket, &obj.key) {
            Ok(bytes) => FileFacts::from(&tandem_ts::check_ts(&bytes)),
            Err(e) => {
                tracing::warn!(key = %obj.key, error = %e, "cannot read archive file");
                FileFacts::Missing
            }
        };
        files.push(ListedFile {
            key: obj.key,
            index,
            facts,
        });
    }
    // Copies land next to the files already there.
    let dest = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.clone()
    } else {
        prefix
            .rsplit_once('/')
            .map(|(d, _)| format!("{d}/"))
            .unwrap_or_default()
    };
    Ok(SideListing {
        prefix: dest,
        files,
    })
}

fn check(s: &Sides) -> anyhow::Result<Report> {
    let primary = listing(s, 0)?;
    let backup = listing(s, 1)?;
    Ok(tandem_ts::verify(&primary, &backup, s.rollover)?)
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", report.table());
        println!(
            "{}",
            if report.complete {
                "complete: every index is whole in at least one bucket"
            } else {
                "INCOMPLETE: some index is whole in neither bucket"
            }
        );
    }
    Ok(())
}

fn verify_cmd(
    data: &DataDir,
    endpoint: &str,
    region: &str,
    v: &VerifyArgs,
    json: bool,
) -> anyhow::Result<i32> {
    let s = sides(data, endpoint, region, v)?;
    let mut report = check(&s)?;
    if v.repair {
        let repairs = report.repairs();
        for r in &repairs {
            let from = &s.buckets[side_index(r.from)].0;
            let to = &s.buckets[side_index(r.to)].0;
            let bytes = s.client.get(from, &r.from_key)?;
            s.client.put(to, &r.to_key, &bytes)?;
            if !json {
                println!(
                    "repaired index {}: s3://{from}/{} -> s3://{to}/{}",
                    r.index, r.from_key, r.to_key
                );
            }
        }
        report = check(&s)?;
    }
    print_report(&report, json)?;
    Ok(if report.complete { 0 } else { 1 })
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Primary => 0,
        Side::Backup => 1,
    }
}

fn watch(
    data: &DataDir,
    endpoint: &str,
    region: &str,
    v: &VerifyArgs,
    every: u64,
    checks: Option<u64>,
) -> anyhow::Result<i32> {
    let s = sides(data, endpoint, region, v)?;
    let mut reported = std::collections::BTreeSet::new();
    let mut n = 0u64;
    loop {
        let report = check(&s)?;
        // The last index may still be being written; earlier ones are due.
        let last = report.indexes.last().map(|r| r.index);
        for r in &report.indexes {
            let due = Some(r.index) != last;
            if due && r.covered_by == tandem_ts::Coverage::None && reported.insert(r.index) {
                println!(
                    "{} index {} is whole in neither bucket (primary {}, backup {})",
                    stamp(),
                    r.index,
                    r.primary,
                    r.backup
                );
            }
        }
        n += 1;
        if checks.is_some_and(|c| n >= c) {
            return Ok(if reported.is_empty() { 0 } else { 1 });
        }
        std::thread::sleep(Duration::from_secs(every.max(1)));
    }
}

/// `[seconds since the epoch]`, for watch lines.
fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("[{secs}]")
}
