//! Smoke mode: every scenario runs for a moment against an in-process
//! server, so the harness cannot rot. Figures are not asserted: speed is
//! measured by the full run, never in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tandem_bench::scenarios::{self, Target};
use tandem_bench::soak;
use tandem_server::{Server, ServerConfig, SystemClock};
use tandem_store::LocalStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_in_smoke_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.mediastore_listen = None;
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let server = Server::bind_with(cfg, store, Arc::new(SystemClock))
        .await
        .unwrap();
    let t = Target {
        addr: server.local_addr().unwrap(),
        token: server.state().admin_token.clone(),
        pid: Some(std::process::id()),
    };
    tokio::spawn(server.run(std::future::pending()));

    let lat = scenarios::publish_latency(&t, 20, 10_000).await.unwrap();
    assert_eq!(lat.samples, 20);
    // Not a speed check: the figures exist (a publish takes some time),
    // are ordered, and are not absurd (a loopback publish under 30 s).
    assert!(
        0.0 < lat.p50_ms && lat.p50_ms <= lat.p99_ms && lat.p99_ms <= lat.max_ms,
        "{lat:?}"
    );
    assert!(lat.max_ms < 30_000.0, "{lat:?}");

    let scale = scenarios::scale(&t, 2, 1, 10_000, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(scale.errors, 0);
    assert!(scale.publish.samples >= 2, "{scale:?}");
    assert!(scale.rss_bytes > 0);

    let mem = scenarios::memory(&t, 8 * 1024 * 1024).await.unwrap();
    // The resident size was read (a process is never 0 bytes), the peaks
    // were sampled, and an 8 MiB upload streamed through bounded memory:
    // it does not cost more than 256 MiB above idle.
    const BOUND: u64 = 256 * 1024 * 1024;
    assert!(mem.idle > 0, "{mem:?}");
    assert!(
        mem.idle <= mem.peak_put && mem.peak_put < mem.idle + BOUND,
        "{mem:?}"
    );
    assert!(
        mem.idle <= mem.peak_get && mem.peak_get < mem.idle + BOUND,
        "{mem:?}"
    );
    assert!(mem.put_mb_s > 0.0 && mem.get_mb_s > 0.0, "{mem:?}");

    let capture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/smooth/ffmpeg_ismv_push.bin"
    ))
    .unwrap();
    let sm = tandem_bench::smooth::scale(&t, &capture, 2, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(sm.errors, 0, "{sm:?}");
    // Two points × two pipelines × four streams, at least two fragments each.
    assert!(sm.fragments_sent >= 32, "{sm:?}");
    assert!(sm.publish.samples >= 2, "{sm:?}");
    assert!(sm.rss_start > 0 && sm.rss_max >= sm.rss_start, "{sm:?}");

    assert!(
        scenarios::idle_channel_rss(&t, 3)
            .await
            .unwrap()
            .is_finite()
    );
}

/// The soak, two minutes against an in-process server: every sample is
/// taken (the server's process, its staging directory, the output's
/// delay), the archive pair receives its files over S3, nothing fails, and
/// descriptors and staging stay within their bounds. Memory is not judged
/// here: the output cache is still filling after two minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soak_runs_two_minutes_in_smoke_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.mediastore_listen = None;
    cfg.s3_listen = Some("127.0.0.1:0".parse().unwrap());
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let server = Server::bind_with(cfg, store, Arc::new(SystemClock))
        .await
        .unwrap();
    let t = Target {
        addr: server.local_addr().unwrap(),
        token: server.state().admin_token.clone(),
        pid: Some(std::process::id()),
    };
    let s3 = server.s3_addr();
    tokio::spawn(server.run(std::future::pending()));
    let cfg = soak::SoakConfig {
        channels: 3,
        readers: 1,
        size: 20_000,
        duration: Duration::from_secs(120),
        every: Duration::from_secs(10),
        data: Some(dir.path().to_path_buf()),
        archive_every: Some(Duration::from_secs(10)),
        s3,
    };
    let mut seen = 0;
    let r = soak::soak(&t, &cfg, |_| seen += 1).await.unwrap();
    assert_eq!(seen, r.samples.len());
    assert!(r.samples.len() >= 11, "{:?}", r.samples);
    assert_eq!(r.errors, 0, "{:?}", r.samples);
    let last = r.samples.last().unwrap();
    assert!(
        last.rss_bytes > 0 && last.fds > 0 && last.threads > 0,
        "{last:?}"
    );
    assert!(
        last.delay.as_ref().is_some_and(|d| d.samples > 0),
        "{last:?}"
    );
    // Both buckets, every 10 s.
    assert!(last.archive_files >= 22, "{last:?}");
    for name in ["open descriptors", "staging entries"] {
        let tr = r.trends.iter().find(|t| t.name == name).unwrap();
        assert!(tr.flat, "{tr:?}");
    }
}

/// Whether a peer program is installed; a missing one skips loudly, or
/// fails the test under `TANDEM_REQUIRE_PEERS=1`.
fn peer(name: &str) -> Option<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // nginx installs to sbin, which an unprivileged PATH may omit.
    dirs.push("/usr/sbin".into());
    let found = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("TANDEM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "{name} not installed, and TANDEM_REQUIRE_PEERS=1 requires it (run .ci/run to install peers)"
            );
        }
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

