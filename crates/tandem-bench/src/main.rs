//! `tandem-bench`: runs the scenarios wrk cannot express against a running
//! Tandem and prints markdown rows for `docs/benchmarks.md`.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tandem_bench::mediastore::{self, CompareConfig, Origin, PayloadMode};
use tandem_bench::scenarios::{self, Target};
use tandem_bench::soak;

/// Benchmark scenarios against a running Tandem.
#[derive(Debug, Parser)]
#[command(name = "tandem-bench")]
struct Cli {
    /// Tandem's base URL (plain HTTP, loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The admin token (every scenario but `chaos`, which starts its own
    /// server, and `udp`, which runs a flow in process).
    #[arg(long, env = "TANDEM_TOKEN")]
    token: Option<String>,
    /// The server's pid, for CPU and memory accounting.
    #[arg(long)]
    pid: Option<u32>,
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Kill points: starts `tandem serve` on a data directory on disk,
    /// loads it (HLS by PUT and WebDAV, S3 multipart, control API), kills it
    /// with SIGKILL at a seeded random moment, restarts it and checks its
    /// promises; N times. Exits non-zero on any violation.
    Chaos {
        #[arg(long, default_value_t = 1000)]
        points: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The `tandem` binary (default: the one beside tandem-bench).
        #[arg(long)]
        tandem: Option<std::path::PathBuf>,
        /// Where to keep the data directory and the server's log (on disk;
        /// default: a new directory under the system's temporary directory,
        /// removed after a run without violations).
        #[arg(long)]
        data: Option<std::path::PathBuf>,
        /// The kill comes between these many milliseconds after the load
        /// starts, uniformly.
        #[arg(long, default_value_t = 30)]
        min_kill_ms: u64,
        #[arg(long, default_value_t = 800)]
        max_kill_ms: u64,
    },
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
    /// 2022-7 merge throughput on loopback: 1316-byte payloads on both
    /// legs of an in-process flow at rising packet rates (no server).
    Udp {
        /// Packets per second per leg, in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "25000,50000,100000,150000,200000"
        )]
        rates: Vec<u64>,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Also run each rate through a bare forwarder (no merge: leg 0
        /// sent on, leg 1 dropped), the ceiling of the same topology.
        #[arg(long)]
        baseline: bool,
        /// How the encoder's stand-in sends: `gso` (runs of datagrams per
        /// system call, reaching the legs as runs, as from a NIC with
        /// receive offload) or `plain` (one message per datagram, as
        /// ffmpeg sends). Both may be given.
        #[arg(long, value_delimiter = ',', default_value = "gso,plain")]
        sender: Vec<String>,
        /// Runs of each rate: a rate counts as merged with zero loss only
        /// if every run of it was.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
    },
    /// Scenario 5: RSS during a PUT and a GET of this many bytes.
    Memory {
        #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024)]
        bytes: u64,
    },
    /// Smooth: publishing points × 2 encoders × (3 video + 1 audio)
    /// streams, a fragment every 2 s, replayed from the captured push.
    Smooth {
        #[arg(long, default_value_t = 50)]
        points: usize,
        #[arg(long, default_value_t = 240)]
        seconds: u64,
        /// The captured ffmpeg push to replay.
        #[arg(long, default_value = "testdata/smooth/ffmpeg_ismv_push.bin")]
        capture: std::path::PathBuf,
    },
    /// RSS per idle channel.
    IdleRss {
        #[arg(long, default_value_t = 200)]
        channels: usize,
    },
    /// MediaStore-style PutObject/GetObject req/s against Tandem's
    /// MediaStore listener and nginx, interleaved in rounds.
    Mediastore {
        #[command(flatten)]
        ms: MsArgs,
        /// nginx (the anchor: `dav_methods PUT`, tmpfs), as IP:PORT.
        #[arg(long)]
        nginx: SocketAddr,
        /// nginx's PUT location.
        #[arg(long, default_value = "/live")]
        nginx_prefix: String,
        /// nginx's master pid (workers are its children), for CPU accounting.
        #[arg(long)]
        nginx_pid: Option<u32>,
        #[arg(long, value_delimiter = ',', default_value = "8,64")]
        put_conns: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "64,256")]
        get_conns: Vec<usize>,
        /// Rounds per row; each runs Tandem and nginx once, alternating
        /// which goes first.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds of one server's turn in a round.
        #[arg(long, default_value_t = 5.0)]
        turn_secs: f64,
        /// How PUT bodies are signed: unsigned (UNSIGNED-PAYLOAD, as
        /// botocore), header (x-amz-content-sha256), body (hash signed, not sent).
        #[arg(long, default_value = "unsigned")]
        payload: String,
    },
    /// Live load held for --minutes while the server's RSS, descriptors,
    /// threads, staging entries and publish delay are sampled.
    Soak {
        #[command(flatten)]
        soak: SoakArgs,
    },
    /// The encoder's Digest upload latency (from 127.0.0.1), unloaded and
    /// under each hostile load from 127.0.0.2 and up.
    Hostile {
        /// Uploads per measurement.
        #[arg(long, default_value_t = 500)]
        uploads: usize,
        #[arg(long, default_value_t = 200_000)]
        size: usize,
        /// Tandem's S3 listener, for the bad-signature load.
        #[arg(long, default_value = "127.0.0.1:9000")]
        s3: SocketAddr,
        /// The server's log file, to report how fast it grows under each load.
        #[arg(long)]
        server_log: Option<std::path::PathBuf>,
    },
    /// Time to first byte of a STREAMING GET while its upload is in flight,
    /// and of a complete object for context.
    Ttfb {
        #[command(flatten)]
        ms: MsArgs,
        /// Also time GETs of a complete object from this nginx, IP:PORT.
        #[arg(long)]
        nginx: Option<SocketAddr>,
        #[arg(long, default_value = "/live")]
        nginx_prefix: String,
        #[arg(long, default_value_t = 1000)]
        reps: usize,
    },
}

