//! curl as the ingest client: Digest uploads of a large file, with
//! Content-Length and chunked, and the unauthenticated Expect probe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{Tandem, pattern, peer, run};

#[test]
fn curl_digest_uploads_50_mb_with_content_length_and_chunked() {
    if !peer("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let file = dir.path().join("big.ts");
    let body = pattern(50 * 1024 * 1024, 7);
    std::fs::write(&file, &body).unwrap();
    let input = &t.demo[0];
    let user = format!("{}:{}", input.username, input.password);
    for (name, extra) in [
        ("length.ts", vec![]),
        ("chunked.ts", vec!["-H", "Transfer-Encoding: chunked"]),
    ] {
        let (ok, code, err) = run(Command::new("curl")
            .args([
                "-sS",
                "--digest",
                "-u",
                &user,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-T",
            ])
            .arg(&file)
            .args(&extra)
            .arg(format!("{}live/{name}", input.url)));
        assert!(ok, "curl failed: {err}");
        assert_eq!(code, "201", "{name}");
        let stored = std::fs::read(t.object(&format!("demo/0/live/{name}"))).unwrap();
        assert!(
            stored == body,
            "{name}: stored {} bytes differ from the 50 MiB sent",
            stored.len()
        );
    }
}

#[test]
fn curl_without_credentials_is_refused_before_it_sends_the_body() {
    if !peer("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let file = dir.path().join("seg.ts");
    std::fs::write(&file, pattern(2 * 1024 * 1024, 3)).unwrap();
    let (_, out, err) = run(Command::new("curl")
        .args([
            "-sS",
            "-v",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
            "-H",
            "Expect: 100-continue",
            "-T",
        ])
        .arg(&file)
        .arg(format!("{}live/seg.ts", t.demo[0].url)));
    assert!(err.contains("> Expect: 100-continue"), "{err}");
    assert!(
        !err.contains("< HTTP/1.1 100"),
        "no 100 Continue for an unauthenticated request:\n{err}"
    );
    assert_eq!(out, "401 0", "401, and not one body byte uploaded");
    assert!(!t.object("demo/0/live/seg.ts").exists());
}
