//! An fMP4 (CMAF) channel at server level, on a clock the test moves: the
//! encoders name their init section once, above the first segment of each
//! playlist; the merged output names it above its own first segment in
//! every window, and `/out/` serves it, long after the segment that first
//! carried it left the window, after a switch, and after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Resp, TestServer};
use tandem_core::{ChannelId, FailoverSettings};

fn init(p: usize) -> Vec<u8> {
    format!("ftyp-moov-of-pipeline-{p}|")
        .repeat(20)
        .into_bytes()
}

/// A three-segment window ending with `last`, as ffmpeg writes it with
/// `-hls_segment_type fmp4`.
fn playlist(last: u64) -> String {
    let first = last.saturating_sub(2);
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    );
    for k in first..=last {
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T06:{:02}:{:02}.000Z\n#EXTINF:2.000,\nv{k}.m4s\n",
            2 * k / 60,
            2 * k % 60
        ));
    }
    t
}

async fn put(s: &TestServer, id: &str, p: usize, name: &str, body: &[u8]) {
    let r = s
        .put(&format!("/in/{id}/{p}/live/{name}"), &s.basic(id, p), body)
        .await;
    assert_eq!(r.status / 100, 2, "{}", r.text());
}

/// Playlists the driver of `id` has handled.
async fn handled(s: &TestServer, id: &str) -> u64 {
    let m = s.send("GET", "/metrics", &[], b"").await.text();
    let key = format!("tandem_output_publish_delay_seconds_count{{channel=\"{id}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Stores segment `k` of pipeline `p` (and the init section with the
/// first), publishes the playlist ending with it, and waits until the
/// driver has handled it.
async fn push(s: &TestServer, id: &str, p: usize, k: u64) {
    if k == 0 {
        put(s, id, p, "init.mp4", &init(p)).await;
    }
    put(
        s,
        id,
        p,
        &format!("v{k}.m4s"),
        format!("p{p}-v{k}|").repeat(40).as_bytes(),
    )
    .await;
    let before = handled(s, id).await;
    put(s, id, p, "video.m3u8", playlist(k).as_bytes()).await;
    for _ in 0..500 {
        if handled(s, id).await > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the driver of {id} never handled a playlist");
}

async fn get(s: &TestServer, id: &str, path: &str) -> Resp {
    s.send("GET", &format!("/out/{id}/live/{path}"), &[], b"")
        .await
}

/// What a player joining now does: the output playlist names the init
/// section above its first segment, and the init section answers 200
/// with pipeline `p`'s bytes. Returns the playlist.
async fn joiner_finds_init(s: &TestServer, id: &str, p: usize) -> String {
    let out = get(s, id, "video.m3u8").await;
    assert_eq!(out.status, 200);
    let text = out.text();
    let first_uri = text
        .lines()
        .position(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    let map = text
        .lines()
        .position(|l| l == "#EXT-X-MAP:URI=\"init.mp4\"")
        .unwrap_or_else(|| panic!("no EXT-X-MAP in\n{text}"));
    assert!(
        map < first_uri,
        "the MAP comes before the first segment:\n{text}"
    );
    assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
    let init_section = get(s, id, "init.mp4").await;
    assert_eq!(init_section.status, 200, "init.mp4 of\n{text}");
    assert_eq!(init_section.body, init(p));
    text
}

fn advance(s: &TestServer, ms: u64) {
    s.clock.as_ref().unwrap().advance(Duration::from_millis(ms));
}

#[tokio::test]
async fn the_init_section_is_named_and_served_after_the_window_slid_a_switch_and_a_restart() {
    let s = TestServer::start_clocked(|_| {}).await;
    let id = "cmaf";
    s.state
        .create_channel_with(
            &ChannelId::parse(id).unwrap(),
            s.state.clock.now(),
            FailoverSettings::default(),
        )
        .await
        .unwrap();
    // Four windows of three segments.
    for k in 0..12 {
        if k > 0 {
            advance(&s, 2000);
        }
        push(&s, id, 0, k).await;
        push(&s, id, 1, k).await;
        joiner_finds_init(&s, id, 0).await;
    }
    let text = joiner_finds_init(&s, id, 0).await;
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:9\n"), "{text}");
    // P0 stops after segment 11; 3 s later the output is on P1, and the
    // init section comes from P1.
    advance(&s, 2000);
    push(&s, id, 1, 12).await;
    advance(&s, 1000);
    for _ in 0..500 {
        if get(&s, id, "video.m3u8")
            .await
            .text()
            .ends_with("video/12/v12.m4s\n")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for k in 13..=16 {
        advance(&s, 2000);
        push(&s, id, 1, k).await;
    }
    let text = joiner_finds_init(&s, id, 1).await;
    assert!(text.ends_with("video/16/v16.m4s\n"), "{text}");
    // The server restarts: the saved state keeps what was in effect.
    let s = s.restart(|_| {}).await;
    let again = joiner_finds_init(&s, id, 1).await;
    assert_eq!(again, text, "the restarted server serves the same playlist");
    advance(&s, 2000);
    push(&s, id, 1, 17).await;
    let text = joiner_finds_init(&s, id, 1).await;
    assert!(text.ends_with("video/17/v17.m4s\n"), "{text}");
}
