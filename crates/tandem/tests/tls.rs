//! HTTPS on the main listener with a self-signed certificate: curl uploads
//! with Digest, and the CLI reaches the API through TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::{Tandem, bin, pattern, peer, run};

/// A self-signed certificate for localhost and 127.0.0.1, as PEM files.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    (cert_pem, key_pem)
}

#[test]
fn curl_uploads_over_https_with_digest_to_a_self_signed_tandem() {
    if !peer("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = self_signed(dir.path());
    let data = dir.path().join("data");
    let t = Tandem::start(
        &data,
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    assert!(t.base.starts_with("https://"), "{}", t.banner);
    let input = &t.demo[1];
    assert!(input.url.starts_with("https://127.0.0.1:"), "{}", input.url);
    let body = pattern(3 * 1024 * 1024, 11);
    let file = dir.path().join("seg.ts");
    std::fs::write(&file, &body).unwrap();
    let (ok, code, err) = run(Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            cert_pem.to_str().unwrap(),
            "--digest",
            "-u",
        ])
        .arg(format!("{}:{}", input.username, input.password))
        .args(["-o", "/dev/null", "-w", "%{http_code}", "-T"])
        .arg(&file)
        .arg(format!("{}live/seg.ts", input.url)));
    assert!(ok, "{err}");
    assert_eq!(code, "201");
    assert!(std::fs::read(t.object("demo/1/live/seg.ts")).unwrap() == body);
    // Plain HTTP to the TLS listener is not served.
    let (_, code, _) = run(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(t.base.replace("https", "http") + "/metrics"));
    assert_eq!(code, "000");
    // The CLI finds the running server and trusts its certificate.
    let (ok, out, err) = run(Command::new(bin())
        .arg("--data")
        .arg(&data)
        .args(["channel", "list", "--json"]));
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["inputs"][1]["objects_received"], 1, "{out}");
}

#[test]
fn the_aws_cli_uploads_to_the_s3_listener_over_https() {
    if !peer("aws") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert_pem, key_pem) = self_signed(dir.path());
    let t = Tandem::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
        ],
    );
    assert!(t.s3.starts_with("https://127.0.0.1:"), "{}", t.banner);
    let archive = t.create_archive("news");
    let aws = support::Aws {
        endpoint: &t.s3,
        key: support::archive_keys(&archive, 0),
    };
    let body = pattern(2 * 1024 * 1024, 12);
    let file = dir.path().join("a.000000.ts");
    std::fs::write(&file, &body).unwrap();
    let (ok, _, err) = run(aws
        .cmd(&[
            "s3",
            "cp",
            file.to_str().unwrap(),
            "s3://news-0/a.000000.ts",
        ])
        .env("AWS_CA_BUNDLE", &cert_pem));
    assert!(ok, "{err}");
    let stored = std::fs::read(t.data.join("objects/s3.buckets/news-0/a.000000.ts")).unwrap();
    assert!(stored == body, "stored bytes differ");
}
