//! Akamai-style ingest: uploads by POST, with or without a chunked body,
//! stored and merged exactly as PUT uploads are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestServer;

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(100) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn post_uploads_are_stored_whole_and_feed_the_merged_output() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let seg = vec![0x47u8; 188 * 7];
    let r = s
        .send(
            "POST",
            "/in/demo/0/live/a0.ts",
            &[("Authorization", &auth)],
            &seg,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let pl = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\na0.ts\n";
    let r = s
        .send(
            "POST",
            "/in/demo/0/live/index.m3u8",
            &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
            &chunked(pl),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get("/in/demo/0/live/a0.ts", &auth).await.body, seg);
    assert_eq!(s.get("/in/demo/0/live/index.m3u8", &auth).await.body, pl);
    let mut out = String::new();
    for _ in 0..300 {
        out = s
            .send("GET", "/out/demo/live/index.m3u8", &[], b"")
            .await
            .text();
        if out.contains("index/0/a0.ts") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(out.contains("index/0/a0.ts"), "{out}");
    let r = s
        .send("GET", "/out/demo/live/index/0/a0.ts", &[], b"")
        .await;
    assert_eq!((r.status, r.body), (200, seg));
    // Without credentials, a POST is refused before its body is read.
    let r = s.send("POST", "/in/demo/0/live/a1.ts", &[], b"x").await;
    assert_eq!(r.status, 401);
    // A POST whose chunked body never ends publishes nothing.
    let mut cut = chunked(&[0x47u8; 500]);
    cut.truncate(cut.len() - 5);
    let mut conn = s.connect().await;
    use tokio::io::AsyncWriteExt;
    conn.write_all(
        format!(
            "POST /in/demo/0/live/a2.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    conn.write_all(&cut).await.unwrap();
    drop(conn);
    // Only once the server has handled the cut upload does its absence
    // mean anything.
    let key = r#"tandem_ingest_rejected_total{channel="demo",pipeline="0",reason="incomplete"} 1"#;
    let mut handled = false;
    for _ in 0..300 {
        if s.send("GET", "/metrics", &[], b"")
            .await
            .text()
            .contains(key)
        {
            handled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(handled, "the server never counted the cut upload");
    let r = s
        .send(
            "POST",
            "/in/demo/0/live/a3.ts",
            &[("Authorization", &auth)],
            b"after",
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(s.get("/in/demo/0/live/a2.ts", &auth).await.status, 404);
}