/// The soak's settings.
#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// How long to hold the load.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    #[arg(long, default_value_t = 50)]
    channels: usize,
    /// Players per channel.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    #[arg(long, default_value_t = 250_000)]
    size: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    every: u64,
    /// The server's data directory, to count `staging/` entries.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Seconds between archive uploads (0: none).
    #[arg(long, default_value_t = 10)]
    archive_every: u64,
    /// The S3 listener, IP:PORT, when the archive view's endpoint is not it.
    #[arg(long)]
    s3: Option<SocketAddr>,
}

/// Tandem's MediaStore listener and the objects to send.
#[derive(Debug, clap::Args)]
struct MsArgs {
    /// Tandem's MediaStore listener, IP:PORT.
    #[arg(long, default_value = "127.0.0.1:9010")]
    mediastore: SocketAddr,
    /// Object bodies (e.g. the anchor's seg200k.ts and seg750k.ts); without
    /// any, generated bodies of --sizes bytes.
    #[arg(long = "body")]
    bodies: Vec<std::path::PathBuf>,
    #[arg(long, value_delimiter = ',', default_value = "200000,750000")]
    sizes: Vec<usize>,
}

impl MsArgs {
    fn bodies(&self) -> anyhow::Result<Vec<(String, Arc<[u8]>)>> {
        if self.bodies.is_empty() {
            return Ok(self
                .sizes
                .iter()
                .map(|&n| (format!("obj{}k.ts", n / 1000), mediastore::ts_like(n)))
                .collect());
        }
        self.bodies
            .iter()
            .map(|p| {
                let name = p
                    .file_name()
                    .map_or_else(|| "body".into(), |n| n.to_string_lossy().into_owned());
                let b = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                Ok((name, b.into()))
            })
            .collect()
    }
}

