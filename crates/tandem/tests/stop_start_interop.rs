//! A channel stopped and started, as MediaLive channels are every day, with
//! real encoders: two ffmpeg pipelines play a short source to its end (each
//! ends its playlist with `EXT-X-ENDLIST`), then start again from media
//! sequence 0 with the same file names. A reader polls the merged output
//! throughout, as a player would. The output must resume by itself: its
//! numbering carries on, one `EXT-X-DISCONTINUITY` marks the restart,
//! `EXT-X-ENDLIST` goes, `output_resumed` is listed. Then `tandem channel
//! reset` starts a fresh output, through a running server and, with none
//! running, at the next start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::player::reader;
use support::{Tandem, bin, http, peer, run};

/// Seconds of source each run plays (two 2 s segments and a short last).
const RUN_SECS: u32 = 5;
/// The output's grace period in this setup, seconds.
const GRACE: u64 = 2;

fn push(t: &Tandem, p: usize, src: &Path) -> Child {
    let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
    support::ffmpeg_hls(src, &["-method", "PUT"], &url)
}

fn playlist(t: &Tandem) -> String {
    let (status, body) = http(t.addr, "GET", "/out/demo/live/channel.m3u8", None, b"");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

/// Polls the output playlist (bounded) until `want` holds.
fn until(t: &Tandem, secs: u64, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = playlist(t);
        if want(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the output never {what} within {secs} s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn media_sequence(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap()
}

fn events(t: &Tandem) -> Vec<Value> {
    let token = t.token();
    let mut s = std::net::TcpStream::connect(t.addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /api/v1/channels/demo/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let v: Value = serde_json::from_str(body).unwrap();
    v["events"].as_array().unwrap().clone()
}

fn of_kind(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Both encoders play the source to its end (bounded wait).
fn wait_finished(encoders: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for c in encoders.iter_mut() {
        loop {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "ffmpeg never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn start_both(t: &Tandem, src: &Path) -> Vec<Child> {
    let first = push(t, 0, src);
    std::thread::sleep(Duration::from_millis(300));
    vec![first, push(t, 1, src)]
}

#[test]
fn both_encoders_stop_and_start_again_and_the_output_resumes_then_reset_starts_afresh() {
    if !peer("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), RUN_SECS);
    let config = dir.path().join("tandem.toml");
    std::fs::write(&config, format!("output_grace_secs = {GRACE}\n")).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let data = dir.path().join("data");
    let t = Tandem::start(&data, &["--config", &config]);
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, seen) = reader(t.addr, "/out/demo/live/channel.m3u8", stop.clone());

    // Run 1, to the end of the source: both playlists end, so does the output.
    let mut encoders = start_both(&t, &src);
    wait_finished(&mut encoders);
    let ended = until(&t, 10, "ended", |p| p.ends_with("#EXT-X-ENDLIST\n"));
    let last =
        ended.lines().filter(|l| !l.starts_with('#')).count() as u64 + media_sequence(&ended) - 1;
    eprintln!("run 1 ended the output at media sequence {last}");

    // Run 2: the same encoders start again, from media sequence 0.
    let mut encoders = start_both(&t, &src);
    let resumed = until(&t, 15, "resumed", |p| {
        p.contains(&format!("channel/{}/channel1.ts", last + 2))
    });
    assert!(
        !resumed.contains("#EXT-X-ENDLIST"),
        "a resumed output has no ENDLIST:\n{resumed}"
    );
    assert_eq!(
        resumed.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{resumed}"
    );
    assert!(
        resumed.contains(&format!("channel/{}/channel0.ts", last + 1)),
        "{resumed}"
    );
    wait_finished(&mut encoders);
    until(&t, 10, "ended again", |p| p.ends_with("#EXT-X-ENDLIST\n"));
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();

    // What the reader saw across both runs: every position once, in order,
    // whole; one discontinuity, at the first segment of run 2. Each run
    // decodes on its own (their timestamps restart at the discontinuity,
    // which a player follows and a plain concatenation does not).
    let mut seen = seen.lock().unwrap();
    let first = *seen.segments.keys().next().unwrap();
    let final_ = *seen.segments.keys().last().unwrap();
    assert_eq!(
        seen.segments.len() as u64,
        final_ - first + 1,
        "the media sequence is continuous across the stop and start"
    );
    let second = seen.segments.split_off(&(last + 1));
    seen.assert_continuous(dir.path(), 2, 2.0);
    let first_run = std::mem::replace(&mut seen.segments, second);
    seen.assert_continuous(dir.path(), 2, 2.0);
    let mut all = first_run;
    all.append(&mut seen.segments);
    seen.segments = all;
    let marked: Vec<u64> = seen
        .segments
        .iter()
        .filter(|(_, p)| p.discontinuity)
        .map(|(n, _)| *n)
        .collect();
    eprintln!(
        "positions {:?}..={:?}, discontinuities at {marked:?}",
        seen.segments.keys().next(),
        seen.segments.keys().last()
    );
    assert_eq!(
        marked,
        vec![last + 1],
        "exactly one discontinuity, at the resume"
    );
    // Each moment of each run goes out once: the encoders' copies of a
    // segment share its name, so no name repeats within a run.
    let mut names = std::collections::BTreeSet::new();
    for (n, p) in &seen.segments {
        let name = p.uri.rsplit('/').next().unwrap_or_default();
        assert!(
            names.insert((*n > last, name.to_owned())),
            "position {n} ({}) repeats a segment of its run",
            p.uri
        );
    }
    assert_eq!(
        seen.segments[&(last + 1)].uri,
        format!("channel/{}/channel0.ts", last + 1)
    );
    let window: Vec<String> = seen
        .segments
        .range(last - 1..)
        .map(|(_, p)| p.uri.clone())
        .collect();
    drop(seen);
    let listed = events(&t);
    let resumes = of_kind(&listed, "output_resumed");
    assert_eq!(resumes.len(), 1, "{listed:#?}");
    assert_eq!(resumes[0]["media_sequence"], last + 1);
    assert_eq!(of_kind(&listed, "ended").len(), 2, "{listed:#?}");

    // Reset through the running server (--server URL --token T).
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (ok, out, err) = run(Command::new(bin()).args([
        "channel",
        "reset",
        "demo",
        "--server",
        &t.base,
        "--token",
        &t.token(),
        "--json",
    ]));
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let base = v["renditions"][0]["media_sequence"].as_u64().unwrap();
    eprintln!("reset: new media sequence base {base}");
    assert_eq!(v["renditions"][0]["rendition"], "live/channel.m3u8");
    assert!(base >= before && base > last + 10, "{out}");
    let fresh = playlist(&t);
    assert_eq!(media_sequence(&fresh), base, "{fresh}");
    assert!(
        !fresh.contains("#EXTINF") && !fresh.contains("#EXT-X-ENDLIST"),
        "a reset output is empty and live:\n{fresh}"
    );
    assert_eq!(of_kind(&events(&t), "output_reset").len(), 1);
    // The old segments stay for the grace period, then answer 404.
    let old = format!("/out/demo/live/{}", window.last().unwrap());
    let (status, _) = http(t.addr, "GET", &old, None, b"");
    assert_eq!(status, 200, "{old} during the grace period");
    let deadline = Instant::now() + Duration::from_secs(GRACE + 5);
    for uri in &window {
        let path = format!("/out/demo/live/{uri}");
        loop {
            let (status, _) = http(t.addr, "GET", &path, None, b"");
            if status == 404 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still {status} after the grace period"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // With no server running, the reset is carried out at the next start.
    drop(t);
    let (ok, out, err) = run(Command::new(bin())
        .args(["--data"])
        .arg(&data)
        .args(["channel", "reset", "demo"]));
    assert!(ok, "{err}");
    assert!(
        out.contains("starts afresh when the server starts"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let t = Tandem::start(&data, &["--config", &config]);
    let restarted = until(&t, 10, "was reset again", |p| media_sequence(p) > base);
    assert!(!restarted.contains("#EXTINF"), "{restarted}");
    assert_eq!(of_kind(&events(&t), "output_reset").len(), 1);
    assert!(!t.object("demo/reset-requested.json").exists());
}
