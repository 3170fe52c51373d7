//! The merged output as a player and a CDN see it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Resp, TestServer};

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:{:02}.000+0000\n#EXTINF:2.000000,\nchannel{k}.ts\n", 2 * k));
    }
    t
}

async fn push(s: &TestServer, p: usize, k: u64) {
    let auth = s.basic("demo", p);
    let seg = format!("p{p}-seg{k}").repeat(100);
    assert_eq!(
        s.put(
            &format!("/in/demo/{p}/live/channel{k}.ts"),
            &auth,
            seg.as_bytes()
        )
        .await
        .status
            / 100,
        2
    );
    let pl = playlist(k.saturating_sub(2), k);
    assert_eq!(
        s.put(
            &format!("/in/demo/{p}/live/channel.m3u8"),
            &auth,
            pl.as_bytes()
        )
        .await
        .status
            / 100,
        2
    );
}

async fn output_until(s: &TestServer, path: &str, want: impl Fn(&str) -> bool) -> Resp {
    for _ in 0..200 {
        let r = s.send("GET", path, &[], b"").await;
        if r.status == 200 && want(&r.text()) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "{path} never became what the test waits for: {}",
        s.send("GET", path, &[], b"").await.text()
    );
}

#[tokio::test]
async fn both_pipelines_merge_into_one_playlist_with_immutable_segment_uris() {
    let s = TestServer::start(|_| {}).await;
    for k in 0..4 {
        push(&s, 0, k).await;
        push(&s, 1, k).await;
    }
    let r = output_until(&s, "/out/demo/live/channel.m3u8", |t| {
        t.contains("channel3.ts")
    })
    .await;
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    assert_eq!(
        r.text(),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:02.000+0000\n#EXTINF:2.000000,\nchannel/1/channel1.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:04.000+0000\n#EXTINF:2.000000,\nchannel/2/channel2.ts\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:06.000+0000\n#EXTINF:2.000000,\nchannel/3/channel3.ts\n"
    );
    let seg = s
        .send("GET", "/out/demo/live/channel/3/channel3.ts", &[], b"")
        .await;
    assert_eq!(
        (seg.status, seg.text()),
        (200, "p0-seg3".repeat(100)),
        "served from the active pipeline, P0"
    );
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));

    // The encoder overwrites and deletes its own file: the output URI keeps its bytes.
    let auth = s.basic("demo", 0);
    s.put("/in/demo/0/live/channel3.ts", &auth, b"rewritten")
        .await;
    assert_eq!(
        s.send(
            "DELETE",
            "/in/demo/0/live/channel3.ts",
            &[("Authorization", &auth)],
            b""
        )
        .await
        .status,
        204
    );
    let again = s
        .send("GET", "/out/demo/live/channel/3/channel3.ts", &[], b"")
        .await;
    assert_eq!((again.status, again.body), (200, seg.body.clone()));

    // HEAD, Range and validators on segments and playlists.
    let head = s
        .send("HEAD", "/out/demo/live/channel/3/channel3.ts", &[], b"")
        .await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("700"))
    );
    let part = s
        .send(
            "GET",
            "/out/demo/live/channel/3/channel3.ts",
            &[("Range", "bytes=0-6")],
            b"",
        )
        .await;
    assert_eq!((part.status, part.text().as_str()), (206, "p0-seg3"));
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(
        s.send(
            "GET",
            "/out/demo/live/channel.m3u8",
            &[("If-None-Match", &etag)],
            b""
        )
        .await
        .status,
        304
    );
    let modified = seg.header("last-modified").unwrap().to_owned();
    assert_eq!(
        s.send(
            "GET",
            "/out/demo/live/channel/3/channel3.ts",
            &[("If-Modified-Since", &modified)],
            b""
        )
        .await
        .status,
        304
    );
    let pl_part = s
        .send(
            "GET",
            "/out/demo/live/channel.m3u8",
            &[("Range", "bytes=0-6")],
            b"",
        )
        .await;
    assert_eq!((pl_part.status, pl_part.text().as_str()), (206, "#EXTM3U"));

    // Playback needs no credentials, but only reads.
    assert_eq!(
        s.send("PUT", "/out/demo/live/channel.m3u8", &[], b"x")
            .await
            .status,
        405
    );
    assert_eq!(
        s.send("GET", "/out/nosuch/live/channel.m3u8", &[], b"")
            .await
            .status,
        404
    );
    assert_eq!(
        s.send("GET", "/out/demo/live/%2e%2e/x", &[], b"")
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn a_multivariant_playlist_is_served_with_ingest_urls_rewritten() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let master = format!(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nchannel-low.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhttp://{}/in/demo/0/live/channel-high.m3u8\n",
        s.addr
    );
    s.put("/in/demo/0/live/channel.m3u8", &auth, master.as_bytes())
        .await;
    let r = output_until(&s, "/out/demo/live/channel.m3u8", |_| true).await;
    assert_eq!(
        r.text(),
        format!(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nchannel-low.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2000000\nhttp://{}/out/demo/live/channel-high.m3u8\n",
            s.addr
        )
    );
}

