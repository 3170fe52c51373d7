//! Browser players on other origins read `/out/`: CORS answers on
//! playlists and segments, and preflights for `Range` requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestServer;

async fn with_output(s: &TestServer) {
    let auth = s.basic("demo", 0);
    s.put("/in/demo/0/live/a0.ts", &auth, &[0x47u8; 188]).await;
    s.put(
        "/in/demo/0/live/index.m3u8",
        &auth,
        b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\na0.ts\n",
    )
    .await;
    for _ in 0..300 {
        let r = s.send("GET", "/out/demo/live/index.m3u8", &[], b"").await;
        if r.status == 200 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no output");
}

#[tokio::test]
async fn any_origin_may_read_the_output_by_default() {
    let s = TestServer::start(|_| {}).await;
    with_output(&s).await;
    let origin = [("Origin", "https://player.example.net")];
    for path in ["/out/demo/live/index.m3u8", "/out/demo/live/index/0/a0.ts"] {
        let r = s.send("GET", path, &origin, b"").await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        let exposed = r
            .header("access-control-expose-headers")
            .unwrap()
            .to_ascii_lowercase();
        for h in ["content-length", "content-range", "etag", "last-modified"] {
            assert!(exposed.contains(h), "{h} not exposed: {exposed}");
        }
    }
    // A preflight for a ranged GET.
    let r = s
        .send(
            "OPTIONS",
            "/out/demo/live/index/0/a0.ts",
            &[
                ("Origin", "https://player.example.net"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("GET")
    );
    assert!(r.header("access-control-allow-headers").is_some());
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    // Ingest is not for browsers: no CORS there.
    let r = s
        .send("GET", "/in/demo/0/live/index.m3u8", &origin, b"")
        .await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn only_the_configured_origins_may_read_the_output() {
    let s = TestServer::start(|c| c.cors_origins = vec!["https://player.example.net".into()]).await;
    with_output(&s).await;
    let r = s
        .send(
            "GET",
            "/out/demo/live/index.m3u8",
            &[("Origin", "https://player.example.net")],
            b"",
        )
        .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://player.example.net")
    );
    assert!(
        r.all("vary")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("origin"))
    );
    let r = s
        .send(
            "GET",
            "/out/demo/live/index.m3u8",
            &[("Origin", "https://elsewhere.example")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}
