//! Kill points (`tandem-bench chaos`) against the real binary: a short
//! campaign keeps every promise, and a store that publishes segments one
//! byte short (the test-only `TANDEM_FAULT_INJECT`) is caught.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use tandem_bench::chaos::{self, Config, Invariant};

fn config(dir: &std::path::Path, points: usize, seed: u64) -> Config {
    Config {
        points,
        seed,
        tandem: support::bin().into(),
        data: dir.join("campaign"),
        kill_after: Duration::from_millis(30)..Duration::from_millis(600),
        env: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_points_keep_every_promise() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!chaos::on_tmpfs(dir.path()), "kill points need a disk");
    let report = chaos::run(&config(dir.path(), 20, 7), |_, _| {})
        .await
        .unwrap();
    let text = report.render();
    assert_eq!(report.points, 20, "{text}");
    // Every restart read objects back: the campaign checked something.
    assert!(report.objects_checked >= 20, "{text}");
    assert!(report.violations.is_empty(), "{text}");
    assert_eq!(
        text.lines().last().unwrap(),
        format!(
            "chaos: 20 points, {} objects checked, 0 violations",
            report.objects_checked
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_publishes_truncated_segments_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), 3, 7);
    cfg.env = vec![("TANDEM_FAULT_INJECT".into(), "truncate-ts".into())];
    let report = chaos::run(&cfg, |_, _| {}).await.unwrap();
    let text = report.render();
    // Every answered segment upload is one byte short when read back.
    assert!(report.of(Invariant::Acknowledged) > 0, "{text}");
    let last = text.lines().last().unwrap();
    assert!(last.starts_with("chaos: 3 points, "), "{last}");
    assert!(
        last.ends_with(&format!("{} violations", report.violations.len())),
        "{last}"
    );
    assert!(
        text.contains("acknowledged objects present with exactly their bytes ("),
        "violations are listed under their invariant:\n{text}"
    );
}