fn chaos(
    points: usize,
    seed: u64,
    tandem: Option<std::path::PathBuf>,
    data: Option<std::path::PathBuf>,
    kill_ms: (u64, u64),
) -> anyhow::Result<()> {
    use tandem_bench::chaos;
    let tandem = match tandem {
        Some(t) => t,
        None => chaos::default_binary()?,
    };
    let (data, temporary) = match data {
        Some(d) => (d, false),
        None => (
            std::env::temp_dir().join(format!("tandem-chaos-{}-{seed}", std::process::id())),
            true,
        ),
    };
    if kill_ms.1 <= kill_ms.0 {
        anyhow::bail!("--max-kill-ms must be above --min-kill-ms");
    }
    let cfg = chaos::Config {
        points,
        seed,
        tandem,
        data: data.clone(),
        kill_after: Duration::from_millis(kill_ms.0)..Duration::from_millis(kill_ms.1),
        env: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(chaos::run(&cfg, |point, r| {
        if point % 10 == 0 || point == points {
            eprintln!(
                "point {point}/{points}: {} objects checked, {} violations, {:.1} s",
                r.objects_checked,
                r.violations.len(),
                r.elapsed.as_secs_f64()
            );
        }
    }))?;
    println!("{}", report.render());
    if report.violations.is_empty() {
        if temporary {
            let _ = std::fs::remove_dir_all(&data);
        }
        Ok(())
    } else {
        eprintln!("data directory and server log kept in {}", data.display());
        std::process::exit(1);
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::Udp {
        rates,
        seconds,
        baseline,
        sender,
        repeat,
    } = &cli.command
    {
        use tandem_bench::udp::{Forwarder, Sender};
        let senders = sender
            .iter()
            .map(|s| match s.as_str() {
                "gso" => Ok(Sender::Gso),
                "plain" => Ok(Sender::Plain),
                other => Err(anyhow::anyhow!("--sender {other:?}: expected gso or plain")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let forwarders: &[Forwarder] = if *baseline {
            &[Forwarder::Tandem, Forwarder::Bare]
        } else {
            &[Forwarder::Tandem]
        };
        for how in senders {
            println!(
                "\n| forwarder | sender | offered pps/leg | sent pps/leg | output pps | output Mbit/s (TS) | missing | forwarding thread CPU % | RSS MiB |"
            );
            println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
            let mut best = None;
            let mut bare_best: Option<tandem_bench::udp::UdpRow> = None;
            let mut tally = Vec::new();
            for &pps in rates {
                for &fw in forwarders {
                    let mut clean = 0;
                    let mut last = None;
                    for _ in 0..(*repeat).max(1) {
                        let r = tandem_bench::udp::run_rate(pps, *seconds, fw, how)?;
                        println!(
                            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {} of {} | {:.0} | {:.0} |",
                            fw.label(),
                            if how == Sender::Gso { "gso" } else { "plain" },
                            r.offered_pps,
                            r.sent_pps,
                            r.received_pps,
                            r.received_mbps,
                            r.missing,
                            r.sent,
                            r.flow_cpu_pct,
                            r.rss_mib
                        );
                        std::io::stdout().flush()?;
                        clean += u32::from(r.missing == 0);
                        last = Some(r);
                    }
                    tally.push((fw, pps, clean));
                    if clean == (*repeat).max(1)
                        && let Some(r) = last
                    {
                        if fw == Forwarder::Tandem {
                            best = Some(r);
                        } else {
                            bare_best = Some(r);
                        }
                    }
                }
            }
            if *repeat > 1 {
                for (fw, pps, clean) in &tally {
                    println!(
                        "# {} at {pps} packets/s per leg: zero loss in {clean} of {repeat} runs",
                        fw.label()
                    );
                }
            }
            match &best {
                Some(r) => println!(
                    "# highest rate merged with zero loss: {:.0} packets/s, {:.0} Mbit/s",
                    r.received_pps, r.received_mbps
                ),
                None => println!("# no rate merged with zero loss"),
            }
            if *baseline {
                match (&bare_best, &best) {
                    (Some(b), Some(t)) => println!(
                        "# highest rate the bare forwarder passed with zero loss: {:.0} packets/s; the merge reached {:.0} % of it",
                        b.received_pps,
                        t.received_pps / b.received_pps.max(1.0) * 100.0
                    ),
                    (Some(b), None) => println!(
                        "# highest rate the bare forwarder passed with zero loss: {:.0} packets/s",
                        b.received_pps
                    ),
                    (None, _) => println!("# the bare forwarder passed no rate with zero loss"),
                }
            }
        }
        return Ok(());
    }
    if let Scenario::Chaos {
        points,
        seed,
        tandem,
        data,
        min_kill_ms,
        max_kill_ms,
    } = cli.command
    {
        return chaos(points, seed, tandem, data, (min_kill_ms, max_kill_ms));
    }
    let Some(token) = cli.token else {
        anyhow::bail!("--token (or TANDEM_TOKEN) is needed: the server's admin token");
    };
    let authority = cli
        .server
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let addr = authority
        .parse()
        .with_context(|| format!("--server {}: expected http://IP:PORT", cli.server))?;
    let t = Target {
        addr,
        token,
        pid: cli.pid,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Scenario::Chaos { .. } => {}
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
            Scenario::Udp { .. } => {}
            Scenario::Soak { soak } => run_soak(&t, soak).await?,
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
            Scenario::Smooth { points, seconds, capture } => {
                let bytes = std::fs::read(&capture).with_context(|| format!("cannot read {}", capture.display()))?;
                let r = tandem_bench::smooth::scale(&t, &bytes, points, Duration::from_secs(seconds)).await?;
                let mb = |b: u64| b as f64 / 1e6;
                println!("| points | seconds | fragments sent | MB sent | publish p50 ms | p99 ms | max ms | first fragment p50 ms | max ms | server CPU (% of one core) | RSS start MB | end MB | max MB | errors | late |");
                println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
                println!(
                    "| {} | {:.0} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                    r.points, r.seconds, r.fragments_sent, mb(r.bytes_sent), r.publish.p50_ms, r.publish.p99_ms,
                    r.publish.max_ms, r.publish_first.p50_ms, r.publish_first.max_ms, r.cpu_percent, mb(r.rss_start), mb(r.rss_end), mb(r.rss_max), r.errors, r.late
                );
                println!("\n(publish p50/p99/max: every audio fragment timed but each point's first; first fragment: the one each point starts with)");
                match &r.server {
                    Some(d) => println!(
                        "\nserver-side publish delay (last byte arrived → named in a served manifest; every fragment of both pipelines, {} points' histograms added up): {} fragments, p50 ≤ {} ms, p99 ≤ {} ms (bucket edges), {:.2} % within 5 ms",
                        d.points,
                        d.count,
                        d.quantile_edge_ms(0.5).map_or("?".into(), |v| format!("{v}")),
                        d.quantile_edge_ms(0.99).map_or("?".into(), |v| format!("{v}")),
                        d.share_within(5.0).unwrap_or(f64::NAN)
                    ),
                    None => println!("\nserver-side publish delay: not read from /metrics"),
                }
                let trace: Vec<String> = r.rss_trace.iter().map(|(s, b)| format!("{s} s: {:.1}", mb(*b))).collect();
                println!("\nRSS (MB) every 10 s: {}", trace.join(", "));
            }
            Scenario::IdleRss { channels } => {
                let per = scenarios::idle_channel_rss(&t, channels).await?;
                println!("| RSS per idle channel | {channels} channels | {:.1} KB |", per / 1e3);
            }
            Scenario::Mediastore { ms, nginx, nginx_prefix, nginx_pid, put_conns, get_conns, rounds, turn_secs, payload } => {
                let payload = match payload.as_str() {
                    "unsigned" => PayloadMode::Unsigned,
                    "header" => PayloadMode::Header,
                    "body" => PayloadMode::Body,
                    other => anyhow::bail!("--payload {other:?}: expected unsigned, header or body"),
                };
                let container = mediastore::create_container(&t, "bench-ms").await?;
                let signer = Arc::new(container.signer());
                let tandem = Origin { label: "tandem", addr: ms.mediastore, prefix: format!("/{}", container.name), pids: t.pid.into_iter().collect() };
                let nginx = Origin { label: "nginx", addr: nginx, prefix: nginx_prefix.trim_end_matches('/').to_owned(), pids: nginx_pid.into_iter().collect() };
                // A connection count of 0 leaves that operation out.
                let cfg = CompareConfig {
                    bodies: ms.bodies()?,
                    put_conns: put_conns.into_iter().filter(|&c| c > 0).collect(),
                    get_conns: get_conns.into_iter().filter(|&c| c > 0).collect(),
                    rounds,
                    turn: Duration::from_secs_f64(turn_secs),
                    payload,
                };
                println!("{}", mediastore::TABLE_HEAD);
                mediastore::compare(&tandem, &nginx, &signer, &cfg, |cell| {
                    println!("{}", cell.row());
                    let _ = std::io::stdout().flush();
                })
                .await?;
            }
            Scenario::Hostile { uploads, size, s3, server_log } => {
                println!("| attack (from 127.0.0.2 and up) | attacker's answer | attacker's requests or connections | of them answered so | encoder PUT p50 unloaded / under attack ms | p99 unloaded ms | p99 under attack ms | p99 ratio | server log KB/s |");
                println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
                let attacks = tandem_bench::hostile::Attack::ALL;
                tandem_bench::hostile::report(&t, Some(s3), uploads, size, &attacks, server_log.as_deref(), |r| {
                    println!(
                        "| {} | {} | {} | {} | {:.2} / {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                        r.attack.label(),
                        r.attack.expected(),
                        r.sent,
                        r.limited,
                        r.baseline.p50_ms,
                        r.loaded.p50_ms,
                        r.baseline.p99_ms,
                        r.loaded.p99_ms,
                        r.loaded.p99_ms / r.baseline.p99_ms.max(1e-9),
                        r.log_bytes_per_sec.map_or("–".to_owned(), |b| format!("{:.1}", b / 1e3))
                    );
                    let _ = std::io::stdout().flush();
                })
                .await?;
            }
            Scenario::Ttfb { ms, nginx, nginx_prefix, reps } => {
                let container = mediastore::create_container(&t, "bench-ttfb").await?;
                let signer = container.signer();
                let tandem = Origin { label: "tandem", addr: ms.mediastore, prefix: format!("/{}", container.name), pids: Vec::new() };
                let limit = Duration::from_secs(120);
                println!("| GET | object | server | GETs | first body byte p50 ms | p99 ms | max ms |");
                println!("|---|---|---|---:|---:|---:|---:|");
                for (name, body) in ms.bodies()? {
                    let s = mediastore::ttfb_streaming(&tandem, &signer, &body, reps, limit).await?;
                    let row = |what: &str, who: &str, r: &mediastore::TtfbReport| {
                        println!("| {what} | {name} | {who} | {} | {:.3} | {:.3} | {:.3} |", r.ttfb.samples, r.ttfb.p50_ms, r.ttfb.p99_ms, r.ttfb.max_ms);
                    };
                    row("STREAMING, upload half sent", "Tandem", &s);
                    let c = mediastore::ttfb_complete(&tandem, &signer, &body, reps, limit).await?;
                    row("STANDARD, complete", "Tandem", &c);
                    if let Some(addr) = nginx {
                        let o = Origin { label: "nginx", addr, prefix: nginx_prefix.trim_end_matches('/').to_owned(), pids: Vec::new() };
                        let n = mediastore::ttfb_complete(&o, &signer, &body, reps, limit).await?;
                        row("complete", "nginx", &n);
                    }
                }
            }
        }
        anyhow::Ok(())
    })
}

async fn run_soak(t: &Target, a: SoakArgs) -> anyhow::Result<()> {
    let cfg = soak::SoakConfig {
        channels: a.channels,
        readers: a.readers,
        size: a.size,
        duration: Duration::from_secs_f64(a.minutes * 60.0),
        every: Duration::from_secs(a.every.max(1)),
        data: a.data,
        archive_every: (a.archive_every > 0).then(|| Duration::from_secs(a.archive_every)),
        s3: a.s3,
    };
    println!(
        "| s | RSS MB | fds | threads | staging | delay p50 ms | delay p99 ms | errors | archive files |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let r = soak::soak(t, &cfg, |s| {
        let (p50, p99) = s
            .delay
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |d| (d.p50_ms, d.p99_ms));
        println!(
            "| {:.0} | {:.1} | {} | {} | {} | {p50:.2} | {p99:.2} | {} | {} |",
            s.at.as_secs_f64(),
            s.rss_bytes as f64 / 1e6,
            s.fds,
            s.threads,
            s.staging,
            s.errors,
            s.archive_files
        );
        let _ = std::io::stdout().flush();
    })
    .await?;
    println!();
    println!("| figure | start | end | max | after warm-up | bound | flat |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for tr in &r.trends {
        println!(
            "| {}{} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            tr.name,
            if tr.unit.is_empty() {
                String::new()
            } else {
                format!(" ({})", tr.unit)
            },
            tr.start,
            tr.end,
            tr.max,
            tr.settled,
            tr.bound,
            if tr.flat { "yes" } else { "NO" }
        );
    }
    println!(
        "soak: {:.0} minutes, {} samples, {} errors, {}",
        cfg.duration.as_secs_f64() / 60.0,
        r.samples.len(),
        r.errors,
        if r.flat() { "flat" } else { "NOT flat" }
    );
    Ok(())
}