#[tokio::test]
async fn the_events_api_lists_the_start_of_the_output() {
    let s = TestServer::start(|_| {}).await;
    for k in 0..2 {
        push(&s, 0, k).await;
    }
    output_until(&s, "/out/demo/live/channel.m3u8", |t| {
        t.contains("channel1.ts")
    })
    .await;
    let token = format!("Bearer {}", s.state.admin_token);
    let r = s
        .send(
            "GET",
            "/api/v1/channels/demo/events",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let events = v["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["input_state", "switch"], "{events:#?}");
    assert_eq!(events[1]["to"], "0");
    assert_eq!(events[1]["reason"], "started");
    assert_eq!(events[1]["rendition"], "live/channel.m3u8");
    assert_eq!(
        events[1]["inputs"],
        serde_json::json!(["receiving", "idle"])
    );
    assert_eq!(
        s.send("GET", "/api/v1/channels/demo/events", &[], b"")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_malformed_playlist_is_stored_but_never_breaks_the_output() {
    let s = TestServer::start(|_| {}).await;
    for k in 0..2 {
        push(&s, 0, k).await;
    }
    output_until(&s, "/out/demo/live/channel.m3u8", |t| {
        t.contains("channel1.ts")
    })
    .await;
    let auth = s.basic("demo", 0);
    assert_eq!(
        s.put(
            "/in/demo/0/live/channel.m3u8",
            &auth,
            b"#EXTM3U\n#EXTINF:abc,\nx.ts\n"
        )
        .await
        .status,
        204
    );
    push(&s, 0, 2).await;
    let r = output_until(&s, "/out/demo/live/channel.m3u8", |t| {
        t.contains("channel2.ts")
    })
    .await;
    assert!(
        r.text().starts_with(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        ),
        "{}",
        r.text()
    );
    let metrics = s.send("GET", "/metrics", &[], b"").await.text();
    assert!(
        metrics.contains(r#"tandem_playlists_rejected_total{channel="demo",pipeline="0"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn with_no_segment_cache_segments_come_from_the_store_unchanged() {
    let s = TestServer::start(|c| c.output_cache_bytes = 0).await;
    for k in 0..2 {
        push(&s, 1, k).await;
    }
    output_until(&s, "/out/demo/live/channel.m3u8", |t| {
        t.contains("channel/1/channel1.ts")
    })
    .await;
    assert_eq!(s.state.outputs.cache.bytes(), 0);
    let seg = s
        .send("GET", "/out/demo/live/channel/1/channel1.ts", &[], b"")
        .await;
    assert_eq!((seg.status, seg.text()), (200, "p1-seg1".repeat(100)));
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let part = s
        .send(
            "GET",
            "/out/demo/live/channel/1/channel1.ts",
            &[("Range", "bytes=7-13")],
            b"",
        )
        .await;
    assert_eq!((part.status, part.text().as_str()), (206, "p1-seg1"));
}

/// A media playlist of 1 s segments `first..=last` named `c{k}.ts`.
fn short_playlist(first: u64, last: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!("#EXTINF:1.000000,\nc{k}.ts\n"));
    }
    t
}

/// Pipeline `p` of `channel` announces segments 0..=`k`; it uploads
/// segment `k` first unless `skip` (announced but never uploaded).
async fn announce(s: &TestServer, channel: &str, p: usize, k: u64, skip: bool) {
    let auth = s.basic(channel, p);
    if !skip {
        let seg = format!("p{p}-c{k}").repeat(50);
        let r = s
            .put(
                &format!("/in/{channel}/{p}/live/c{k}.ts"),
                &auth,
                seg.as_bytes(),
            )
            .await;
        assert_eq!(r.status / 100, 2);
    }
    let pl = short_playlist(0, k);
    let r = s
        .put(
            &format!("/in/{channel}/{p}/live/c.m3u8"),
            &auth,
            pl.as_bytes(),
        )
        .await;
    assert_eq!(r.status / 100, 2);
}

#[tokio::test]
async fn output_metrics_count_segments_per_pipeline_fills_misses_and_switches() {
    // A channel of its own (metrics are process-wide), with a 1 s loss
    // threshold so fills and misses resolve quickly.
    let s = TestServer::start(|_| {}).await;
    let id = tandem_core::ChannelId::parse("metered").unwrap();
    let failover = tandem_core::FailoverSettings {
        loss_after_targets: Some(1.0),
        ..Default::default()
    };
    s.state
        .create_channel_with(&id, std::time::SystemTime::now(), failover)
        .await
        .unwrap();
    for k in 0..=2 {
        announce(&s, "metered", 0, k, false).await;
        announce(&s, "metered", 1, k, false).await;
    }
    // Segment 3: announced by P0, never uploaded there; P1 has it (a fill).
    announce(&s, "metered", 0, 3, true).await;
    announce(&s, "metered", 1, 3, false).await;
    announce(&s, "metered", 0, 4, false).await;
    announce(&s, "metered", 1, 4, false).await;
    // Segment 5: announced by both, uploaded by neither (a miss).
    announce(&s, "metered", 0, 5, true).await;
    announce(&s, "metered", 1, 5, true).await;
    announce(&s, "metered", 0, 6, false).await;
    announce(&s, "metered", 1, 6, false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let out = loop {
        let r = s.send("GET", "/out/metered/live/c.m3u8", &[], b"").await;
        if r.status == 200 && r.text().contains("c6.ts") {
            break r.text();
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(out.contains("/3/c3.ts") && !out.contains("c5.ts"), "{out}");
    let seg3 = s.send("GET", "/out/metered/live/c/3/c3.ts", &[], b"").await;
    assert_eq!((seg3.status, seg3.text()), (200, "p1-c3".repeat(50)));

    let text = support::scrape(&s).await;
    let value = |series: &str| support::metric_value(&text, series);
    let labels = r#"channel="metered",rendition="live/c.m3u8""#;
    assert_eq!(
        value(&format!(
            r#"tandem_output_segments_total{{{labels},pipeline="0"}}"#
        )),
        Some(5.0),
        "segments 0, 1, 2, 4 and 6 from P0:\n{text}"
    );
    assert_eq!(
        value(&format!(
            r#"tandem_output_segments_total{{{labels},pipeline="1"}}"#
        )),
        Some(1.0),
        "segment 3 from P1"
    );
    assert_eq!(
        value(&format!("tandem_output_segments_filled_total{{{labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&format!("tandem_output_segments_missing_total{{{labels}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&format!(
            r#"tandem_output_switches_total{{{labels},reason="started"}}"#
        )),
        Some(1.0)
    );
    // Every playlist published gets one publish-delay observation: 2 × 7.
    assert_eq!(
        value(r#"tandem_output_publish_delay_seconds_count{channel="metered"}"#),
        Some(14.0)
    );
}
