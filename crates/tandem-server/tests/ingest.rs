//! HLS ingest over HTTP, as an encoder and an operator see it: status
//! codes, headers, and the bytes that end up stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{TestServer, digest_md5, read_response};
use tandem_store::MemoryStore;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn put_publishes_the_exact_bytes_and_answers_201_then_204() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        s.put("/in/demo/0/live/channel-00001.ts", &auth, &body)
            .await
            .status,
        201
    );
    assert_eq!(
        std::fs::read(s.on_disk("demo/0/live/channel-00001.ts")).unwrap(),
        body
    );
    assert_eq!(
        s.put("/in/demo/0/live/channel-00001.ts", &auth, b"v2")
            .await
            .status,
        204
    );
    let r = s.get("/in/demo/0/live/channel-00001.ts", &auth).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"v2"[..]));
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
}

#[tokio::test]
async fn chunked_put_is_published_when_the_terminator_arrives() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 1);
    let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let r = s
        .send(
            "PUT",
            "/in/demo/1/x/channel.m3u8",
            &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
            body,
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        std::fs::read(s.on_disk("demo/1/x/channel.m3u8")).unwrap(),
        b"hello world"
    );
}

#[tokio::test]
async fn expect_100_continue_without_credentials_gets_401_before_the_body() {
    let s = TestServer::start(|_| {}).await;
    let mut c = s.connect().await;
    let head = "PUT /in/demo/0/seg.ts HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n";
    c.write_all(head.as_bytes()).await.unwrap();
    // No body byte is sent: the answer must come anyway, and be a 401.
    let r = read_response(&mut c, false).await;
    assert_eq!(r.status, 401);
    let challenges = r.all("www-authenticate");
    assert_eq!(challenges.len(), 3, "{challenges:?}");
    assert!(challenges[0].starts_with("Digest") && challenges[0].contains("algorithm=SHA-256"));
    assert!(
        challenges[1].starts_with("Digest")
            && challenges[1].contains("algorithm=MD5")
            && challenges[1].contains("qop=\"auth\"")
    );
    assert!(challenges[2].starts_with("Basic"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(!s.on_disk("demo/0/seg.ts").exists());
}

#[tokio::test]
async fn every_401_carries_a_fresh_nonce() {
    let s = TestServer::start(|_| {}).await;
    let a = s.send("PUT", "/in/demo/0/a.ts", &[], b"x").await;
    let b = s.send("PUT", "/in/demo/0/a.ts", &[], b"x").await;
    assert_ne!(a.all("www-authenticate")[1], b.all("www-authenticate")[1]);
}

#[tokio::test]
async fn digest_is_accepted_once_and_a_replayed_request_is_refused() {
    let s = TestServer::start(|_| {}).await;
    let creds = s.creds("demo", 0);
    let uri = "/in/demo/0/live/a.ts";
    let challenge = s.send("PUT", uri, &[], b"").await;
    let auth = digest_md5(challenge.all("www-authenticate")[1], &creds, "PUT", uri, 1);
    assert_eq!(s.put(uri, &auth, b"first").await.status, 201);
    // The same request, captured and sent again: same nonce, same nc.
    let replay = s.put(uri, &auth, b"evil").await;
    assert_eq!(replay.status, 401);
    assert_eq!(
        std::fs::read(s.on_disk("demo/0/live/a.ts")).unwrap(),
        b"first"
    );
    // A higher nc on the same nonce is a legitimate next request.
    let next = digest_md5(challenge.all("www-authenticate")[1], &creds, "PUT", uri, 2);
    assert_eq!(s.put(uri, &next, b"second").await.status, 204);
}

#[tokio::test]
async fn one_inputs_credentials_cannot_open_the_other_input() {
    let s = TestServer::start(|_| {}).await;
    let p0 = s.basic("demo", 0);
    assert_eq!(s.put("/in/demo/1/live/a.ts", &p0, b"x").await.status, 401);
    assert_eq!(s.get("/in/demo/1/", &p0).await.status, 401);
    let creds = s.creds("demo", 0);
    let uri = "/in/demo/1/live/a.ts";
    let challenge = s.send("PUT", uri, &[], b"").await;
    let digest = digest_md5(challenge.all("www-authenticate")[1], &creds, "PUT", uri, 1);
    assert_eq!(s.put(uri, &digest, b"x").await.status, 401);
    assert!(!s.on_disk("demo/1/live/a.ts").exists());
}

#[tokio::test]
async fn an_upload_broken_off_mid_body_leaves_the_previous_version() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    assert_eq!(
        s.put("/in/demo/0/live/channel.m3u8", &auth, b"#EXTM3U\nv1\n")
            .await
            .status,
        201
    );
    let mut c = s.connect().await;
    let head = format!(
        "PUT /in/demo/0/live/channel.m3u8 HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 5000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // Past the store's in-memory batch, so a staged file exists and must go.
    c.write_all(&vec![b'x'; 2_000_000]).await.unwrap();
    assert!(
        s.eventually(|| s.staged_files() == 1).await,
        "the upload is staged on disk"
    );
    drop(c);
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "the staged upload is discarded"
    );
    assert_eq!(
        std::fs::read(s.on_disk("demo/0/live/channel.m3u8")).unwrap(),
        b"#EXTM3U\nv1\n"
    );
    assert_eq!(
        s.get("/in/demo/0/live/channel.m3u8", &auth).await.body,
        b"#EXTM3U\nv1\n"
    );
}

/// ffmpeg 5.1's HLS muxer writes a whole chunked PUT and closes the socket
/// without waiting for the answer (testdata/captures/README.md).
#[tokio::test]
async fn a_client_that_closes_right_after_its_last_byte_still_publishes() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let body = vec![0x47u8; 160_000];
    let mut c = s.connect().await;
    let head = format!(
        "PUT /in/demo/0/live/channel0.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(32_768) {
        c.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        c.write_all(chunk).await.unwrap();
        c.write_all(b"\r\n").await.unwrap();
    }
    c.write_all(b"0\r\n\r\n").await.unwrap();
    drop(c);
    let path = s.on_disk("demo/0/live/channel0.ts");
    assert!(
        s.eventually(|| std::fs::read(&path).is_ok_and(|b| b == body))
            .await,
        "the whole body is published"
    );
}

