//! ffmpeg as the redundant encoder: two pipelines push the same live
//! source as HLS over HTTP PUT, one per input, with credentials in the URL
//! (as ffmpeg takes them). Every segment and playlist each pipeline wrote
//! is compared byte for byte with the copy the same ffmpeg process wrote
//! locally, and ffprobe reads the HLS back from the input with credentials.
//!
//! ffmpeg's HLS muxer sends no credentials until answered 401 and then
//! prefers Digest over Basic when both are offered, so the Basic run uses a
//! server configured to offer Basic only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::{Tandem, peer, run};

/// Seconds of source each pipeline pushes in real time.
const SECONDS: u32 = 22;

fn push_both_pipelines_and_compare(extra_server_args: &[&str], dir: &Path) {
    let src = support::make_source(dir, SECONDS);
    let t = Tandem::start(&dir.join("data"), extra_server_args);
    let pushes: Vec<_> = (0..2)
        .map(|p| {
            let local = dir.join(format!("local{p}"));
            std::fs::create_dir_all(&local).unwrap();
            let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
            let child = Command::new("ffmpeg")
                .args(["-v", "error", "-re", "-i"])
                .arg(&src)
                .args([
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-f",
                    "hls",
                    "-hls_time",
                    "2",
                    "-hls_list_size",
                    "0",
                    "-method",
                    "PUT",
                    &url,
                ])
                .args([
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-f",
                    "hls",
                    "-hls_time",
                    "2",
                    "-hls_list_size",
                    "0",
                ])
                .arg(local.join("channel.m3u8"))
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (p, local, child)
        })
        .collect();
    for (p, local, child) in pushes {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut names: Vec<String> = std::fs::read_dir(&local)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".tmp"))
            .collect();
        names.sort();
        let segments = names.iter().filter(|n| n.ends_with(".ts")).count();
        assert!(
            segments >= 10,
            "pipeline {p}: only {segments} segments written locally; ffmpeg said:\n{stderr}"
        );
        assert!(names.contains(&"channel.m3u8".to_owned()));
        for name in &names {
            let sent = std::fs::read(local.join(name)).unwrap();
            // ffmpeg may exit before the server has answered its last PUT:
            // the last playlist can be committed a moment after.
            let read = || std::fs::read(t.object(&format!("demo/{p}/live/{name}")));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while read().ok().as_ref() != Some(&sent) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let stored = read().unwrap_or_else(|e| {
                panic!("pipeline {p}: {name} was not stored ({e}); ffmpeg said:\n{stderr}")
            });
            assert!(
                stored == sent,
                "pipeline {p}: {name} differs ({} bytes stored, {} sent)",
                stored.len(),
                sent.len()
            );
        }
        let playlist =
            String::from_utf8(std::fs::read(local.join("channel.m3u8")).unwrap()).unwrap();
        assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");

        let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
        let (ok, duration, err) = run(Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &url,
        ]));
        assert!(ok && err.is_empty(), "ffprobe on pipeline {p}: {err}");
        let secs: f64 = duration.trim().parse().unwrap();
        assert!(
            (f64::from(SECONDS) - 1.0..f64::from(SECONDS) + 1.0).contains(&secs),
            "pipeline {p}: ffprobe read {secs} s"
        );
    }
}

#[test]
fn two_ffmpeg_pipelines_push_hls_with_digest_and_every_byte_is_stored() {
    if !peer("ffmpeg") || !peer("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    push_both_pipelines_and_compare(&[], dir.path());
}

#[test]
fn two_ffmpeg_pipelines_push_hls_with_basic_and_every_byte_is_stored() {
    if !peer("ffmpeg") || !peer("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("basic.toml");
    std::fs::write(&config, "auth_schemes = [\"basic\"]\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    // --config is a global flag: it goes before the subcommand's own flags
    // or after, clap accepts both.
    push_both_pipelines_and_compare(&["--config", &config], dir.path());
}
