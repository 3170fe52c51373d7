//! Smoke mode: every scenario runs for a moment against an in-process
//! server, so the harness cannot rot. Figures are not asserted: speed is
//! measured by the full run, never in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tandem_bench::scenarios::{self, Target};
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

    assert!(
        scenarios::idle_channel_rss(&t, 3)
            .await
            .unwrap()
            .is_finite()
    );
}