#[tokio::test]
async fn a_short_body_is_refused_and_never_visible() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let mut c = s.connect().await;
    let head = format!(
        "PUT /in/demo/0/short.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // Past the store's 1 MiB in-memory batch, so a staged file exists.
    c.write_all(&vec![1u8; 1_500_000]).await.unwrap();
    assert!(
        s.eventually(|| s.staged_files() == 1).await,
        "the upload is staged on disk"
    );
    c.shutdown().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut c, false))
        .await
        .expect("an answer to the short body");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "the staged upload is discarded"
    );
    assert_eq!(s.get("/in/demo/0/short.ts", &auth).await.status, 404);
    assert!(!s.on_disk("demo/0/short.ts").exists());
}

#[tokio::test]
async fn a_chunked_body_without_its_terminator_is_never_visible() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let mut c = s.connect().await;
    let head = format!(
        "PUT /in/demo/0/c.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // One whole 1.5 MB chunk (staged on disk), then the client goes away
    // before the terminating chunk.
    c.write_all(format!("{:x}\r\n", 1_500_000).as_bytes())
        .await
        .unwrap();
    c.write_all(&vec![b'c'; 1_500_000]).await.unwrap();
    c.write_all(b"\r\n").await.unwrap();
    assert!(
        s.eventually(|| s.staged_files() == 1).await,
        "the upload is staged on disk"
    );
    c.shutdown().await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), read_response(&mut c, false))
        .await
        .expect("an answer to the unterminated body");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "the staged upload is discarded"
    );
    assert_eq!(s.get("/in/demo/0/c.ts", &auth).await.status, 404);
    assert!(!s.on_disk("demo/0/c.ts").exists());
}

