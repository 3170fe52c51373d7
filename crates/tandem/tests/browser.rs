//! Tandem in a real browser: Debian's headless Chromium, driven by
//! playwright-core (`npm ci` in `tests/browser/`), while two real ffmpeg
//! pipelines push a channel.
//!
//! - The status page: sign in, both inputs receiving, one pipeline killed,
//!   that input lost and the switch on the timeline without a reload, then
//!   the channel's page with its events and its output playing.
//! - A player on another origin plays `/out/` directly with hls.js.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Tandem, peer};

/// Loss threshold of this setup: 1.5 × the 2 s target duration.
const THRESHOLD_MS: u64 = 3000;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether node, Chromium and playwright-core are all here (same rules as
/// [`peer`]).
fn browser_ready() -> bool {
    if !peer("node") || !peer("chromium") {
        return false;
    }
    let found = browser_dir().join("node_modules/playwright-core").is_dir();
    if !found {
        if std::env::var("TANDEM_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!(
                "playwright-core not installed, and TANDEM_REQUIRE_PEERS=1 requires it (npm ci in crates/tandem/tests/browser)"
            );
        }
        eprintln!("SKIPPED: playwright-core not installed (npm ci in crates/tandem/tests/browser)");
    }
    found
}

fn push(t: &Tandem, p: usize, src: &Path) -> Child {
    let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
    support::ffmpeg_hls(src, &["-method", "PUT"], &url)
}

/// A browser script, its stdin to send to and its JSON lines to read.
struct Script {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Script {
    fn start(name: &str, env: &[(&str, &str)]) -> Script {
        let mut cmd = Command::new("node");
        cmd.arg(name)
            .current_dir(browser_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Script { child, out }
    }

    /// The next step the script reports.
    fn next(&mut self) -> Value {
        let mut line = String::new();
        let n = self.out.read_line(&mut line).unwrap();
        assert!(
            n > 0,
            "the browser script ended early (its errors are above)"
        );
        eprintln!("browser: {}", line.trim_end());
        serde_json::from_str(&line).unwrap()
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the browser script failed: {status}");
    }
}

#[test]
fn the_status_page_shows_an_input_lost_and_the_switch_live() {
    if !peer("ffmpeg") || !browser_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), 90);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let mut encoders = [Some(push(&t, 0, &src)), None];
    std::thread::sleep(Duration::from_millis(300));
    encoders[1] = Some(push(&t, 1, &src));

    let shot = dir.path().join("status-page.png");
    let token = t.token();
    let mut page = Script::start(
        "status_page.mjs",
        &[
            ("TANDEM_BASE", &t.base),
            ("TANDEM_TOKEN", &token),
            ("CHANNEL", "demo"),
            ("SCREENSHOT", shot.to_str().unwrap()),
        ],
    );
    let signed = page.next();
    assert_eq!(signed["step"], "signed_in");
    assert_eq!(signed["status"], 200);
    assert_eq!(signed["form"], 1, "the first visit shows the sign-in form");
    assert_eq!(signed["httpOnly"], true);
    assert_eq!(signed["sameSite"], "Strict");
    assert_eq!(signed["tokenInUrl"], false);

    let ready = page.next();
    assert_eq!(ready["step"], "both_receiving");
    assert_eq!(ready["switchesToOneBefore"], 0);
    let mut p0 = encoders[0].take().unwrap();
    p0.kill().unwrap(); // SIGKILL
    p0.wait().unwrap();
    page.send("killed 0");

    let switched = page.next();
    assert_eq!(switched["step"], "switched");
    let lost_ms = switched["lostMs"].as_u64().unwrap();
    let switch_ms = switched["switchMs"].as_u64().unwrap();
    eprintln!(
        "after the kill: input 0 shown lost in {lost_ms} ms, the switch drawn in {switch_ms} ms"
    );
    assert!(
        lost_ms <= THRESHOLD_MS + 2000,
        "lost shown after {lost_ms} ms"
    );
    assert!(
        switch_ms <= THRESHOLD_MS + 2000,
        "switch drawn after {switch_ms} ms"
    );
    assert_eq!(switched["other"], "receiving");
    assert_eq!(switched["sameDocument"], true, "the page reloaded");
    assert_eq!(switched["live"], "live");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a screenshot was saved");
    if let Ok(keep) = std::env::var("TANDEM_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    let channel = page.next();
    assert_eq!(channel["step"], "channel_page");
    let kinds: Vec<&str> = channel["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"input_lost"), "{kinds:?}");
    assert!(kinds.contains(&"switch"), "{kinds:?}");
    let played = channel["played"].as_f64().unwrap();
    assert!(
        played > 2.0,
        "the channel page's player advanced {played} s in 4 s"
    );
    assert_eq!(channel["sameDocument"], true);
    page.finish();
    for c in encoders.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn a_player_on_another_origin_plays_the_output_with_hls_js() {
    if !peer("ffmpeg") || !browser_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), 60);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let mut encoders = [push(&t, 0, &src), push(&t, 1, &src)];
    let hls_js = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tandem-server/src/ui/assets/hls-1.7.4.min.js");
    let playlist = format!("{}/out/demo/live/channel.m3u8", t.base);
    // A viewer opens the player once the channel is on air: the output
    // lists a few segments (a 404 before that is what hls.js reports as a
    // fatal manifest error, as it would against any origin).
    let mut on_air = false;
    for _ in 0..300 {
        let (status, body) = t.request("GET", "/out/demo/live/channel.m3u8", None, b"");
        if status == 200 && String::from_utf8_lossy(&body).matches("#EXTINF").count() >= 3 {
            on_air = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(on_air, "the output never listed three segments");
    let mut player = Script::start(
        "cross_origin_play.mjs",
        &[
            ("PLAYLIST_URL", &playlist),
            ("HLS_JS", hls_js.to_str().unwrap()),
        ],
    );
    let r = player.next();
    player.finish();
    for c in &mut encoders {
        let _ = c.kill();
        let _ = c.wait();
    }
    assert_ne!(
        r["origin"].as_str().unwrap(),
        t.base,
        "the page is on another origin"
    );
    let played = r["played"].as_f64().unwrap();
    assert!(played > 4.0, "playback advanced {played} s in 6 s: {r}");
    assert_eq!(r["errors"], serde_json::json!([]));
    assert!(r["playlists"].as_u64().unwrap() >= 2, "{r}");
    assert!(r["segments"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["allow"], serde_json::json!(["*"]));
}
