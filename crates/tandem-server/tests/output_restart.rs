//! The merged output across a restart of the server, and what `/out/`
//! serves at all: what its playlists name, nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Resp, TestServer, metric_value, scrape};

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:{:02}.000+0000\n#EXTINF:2.000000,\nchannel{k}.ts\n", 2 * k));
    }
    t
}

async fn put_ok(s: &TestServer, p: usize, path: &str, body: &[u8]) {
    let r = s
        .put(&format!("/in/demo/{p}/{path}"), &s.basic("demo", p), body)
        .await;
    assert_eq!(r.status / 100, 2, "PUT {path}: {}", r.text());
}

async fn push(s: &TestServer, p: usize, k: u64) {
    put_ok(
        s,
        p,
        &format!("live/channel{k}.ts"),
        format!("p{p}-seg{k}").repeat(100).as_bytes(),
    )
    .await;
    put_ok(
        s,
        p,
        "live/channel.m3u8",
        playlist(k.saturating_sub(2), k).as_bytes(),
    )
    .await;
}

async fn get(s: &TestServer, path: &str) -> Resp {
    s.send("GET", path, &[], b"").await
}

async fn output_until(s: &TestServer, path: &str, want: impl Fn(&str) -> bool) -> Resp {
    for _ in 0..500 {
        let r = get(s, path).await;
        if r.status == 200 && want(&r.text()) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "{path} never became what the test waits for: {}",
        get(s, path).await.text()
    );
}

const OUT: &str = "/out/demo/live/channel.m3u8";

#[tokio::test]
async fn after_a_restart_the_output_continues_where_it_stopped() {
    let s = TestServer::start(|_| {}).await;
    for k in 0..4 {
        push(&s, 0, k).await;
        push(&s, 1, k).await;
    }
    let before = output_until(&s, OUT, |t| t.contains("channel3.ts"))
        .await
        .text();
    let seg3 = get(&s, "/out/demo/live/channel/3/channel3.ts").await;
    assert_eq!((seg3.status, seg3.text()), (200, "p0-seg3".repeat(100)));

    let s = s.restart(|_| {}).await;
    // Before any input publishes again: the same playlist, the same bytes.
    let r = get(&s, OUT).await;
    assert_eq!((r.status, r.text()), (200, before.clone()));
    let again = get(&s, "/out/demo/live/channel/3/channel3.ts").await;
    assert_eq!((again.status, again.body), (200, seg3.body.clone()));
    // The inputs' own files are not the output.
    assert_eq!(get(&s, "/out/demo/live/channel3.ts").await.status, 404);

    // The encoders carry on: their playlists still list 2 and 3.
    for k in 4..6 {
        push(&s, 0, k).await;
        push(&s, 1, k).await;
    }
    let after = output_until(&s, OUT, |t| t.contains("channel5.ts"))
        .await
        .text();
    assert_eq!(
        after,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:06.000+0000\n#EXTINF:2.000000,\nchannel/3/channel3.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:08.000+0000\n#EXTINF:2.000000,\nchannel/4/channel4.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:10.000+0000\n#EXTINF:2.000000,\nchannel/5/channel5.ts\n"
    );
    let seg5 = get(&s, "/out/demo/live/channel/5/channel5.ts").await;
    assert_eq!((seg5.status, seg5.text()), (200, "p0-seg5".repeat(100)));
}

#[tokio::test]
async fn after_a_restart_with_the_encoders_idle_the_saved_output_is_served() {
    let s = TestServer::start(|_| {}).await;
    for k in 0..3 {
        push(&s, 1, k).await;
    }
    let before = output_until(&s, OUT, |t| t.contains("channel2.ts"))
        .await
        .text();
    let s = s.restart(|_| {}).await;
    let s = s.restart(|_| {}).await;
    let r = get(&s, OUT).await;
    assert_eq!((r.status, r.text()), (200, before));
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    // A playlist an input holds but the output never rendered is not served.
    put_ok(&s, 0, "live/other.m3u8", playlist(0, 0).as_bytes()).await;
    assert_eq!(get(&s, "/out/demo/live/other.m3u8").await.status, 404);
}