#[tokio::test]
async fn a_stalled_upload_times_out_with_408_and_stores_nothing() {
    let s = TestServer::start(|c| c.body_idle_timeout = Duration::from_millis(300)).await;
    let auth = s.basic("demo", 0);
    let mut c = s.connect().await;
    let head = format!(
        "PUT /in/demo/0/slow.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3000000\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    // Past the store's 1 MiB in-memory batch, so a staged file exists
    // while the upload stalls.
    c.write_all(&vec![1u8; 1_500_000]).await.unwrap();
    let r = read_response(&mut c, false).await;
    assert_eq!(r.status, 408);
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "the staged upload is discarded"
    );
    assert!(!s.on_disk("demo/0/slow.ts").exists());
}

#[tokio::test]
async fn one_persistent_connection_carries_several_uploads() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let mut c = s.connect().await;
    for i in 0..3 {
        let req = format!(
            "PUT /in/demo/0/seg{i}.ts HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 3\r\n\r\nab{i}"
        );
        c.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(read_response(&mut c, false).await.status, 201);
    }
    for i in 0..3 {
        assert_eq!(
            std::fs::read(s.on_disk(&format!("demo/0/seg{i}.ts"))).unwrap(),
            format!("ab{i}").as_bytes()
        );
    }
}

#[tokio::test]
async fn bad_paths_are_400_with_a_reason() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    for path in [
        "/in/demo/0/../1/a.ts",
        "/in/demo/0/%2e%2e/1/a.ts",
        "/in/demo/0/%2E%2E/%2E%2E/etc/passwd",
        "/in/demo/0/live%2Fa.ts",
        "/in/demo/0//etc/passwd",
        "/in/demo/0/a%00b.ts",
        "/in/demo/0/a%0d%0ab.ts",
        "/in/demo/0/a%5c..%5cb.ts",
        "/in/demo/0/.tandem-collection",
    ] {
        let r = s.put(path, &auth, b"x").await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.text().ends_with('\n') && r.text().lines().count() == 1,
            "one-line reason: {:?}",
            r.text()
        );
    }
    let stored = |dir: &str| {
        std::fs::read_dir(s.on_disk(dir))
            .unwrap()
            .filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tandem")
            })
            .count()
    };
    assert_eq!(
        (stored("demo/0"), stored("demo/1")),
        (0, 0),
        "nothing was stored anywhere"
    );
}

