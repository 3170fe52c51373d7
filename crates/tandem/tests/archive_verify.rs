//! The archive verifier end to end: ffmpeg cuts an archive of a test
//! source into 10 s MPEG-TS rollover files, the AWS CLI writes them into
//! both buckets of a pair, the test damages them, and `tandem archive
//! verify` must name each damage, exit 1 for the index neither bucket
//! holds, and after `--repair` exit 0 with every index whole in both.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{Aws, Tandem, archive_keys, bin, peer, run};

const FILES: usize = 8;

fn name(i: usize) -> String {
    format!("curling-20261125T120000.{i:06}.m2ts")
}

/// 80 s of test source as 10 s files `…000000.m2ts` to `…000007.m2ts`.
fn make_archive(dir: &Path) {
    let (ok, _, err) = run(Command::new("ffmpeg")
        .current_dir(dir)
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000",
            "-t",
            "80",
        ])
        .args([
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k",
        ])
        .args([
            "-f",
            "segment",
            "-segment_time",
            "10",
            "-segment_format",
            "mpegts",
        ])
        .arg("curling-20261125T120000.%06d.m2ts"));
    assert!(ok, "ffmpeg: {err}");
    for i in 0..FILES {
        assert!(dir.join(name(i)).is_file(), "ffmpeg wrote no {}", name(i));
    }
}

/// `tandem archive COMMAND s3://news-0/archive/ s3://news-1/archive/ EXTRA…`
/// on the test's data directory, with no AWS variables from outside.
fn archive_cmd(t: &Tandem, command: &str, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--data")
        .arg(&t.data)
        .args([
            "archive",
            command,
            "s3://news-0/archive/",
            "s3://news-1/archive/",
        ])
        .args(extra)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap()
}

fn verify(t: &Tandem, extra: &[&str]) -> (bool, serde_json::Value, String) {
    let out = archive_cmd(t, "verify", &[&["--json"], extra].concat());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON report: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.success(), json, stdout)
}

fn states(report: &serde_json::Value) -> Vec<(u64, String, String, String)> {
    report["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["primary"].as_str().unwrap().to_owned(),
                r["backup"].as_str().unwrap().to_owned(),
                r["covered_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn row(i: u64, p: &str, b: &str, c: &str) -> (u64, String, String, String) {
    (i, p.into(), b.into(), c.into())
}

#[test]
fn verify_names_each_damaged_file_and_repair_makes_both_buckets_whole() {
    if !peer("ffmpeg") || !peer("aws") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    make_archive(&files);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let archive = t.create_archive("news");
    let aws = [0, 1].map(|p| Aws {
        endpoint: &t.s3,
        key: archive_keys(&archive, p),
    });
    // Each pipeline writes its own bucket, file by file, as the encoder does.
    for (p, a) in aws.iter().enumerate() {
        for i in 0..FILES {
            let src = files.join(name(i));
            a.ok(&[
                "s3",
                "cp",
                src.to_str().unwrap(),
                &format!("s3://news-{p}/archive/{}", name(i)),
            ]);
        }
    }
    let (ok, report, _) = verify(&t, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["complete"], true);

    // The damage: 3 truncated in the primary, 4 gone from the backup, a
    // sync byte flipped in 5 of the primary, 6 gone from both.
    let whole3 = std::fs::read(files.join(name(3))).unwrap();
    let cut = files.join("cut.m2ts");
    std::fs::write(&cut, &whole3[..whole3.len() * 2 / 5 + 77]).unwrap();
    aws[0].ok(&[
        "s3",
        "cp",
        cut.to_str().unwrap(),
        &format!("s3://news-0/archive/{}", name(3)),
    ]);
    aws[1].ok(&["s3", "rm", &format!("s3://news-1/archive/{}", name(4))]);
    let mut bad5 = std::fs::read(files.join(name(5))).unwrap();
    // ffmpeg writes `.m2ts` names as BDAV: 192-byte packets, sync at +4.
    let (stride, sync) = if bad5[4] == 0x47 { (192, 4) } else { (188, 0) };
    assert_eq!(bad5[stride * 100 + sync], 0x47);
    bad5[stride * 100 + sync] ^= 0x01;
    let flipped = files.join("flipped.m2ts");
    std::fs::write(&flipped, &bad5).unwrap();
    aws[0].ok(&[
        "s3",
        "cp",
        flipped.to_str().unwrap(),
        &format!("s3://news-0/archive/{}", name(5)),
    ]);
    aws[0].ok(&["s3", "rm", &format!("s3://news-0/archive/{}", name(6))]);
    aws[1].ok(&["s3", "rm", &format!("s3://news-1/archive/{}", name(6))]);

    let (ok, report, stdout) = verify(&t, &[]);
    assert!(
        !ok,
        "verify must exit 1 while index 6 is whole nowhere: {stdout}"
    );
    assert_eq!(report["complete"], false);
    let whole = |i| row(i, "whole", "whole", "both");
    assert_eq!(
        states(&report),
        vec![
            whole(0),
            whole(1),
            whole(2),
            row(3, "truncated", "whole", "backup"),
            row(4, "whole", "missing", "primary"),
            row(5, "corrupt", "whole", "backup"),
            row(6, "missing", "missing", "none"),
            whole(7),
        ]
    );
    // The human table says the same.
    let out = archive_cmd(&t, "verify", &[]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(table.contains("INCOMPLETE"), "{table}");

    // `archive watch` raises the same gap (one pass).
    let out = archive_cmd(&t, "watch", &["--checks", "1"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("index 6 is whole in neither bucket (primary missing, backup missing)"),
        "{said}"
    );

    // Index 6 comes back on one side; repair copies every whole file over
    // the side that lacks it.
    let six = files.join(name(6));
    aws[0].ok(&[
        "s3",
        "cp",
        six.to_str().unwrap(),
        &format!("s3://news-0/archive/{}", name(6)),
    ]);
    let (ok, report, stdout) = verify(&t, &["--repair"]);
    assert!(ok, "{stdout}");
    assert_eq!(
        states(&report),
        (0..FILES as u64).map(whole).collect::<Vec<_>>()
    );
    // The repaired copies are the original files, byte for byte.
    for i in 0..FILES {
        for p in 0..2 {
            let stored = std::fs::read(
                t.data
                    .join("objects/s3.buckets")
                    .join(format!("news-{p}/archive"))
                    .join(name(i)),
            )
            .unwrap();
            assert!(
                stored == std::fs::read(files.join(name(i))).unwrap(),
                "news-{p} {} differs from what ffmpeg wrote",
                name(i)
            );
        }
    }
}
