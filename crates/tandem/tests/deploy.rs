//! The files in `deploy/` checked by the tools that will read them:
//! `promtool` for the alerting rules (syntax and their unit tests),
//! `systemd-analyze` for the unit (against the built binary, since
//! `verify` insists that ExecStart exists), and every metric the rules and
//! the dashboard name is one Tandem exports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::peer;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(success, stdout + stderr)`.
fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_accepts_the_alerting_rules_and_their_unit_tests_pass() {
    if !peer("promtool") {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    let (ok, text) = run(Command::new("promtool")
        .args(["check", "rules", "tandem.rules.yml"])
        .current_dir(&dir));
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
    let (ok, text) = run(Command::new("promtool")
        .args(["test", "rules", "tandem.rules.test.yml"])
        .current_dir(&dir));
    assert!(ok, "{text}");
    assert!(
        text.contains("SUCCESS") && !text.contains("FAILED"),
        "{text}"
    );
}

#[test]
fn systemd_accepts_the_hardened_unit() {
    if !peer("systemd-analyze") {
        return;
    }
    let unit = std::fs::read_to_string(repo().join("deploy/tandem.service")).unwrap();
    for line in [
        "User=tandem",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/tandem",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    assert!(unit.contains("ExecStart=/usr/local/bin/tandem serve"));
    // The same unit, run from the binary this build produced.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/tandem", support::bin())).unwrap();
    let (ok, text) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    // verify exits 0 on unknown keys, printing them: any output is a finding.
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify: {text}"
    );
    // An exposure score of 2.0 or less out of 10 (systemd rates it "OK").
    let (ok, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path));
    assert!(ok, "systemd-analyze security: {text}");
    let score = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tandem.service: ")
                .nth(1)
        })
        .unwrap_or_default()
        .to_owned();
    eprintln!("systemd exposure: {score}");
}

/// `tandem_…` names in `text`, with a histogram's or summary's series
/// suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("tandem_") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end] == b'_'
                || bytes[end].is_ascii_digit())
        {
            end += 1;
        }
        // Part of a longer word (a file name such as `tandem.rules.yml` has
        // no underscore after `tandem`, so only identifiers match here).
        if !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'/')
        {
            let name = &text[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

/// Every `"tandem_…"` string literal in the crates' sources.
fn exported() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![repo().join("crates")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests" && n != "target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("tandem_")
                        && piece
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
                    {
                        out.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_tandem_exports() {
    let exported = exported();
    assert!(exported.contains("tandem_input_up"), "{exported:?}");
    for file in [
        "deploy/prometheus/tandem.rules.yml",
        "deploy/grafana/tandem.json",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let used = metric_names(&text);
        assert!(used.len() >= 10, "{file}: {used:?}");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics Tandem does not export: {unknown:?}"
        );
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/tandem.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "tandem-overview");
    assert!(
        dash["panels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "row" || p["targets"].as_array().is_some_and(|t| !t.is_empty()))
    );
}