/// nginx as the benchmark's anchor configures it (`dav_methods PUT`,
/// `create_full_put_path`, files under a temporary directory), on a free
/// loopback port; stopped on drop.
struct Nginx {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(bin: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/live")).unwrap();
        std::fs::create_dir_all(root.join("data/tmp")).unwrap();
        let user = if std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
        {
            "user root;"
        } else {
            ""
        };
        let conf = format!(
            "{user}\ndaemon off;\nworker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n sendfile on;\n tcp_nodelay on;\n keepalive_requests 1000000;\n\
             client_body_temp_path {r}/data/tmp;\n proxy_temp_path {r}/pt;\n fastcgi_temp_path {r}/ft;\n\
             uwsgi_temp_path {r}/ut;\n scgi_temp_path {r}/st;\n\
             server {{\n  listen 127.0.0.1:{port};\n  root {r}/data;\n\
             location /live/ {{ dav_methods PUT DELETE MKCOL; create_full_put_path on; client_max_body_size 64m; client_body_buffer_size 1m; }}\n\
             }}\n}}\n",
            r = root.display()
        );
        std::fs::write(root.join("nginx.conf"), conf).unwrap();
        let child = std::process::Command::new(bin)
            .arg("-p")
            .arg(root)
            .arg("-c")
            .arg(root.join("nginx.conf"))
            .arg("-e")
            .arg(root.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Bounded: nginx listens within a moment or the test fails.
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::net::TcpStream::connect(addr).expect("nginx did not start listening");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediastore_scenarios_run_in_smoke_mode() {
    use tandem_bench::mediastore::{self, CompareConfig, Op, Origin, PayloadMode};

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    cfg.mediastore_listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.s3_listen = None;
    let store = Arc::new(LocalStore::open(dir.path()).unwrap());
    let server = Server::bind_with(cfg, store, Arc::new(SystemClock))
        .await
        .unwrap();
    let t = Target {
        addr: server.local_addr().unwrap(),
        token: server.state().admin_token.clone(),
        pid: Some(std::process::id()),
    };
    let ms_addr = server.mediastore_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));

    let container = mediastore::create_container(&t, "smoke").await.unwrap();
    let signer = Arc::new(container.signer());
    let tandem = Origin {
        label: "tandem",
        addr: ms_addr,
        prefix: format!("/{}", container.name),
        pids: vec![std::process::id()],
    };

    // Each GET must return exactly the body while its upload is in flight
    // (checked inside; an error fails here), and every one is timed.
    let body = mediastore::ts_like(300_000);
    let s = mediastore::ttfb_streaming(&tandem, &signer, &body, 20, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(s.ttfb.samples, 20, "{s:?}");
    assert!(
        0.0 < s.ttfb.p50_ms && s.ttfb.p50_ms <= s.ttfb.p99_ms && s.ttfb.max_ms < 30_000.0,
        "{s:?}"
    );
    let c = mediastore::ttfb_complete(&tandem, &signer, &body, 20, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(c.ttfb.samples, 20, "{c:?}");

    let Some(nginx_bin) = peer("nginx") else {
        return;
    };
    let nginx = Nginx::start(&nginx_bin);
    let nginx = Origin {
        label: "nginx",
        addr: nginx.addr,
        prefix: "/live".into(),
        pids: vec![nginx.child.id()],
    };
    let cfg = CompareConfig {
        bodies: vec![
            ("a20k.ts".into(), mediastore::ts_like(20_000)),
            ("b75k.ts".into(), mediastore::ts_like(75_000)),
        ],
        put_conns: vec![2],
        get_conns: vec![3],
        rounds: 2,
        turn: Duration::from_millis(300),
        payload: PayloadMode::Unsigned,
    };
    let mut shown = 0;
    // compare() reads back what each PUT load wrote, on both sides, and
    // each GET load counts a short body as an error.
    let cells = mediastore::compare(&tandem, &nginx, &signer, &cfg, |_| shown += 1)
        .await
        .unwrap();
    assert_eq!(shown, 4);
    let ops: Vec<(Op, &str, usize)> = cells
        .iter()
        .map(|c| (c.op, c.object.as_str(), c.conns))
        .collect();
    assert_eq!(
        ops,
        [
            (Op::Put, "a20k.ts", 2),
            (Op::Get, "a20k.ts", 3),
            (Op::Put, "b75k.ts", 2),
            (Op::Get, "b75k.ts", 3)
        ]
    );
    for cell in &cells {
        assert_eq!((cell.tandem.len(), cell.nginx.len()), (2, 2), "{cell:?}");
        assert_eq!(cell.errors(), (0, 0), "{cell:?}");
        for r in cell.tandem.iter().chain(&cell.nginx) {
            assert!(r.requests > 0 && r.latency.samples > 0, "{cell:?}");
            // Read from /proc (a short turn may see no tick of it: >= 0).
            assert!(
                r.cpu_us_per_req.is_some_and(|c| c.is_finite() && c >= 0.0),
                "{cell:?}"
            );
        }
        assert!(cell.ratio().is_finite() && cell.ratio() > 0.0, "{cell:?}");
        assert!(cell.row().starts_with("| "), "{}", cell.row());
    }
}

#[test]
fn the_udp_merge_scenario_and_its_bare_baseline_run_at_a_low_rate() {
    use tandem_bench::udp::{Forwarder, Sender, run_rate};
    for how in [Sender::Gso, Sender::Plain] {
        for fw in [Forwarder::Tandem, Forwarder::Bare] {
            let r = run_rate(1000, 1, fw, how).unwrap();
            assert_eq!(r.sent, 1000);
            assert_eq!(r.received, r.sent, "{fw:?} {how:?}: {r:?}");
            assert_eq!(r.missing, 0, "{fw:?} {how:?}: {r:?}");
        }
    }
}