#[tokio::test]
async fn unknown_channels_and_pipelines_are_404() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    assert_eq!(s.put("/in/nosuch/0/a.ts", &auth, b"x").await.status, 404);
    assert_eq!(s.put("/in/demo/2/a.ts", &auth, b"x").await.status, 404);
    assert_eq!(s.put("/in/Demo/0/a.ts", &auth, b"x").await.status, 404);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_announced_or_not() {
    let s = TestServer::start(|c| c.max_body_bytes = 1000).await;
    let auth = s.basic("demo", 0);
    let r = s.put("/in/demo/0/big.ts", &auth, &[0u8; 1001]).await;
    assert_eq!(r.status, 413);
    let chunked = format!("{:x}\r\n{}\r\n0\r\n\r\n", 1500, "y".repeat(1500));
    let r = s
        .send(
            "PUT",
            "/in/demo/0/big2.ts",
            &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
            chunked.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(
        s.put("/in/demo/0/ok.ts", &auth, &[0u8; 1000]).await.status,
        201
    );
    assert!(!s.on_disk("demo/0/big.ts").exists() && !s.on_disk("demo/0/big2.ts").exists());
    let token = format!("Bearer {}", s.state.admin_token);
    let listed = s
        .send(
            "GET",
            "/api/v1/channels/demo",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    let v: serde_json::Value = serde_json::from_slice(&listed.body).unwrap();
    assert_eq!(
        v["inputs"][0]["objects_received"], 1,
        "only the 1000-byte upload was received"
    );
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_401() {
    let s = TestServer::start(|_| {}).await;
    assert_eq!(s.send("GET", "/in/demo/0/", &[], b"").await.status, 401);
    let wrong = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "demo_0:guess")
    );
    assert_eq!(s.get("/in/demo/0/", &wrong).await.status, 401);
    assert_eq!(
        s.send("GET", "/in/demo/0/", &[("Authorization", "Bearer x")], b"")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn full_storage_is_507_with_nothing_partial_left() {
    let store = Arc::new(MemoryStore::with_capacity(10_000));
    let s = TestServer::start_with(Some(store.clone()), |_| {}).await;
    let auth = s.basic("demo", 0);
    assert_eq!(
        s.put("/in/demo/0/a.ts", &auth, &[1u8; 6000]).await.status,
        201
    );
    let r = s.put("/in/demo/0/b.ts", &auth, &[2u8; 6000]).await;
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(s.get("/in/demo/0/b.ts", &auth).await.status, 404);
    assert_eq!(s.get("/in/demo/0/a.ts", &auth).await.body, vec![1u8; 6000]);
}

#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    for m in ["PATCH", "LOCK", "TRACE"] {
        let r = s
            .send(m, "/in/demo/0/a.ts", &[("Authorization", &auth)], b"")
            .await;
        assert_eq!(r.status, 405, "{m}");
        assert!(r.header("allow").unwrap().contains("PUT, POST"), "{m}");
    }
}

#[tokio::test]
async fn webdav_collections_follow_rfc4918_inside_mkcol_and_puts_create_parents_outside() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let h = [("Authorization", auth.as_str())];
    assert_eq!(
        s.send("MKCOL", "/in/demo/0/dav/", &h, b"").await.status,
        201
    );
    assert_eq!(
        s.send("MKCOL", "/in/demo/0/dav/", &h, b"").await.status,
        405
    );
    assert_eq!(
        s.send("MKCOL", "/in/demo/0/no/parent/", &h, b"")
            .await
            .status,
        409
    );
    assert_eq!(
        s.send("MKCOL", "/in/demo/0/body/", &h, b"<x/>")
            .await
            .status,
        415
    );
    // Inside a MKCOL-made collection the parent must exist...
    assert_eq!(
        s.put("/in/demo/0/dav/missing/a.ts", &auth, b"x")
            .await
            .status,
        409
    );
    // ...while an HLS encoder that never MKCOLs gets its folders.
    assert_eq!(
        s.put("/in/demo/0/live/hd/a.ts", &auth, b"x").await.status,
        201
    );
    let r = s
        .send(
            "PROPFIND",
            "/in/demo/0/",
            &[("Authorization", &auth), ("Depth", "1")],
            b"",
        )
        .await;
    assert_eq!(r.status, 207);
    let xml = r.text();
    for href in [
        "<D:href>/in/demo/0/</D:href>",
        "<D:href>/in/demo/0/dav/</D:href>",
        "<D:href>/in/demo/0/live/</D:href>",
    ] {
        assert!(xml.contains(href), "{href} in {xml}");
    }
    assert!(xml.contains("<D:collection/>"));
    let r = s.send("PROPFIND", "/in/demo/0/live/hd/a.ts", &[("Authorization", &auth), ("Depth", "0")], br#"<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getcontentlength/><foo xmlns="urn:x"/></prop></propfind>"#).await;
    assert_eq!(r.status, 207);
    assert!(
        r.text()
            .contains("<D:getcontentlength>1</D:getcontentlength>"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("404 Not Found"));
    assert_eq!(
        s.send(
            "PROPFIND",
            "/in/demo/0/",
            &[("Authorization", &auth), ("Depth", "0")],
            b"<foo>"
        )
        .await
        .status,
        400
    );
    assert_eq!(
        s.send(
            "PROPFIND",
            "/in/demo/0/",
            &[("Authorization", &auth), ("Depth", "infinity")],
            b""
        )
        .await
        .status,
        403
    );
    let r = s.send("OPTIONS", "/in/demo/0/", &h, b"").await;
    assert_eq!((r.status, r.header("dav")), (200, Some("1")));
}

#[tokio::test]
async fn copy_and_move_stay_within_the_input() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    s.put("/in/demo/0/a.ts", &auth, b"A").await;
    let copy = async |dest: String| {
        s.send(
            "COPY",
            "/in/demo/0/a.ts",
            &[("Authorization", &auth), ("Destination", &dest)],
            b"",
        )
        .await
        .status
    };
    assert_eq!(copy(format!("http://{}/in/demo/0/b.ts", s.addr)).await, 201);
    assert_eq!(copy("/in/demo/0/b.ts".into()).await, 204);
    assert_eq!(copy("/in/demo/1/b.ts".into()).await, 403);
    assert_eq!(std::fs::read(s.on_disk("demo/0/b.ts")).unwrap(), b"A");
    assert!(!s.on_disk("demo/1/b.ts").exists());
    let auth = s.basic("demo", 0);
    let r = s
        .send(
            "MOVE",
            "/in/demo/0/b.ts",
            &[
                ("Authorization", &auth),
                ("Destination", "/in/demo/0/a.ts"),
                ("Overwrite", "F"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 412);
}

#[tokio::test]
async fn reads_answer_range_and_conditional_requests() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    s.put("/in/demo/0/r.ts", &auth, b"0123456789").await;
    let r = s
        .send(
            "GET",
            "/in/demo/0/r.ts",
            &[("Authorization", &auth), ("Range", "bytes=2-4")],
            b"",
        )
        .await;
    assert_eq!(
        (r.status, r.body.as_slice(), r.header("content-range")),
        (206, &b"234"[..], Some("bytes 2-4/10"))
    );
    let etag = r.header("etag").unwrap().to_owned();
    let r = s
        .send(
            "GET",
            "/in/demo/0/r.ts",
            &[("Authorization", &auth), ("If-None-Match", &etag)],
            b"",
        )
        .await;
    assert_eq!(r.status, 304);
    let r = s
        .send("HEAD", "/in/demo/0/r.ts", &[("Authorization", &auth)], b"")
        .await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    let r = s
        .send(
            "GET",
            "/in/demo/0/r.ts",
            &[("Authorization", &auth), ("Range", "bytes=50-")],
            b"",
        )
        .await;
    assert_eq!(r.status, 416);
}

#[tokio::test]
async fn delete_removes_objects_but_never_the_input_root() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    s.put("/in/demo/0/old.ts", &auth, b"x").await;
    assert_eq!(
        s.send(
            "DELETE",
            "/in/demo/0/old.ts",
            &[("Authorization", &auth)],
            b""
        )
        .await
        .status,
        204
    );
    assert_eq!(
        s.send(
            "DELETE",
            "/in/demo/0/old.ts",
            &[("Authorization", &auth)],
            b""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        s.send("DELETE", "/in/demo/0/", &[("Authorization", &auth)], b"")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_rejections_per_input() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 1);
    s.put("/in/demo/1/m.ts", &auth, &[0u8; 1234]).await;
    s.send("PUT", "/in/demo/1/m.ts", &[], b"x").await;
    let text = s.send("GET", "/metrics", &[], b"").await.text();
    for line in [
        r#"tandem_ingest_requests_total{channel="demo",pipeline="1",method="PUT",status="201"}"#,
        r#"tandem_ingest_rejected_total{channel="demo",pipeline="1",reason="unauthorized"}"#,
        r#"tandem_ingest_bytes_total{channel="demo",pipeline="1"}"#,
        r#"tandem_input_up{channel="demo",pipeline="1"} 1"#,
        r#"tandem_input_up{channel="demo",pipeline="0"} 0"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

/// Starts a server with an extra channel `id` (metrics are process-wide:
/// a test that reads exact values uses a channel no other test touches).
async fn with_channel(id: &str) -> TestServer {
    let s = TestServer::start(|_| {}).await;
    let id = tandem_core::ChannelId::parse(id).unwrap();
    s.state
        .create_channel(&id, std::time::SystemTime::now())
        .await
        .unwrap();
    s
}

#[tokio::test]
async fn metrics_count_each_published_object_and_its_bytes_exactly() {
    let s = with_channel("counted").await;
    let auth = s.basic("counted", 0);
    for k in 0..3 {
        let r = s
            .put(&format!("/in/counted/0/live/s{k}.ts"), &auth, &[7u8; 1234])
            .await;
        assert_eq!(r.status, 201);
    }
    // Refused and cut-off uploads publish nothing, so they count no object.
    assert_eq!(
        s.send("PUT", "/in/counted/0/live/x.ts", &[], b"x")
            .await
            .status,
        401
    );
    let text = support::scrape(&s).await;
    let value = |series: &str| support::metric_value(&text, series);
    assert_eq!(
        value(r#"tandem_ingest_objects_total{channel="counted",pipeline="0"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"tandem_ingest_bytes_total{channel="counted",pipeline="0"}"#),
        Some(3.0 * 1234.0)
    );
    assert_eq!(
        value(
            r#"tandem_ingest_requests_total{channel="counted",pipeline="0",method="PUT",status="201"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"tandem_ingest_rejected_total{channel="counted",pipeline="0",reason="unauthorized"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(r#"tandem_ingest_objects_total{channel="counted",pipeline="1"}"#),
        None
    );
    // Pipeline 0 just wrote; pipeline 1 never did, so it has no age.
    let age =
        value(r#"tandem_input_seconds_since_last_write{channel="counted",pipeline="0"}"#).unwrap();
    assert!((0.0..5.0).contains(&age), "{age}");
    assert_eq!(
        value(r#"tandem_input_seconds_since_last_write{channel="counted",pipeline="1"}"#),
        None
    );
    assert_eq!(
        value(r#"tandem_input_up{channel="counted",pipeline="0"}"#),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_give_the_age_of_an_inputs_last_playlist_advance() {
    let s = with_channel("advancing").await;
    let auth = s.basic("advancing", 1);
    assert_eq!(
        s.put("/in/advancing/1/live/c0.ts", &auth, &[1u8; 188])
            .await
            .status,
        201
    );
    let pl = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nc0.ts\n";
    assert_eq!(
        s.put("/in/advancing/1/live/c.m3u8", &auth, pl.as_bytes())
            .await
            .status,
        201
    );
    // The output engine takes the playlist asynchronously: wait until the
    // gauge appears, then check it is the age of a write just made.
    let series = r#"tandem_input_seconds_since_last_advance{channel="advancing",pipeline="1"}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let age = loop {
        let text = support::scrape(&s).await;
        if let Some(v) = support::metric_value(&text, series) {
            assert_eq!(
                support::metric_value(
                    &text,
                    r#"tandem_input_seconds_since_last_advance{channel="advancing",pipeline="0"}"#
                ),
                None,
                "pipeline 0 never advanced"
            );
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never appeared:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!((0.0..5.0).contains(&age), "{age}");
}

#[tokio::test]
async fn digest_md5_sess_and_sha_256_sess_authenticate_and_a_wrong_password_does_not() {
    let s = TestServer::start(|_| {}).await;
    let creds = s.creds("demo", 0);
    for (i, (algorithm, challenge_index)) in [("MD5-sess", 1), ("SHA-256-sess", 0)]
        .into_iter()
        .enumerate()
    {
        let uri = format!("/in/demo/0/live/sess{i}.ts");
        let challenge = s.send("PUT", &uri, &[], b"").await;
        assert_eq!(challenge.status, 401);
        let offered = challenge.all("www-authenticate")[challenge_index].to_owned();
        assert!(
            offered.contains(&format!(
                "algorithm={}",
                algorithm.trim_end_matches("-sess")
            )),
            "{offered}"
        );
        // The wrong password, with the -sess algorithm, is refused.
        let wrong = support::digest_with(
            &offered,
            &creds.username,
            "not-the-password",
            algorithm,
            "PUT",
            &uri,
            1,
        );
        assert_eq!(s.put(&uri, &wrong, b"x").await.status, 401, "{algorithm}");
        assert!(!s.on_disk(&format!("demo/0/live/sess{i}.ts")).exists());
        // The right one is accepted, and the bytes are stored.
        let right = support::digest_with(
            &offered,
            &creds.username,
            &creds.password,
            algorithm,
            "PUT",
            &uri,
            2,
        );
        let r = s.put(&uri, &right, algorithm.as_bytes()).await;
        assert_eq!(r.status, 201, "{algorithm}: {}", r.text());
        assert_eq!(
            std::fs::read(s.on_disk(&format!("demo/0/live/sess{i}.ts"))).unwrap(),
            algorithm.as_bytes()
        );
        // And the next request on the same nonce (higher nc) reads it back.
        let get = support::digest_with(
            &offered,
            &creds.username,
            &creds.password,
            algorithm,
            "GET",
            &uri,
            3,
        );
        let r = s.get(&uri, &get).await;
        assert_eq!((r.status, r.body.as_slice()), (200, algorithm.as_bytes()));
    }
}