/// fMP4 with an init section, a subtitle rendition, a multivariant
/// playlist, and an object no playlist names.
#[tokio::test]
async fn the_output_serves_what_its_playlists_name_and_nothing_else() {
    let s = TestServer::start(|_| {}).await;
    put_ok(&s, 0, "secret.txt", b"not for players").await;
    put_ok(&s, 0, "live/init.mp4", b"init-section").await;
    put_ok(&s, 0, "live/v0.m4s", b"video-0").await;
    put_ok(&s, 0, "live/s0.vtt", b"WEBVTT\n\n").await;
    put_ok(
        &s,
        0,
        "live/video.m3u8",
        b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000,\nv0.m4s\n",
    )
    .await;
    put_ok(
        &s,
        0,
        "live/subs.m3u8",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\ns0.vtt\n",
    )
    .await;
    put_ok(
        &s,
        0,
        "live/main.m3u8",
        b"#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"s\",NAME=\"en\",URI=\"subs.m3u8\"\n#EXT-X-STREAM-INF:BANDWIDTH=800000,SUBTITLES=\"s\"\nvideo.m3u8\n",
    )
    .await;
    output_until(&s, "/out/demo/live/video.m3u8", |t| {
        t.contains("video/0/v0.m4s")
    })
    .await;
    let subs = output_until(&s, "/out/demo/live/subs.m3u8", |t| {
        t.contains("subs/0/s0.vtt")
    })
    .await;
    assert!(subs.text().starts_with("#EXTM3U\n"), "{}", subs.text());

    for s in [s.restart(|_| {}).await] {
        for (path, body) in [
            ("/out/demo/live/init.mp4", &b"init-section"[..]),
            ("/out/demo/live/video/0/v0.m4s", b"video-0"),
            ("/out/demo/live/subs/0/s0.vtt", b"WEBVTT\n\n"),
        ] {
            let r = get(&s, path).await;
            assert_eq!((r.status, r.body.as_slice()), (200, body), "{path}");
        }
        let main = get(&s, "/out/demo/live/main.m3u8").await;
        assert_eq!(main.status, 200);
        assert!(main.text().contains("URI=\"subs.m3u8\""));
        assert_eq!(get(&s, "/out/demo/live/subs.m3u8").await.status, 200);
        // Uploaded, but named by no playlist of the output.
        for path in [
            "/out/demo/secret.txt",
            "/out/demo/live/s0.vtt",
            "/out/demo/live/v0.m4s",
        ] {
            assert_eq!(get(&s, path).await.status, 404, "{path}");
        }
    }
}

#[tokio::test]
async fn a_state_that_cannot_be_saved_is_counted_and_the_output_goes_on() {
    let s = TestServer::start(|_| {}).await;
    // A file where the channel's state collection would go: every save
    // of the output's state fails, as on a disk gone bad under it.
    let blocker = s.on_disk("demo/state");
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"not a collection").unwrap();
    let series = r#"tandem_output_state_save_errors_total{channel="demo"}"#;
    let before = metric_value(&scrape(&s).await, series).unwrap_or(0.0);
    for k in 0..4 {
        push(&s, 0, k).await;
        push(&s, 1, k).await;
    }
    output_until(&s, OUT, |t| t.contains("channel3.ts")).await;
    let seg3 = get(&s, "/out/demo/live/channel/3/channel3.ts").await;
    assert_eq!((seg3.status, seg3.text()), (200, "p0-seg3".repeat(100)));
    let mut after = before;
    for _ in 0..500 {
        after = metric_value(&scrape(&s).await, series).unwrap_or(0.0);
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        after >= before + 1.0,
        "{series} went from {before} to {after}"
    );
    assert_eq!(std::fs::read(&blocker).unwrap(), b"not a collection");
}
