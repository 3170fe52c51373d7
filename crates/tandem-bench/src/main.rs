//! `tandem-bench`: runs the scenarios wrk cannot express against a running
//! Tandem and prints markdown rows for `docs/benchmarks.md`.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tandem_bench::scenarios::{self, Target};

/// Benchmark scenarios against a running Tandem.
#[derive(Debug, Parser)]
#[command(name = "tandem-bench")]
struct Cli {
    /// Tandem's base URL (plain HTTP, loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The admin token.
    #[arg(long, env = "TANDEM_TOKEN")]
    token: String,
    /// The server's pid, for CPU and memory accounting.
    #[arg(long)]
    pid: Option<u32>,
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Scenario 3: last byte of a segment PUT → segment named by the output.
    Latency {
        #[arg(long, default_value_t = 10_000)]
        segments: u64,
        #[arg(long, default_value_t = 250_000)]
        size: usize,
    },
    /// Scenario 4: channels × 2 pipelines × 3 renditions with readers.
    Scale {
        /// Channel counts to try, in order; stops at the first over limits.
        #[arg(long, value_delimiter = ',', default_value = "25,50,100,200,300")]
        channels: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        readers: usize,
        #[arg(long, default_value_t = 250_000)]
        size: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Scenario 5: RSS during a PUT and a GET of this many bytes.
    Memory {
        #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024)]
        bytes: u64,
    },
    /// RSS per idle channel.
    IdleRss {
        #[arg(long, default_value_t = 200)]
        channels: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let authority = cli
        .server
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let addr = authority
        .parse()
        .with_context(|| format!("--server {}: expected http://IP:PORT", cli.server))?;
    let t = Target {
        addr,
        token: cli.token,
        pid: cli.pid,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Scenario::Latency { segments, size } => {
                let p = scenarios::publish_latency(&t, segments, size).await?;
                println!("| publish latency | {} segments of {size} B | p50 {:.2} ms | p99 {:.2} ms | max {:.2} ms |", p.samples, p.p50_ms, p.p99_ms, p.max_ms);
            }
            Scenario::Scale { channels, readers, size, seconds } => {
                println!("| channels | server CPU (% of one core) | server CPU (% of the machine) | RSS MB | publish p50 ms | publish p99 ms | errors |");
                println!("|---:|---:|---:|---:|---:|---:|---:|");
                let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
                for n in channels {
                    let r = scenarios::scale(&t, n, readers, size, Duration::from_secs(seconds)).await?;
                    println!(
                        "| {} | {:.0} | {:.0} | {:.1} | {:.2} | {:.2} | {} |",
                        r.channels,
                        r.cpu_percent,
                        r.cpu_percent / cores,
                        r.rss_bytes as f64 / 1e6,
                        r.publish.p50_ms,
                        r.publish.p99_ms,
                        r.errors
                    );
                    // 70 % of the machine, or publish p99 over 50 ms.
                    if r.cpu_percent / cores > 70.0 || r.publish.p99_ms > 50.0 || r.errors > 0 {
                        break;
                    }
                }
            }
            Scenario::Memory { bytes } => {
                let m = scenarios::memory(&t, bytes).await?;
                let mb = |b: u64| b as f64 / 1e6;
                println!(
                    "| {} MB PUT then GET | idle {:.1} MB | peak during PUT {:.1} MB (+{:.1}) | peak during GET {:.1} MB (+{:.1}) | PUT {:.0} MB/s | GET {:.0} MB/s |",
                    bytes / 1_000_000,
                    mb(m.idle),
                    mb(m.peak_put),
                    mb(m.peak_put.saturating_sub(m.idle)),
                    mb(m.peak_get),
                    mb(m.peak_get.saturating_sub(m.idle)),
                    m.put_mb_s,
                    m.get_mb_s
                );
            }
            Scenario::IdleRss { channels } => {
                let per = scenarios::idle_channel_rss(&t, channels).await?;
                println!("| RSS per idle channel | {channels} channels | {:.1} KB |", per / 1e3);
            }
        }
        anyhow::Ok(())
    })
}
