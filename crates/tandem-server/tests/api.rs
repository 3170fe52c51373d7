//! The control API, as an operator's script uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::TestServer;

fn bearer(s: &TestServer) -> String {
    format!("Bearer {}", s.state.admin_token)
}

#[tokio::test]
async fn the_api_refuses_requests_without_the_admin_token() {
    let s = TestServer::start(|_| {}).await;
    assert_eq!(
        s.send("GET", "/api/v1/channels", &[], b"").await.status,
        401
    );
    assert_eq!(
        s.send(
            "GET",
            "/api/v1/channels",
            &[("Authorization", "Bearer wrong")],
            b""
        )
        .await
        .status,
        401
    );
    let r = s
        .send(
            "POST",
            "/api/v1/channels",
            &[("Authorization", "Bearer wrong")],
            br#"{"id":"x"}"#,
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn creating_a_channel_returns_both_inputs_and_the_output() {
    let s = TestServer::start(|_| {}).await;
    let auth = bearer(&s);
    let h = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let r = s
        .send("POST", "/api/v1/channels", &h, br#"{"id":"news"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let base = format!("http://{}", s.addr);
    assert_eq!(v["id"], "news");
    assert_eq!(v["output"], format!("{base}/out/news/"));
    for p in 0..2 {
        let input = &v["inputs"][p];
        assert_eq!(input["pipeline"], p);
        assert_eq!(input["url"], format!("{base}/in/news/{p}/"));
        assert_eq!(input["username"], format!("news_{p}"));
        assert_eq!(input["password"].as_str().unwrap().len(), 24);
        assert_eq!(
            input.as_object().unwrap().len(),
            4,
            "exactly pipeline, url, username, password"
        );
    }
    assert_eq!(
        s.send("POST", "/api/v1/channels", &h, br#"{"id":"news"}"#)
            .await
            .status,
        409
    );
    for bad in [
        &br#"{"id":"News"}"#[..],
        br#"{"id":""}"#,
        br#"{"id":"a/b"}"#,
        b"{",
        br#"{"name":"x"}"#,
    ] {
        let r = s.send("POST", "/api/v1/channels", &h, bad).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        let e: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(e["error"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The new channel is served at once, with its own credentials.
    let password = v["inputs"][0]["password"].as_str().unwrap();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("news_0:{password}")
        )
    );
    assert_eq!(
        s.put("/in/news/0/live/a.ts", &basic, b"abc").await.status,
        201
    );
}

#[tokio::test]
async fn show_reports_each_inputs_state_and_counters_and_delete_removes_the_channel() {
    let s = TestServer::start(|_| {}).await;
    let auth = bearer(&s);
    let h = [("Authorization", auth.as_str())];
    let basic = s.basic("demo", 0);
    s.put("/in/demo/0/a.ts", &basic, &[7u8; 500]).await;
    s.put("/in/demo/0/b.ts", &basic, &[7u8; 250]).await;
    let v: Value =
        serde_json::from_slice(&s.send("GET", "/api/v1/channels/demo", &h, b"").await.body)
            .unwrap();
    assert_eq!(v["inputs"][0]["state"], "receiving");
    assert_eq!(v["inputs"][0]["bytes_received"], 750);
    assert_eq!(v["inputs"][0]["objects_received"], 2);
    assert!(
        v["inputs"][0]["last_write"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(v["inputs"][1]["state"], "idle");
    assert_eq!(v["inputs"][1]["last_write"], Value::Null);
    let list: Value =
        serde_json::from_slice(&s.send("GET", "/api/v1/channels", &h, b"").await.body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        s.send("DELETE", "/api/v1/channels/demo", &h, b"")
            .await
            .status,
        204
    );
    assert_eq!(
        s.send("GET", "/api/v1/channels/demo", &h, b"").await.status,
        404
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/channels/demo", &h, b"")
            .await
            .status,
        404
    );
    assert_eq!(s.put("/in/demo/0/a.ts", &basic, b"x").await.status, 404);
    assert!(
        !s.on_disk("demo").exists(),
        "a deleted channel's objects are removed"
    );
}

#[tokio::test]
async fn archive_pairs_are_created_listed_shown_and_deleted() {
    let s = TestServer::start(|_| {}).await;
    let auth = bearer(&s);
    let h = [("Authorization", auth.as_str())];
    assert_eq!(
        s.send("POST", "/api/v1/archives", &[], br#"{"id":"news"}"#)
            .await
            .status,
        401
    );
    let r = s
        .send("POST", "/api/v1/archives", &h, br#"{"id":"news"}"#)
        .await;
    assert_eq!(r.status, 201);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let endpoint = format!("http://{}", s.s3);
    for p in 0..2 {
        let d = &v["destinations"][p];
        assert_eq!(d["pipeline"], p);
        assert_eq!(d["bucket"], format!("news-{p}"));
        assert_eq!(d["url"], format!("s3://news-{p}/"));
        assert_eq!(d["endpoint"], endpoint.as_str());
        assert_eq!(d["region"], "us-east-1");
        assert_eq!(d["access_key_id"].as_str().unwrap().len(), 20);
        assert_eq!(d["secret_access_key"].as_str().unwrap().len(), 40);
    }
    // Both buckets exist at once.
    assert!(s.dir.path().join("objects/s3.buckets/news-0").is_dir());
    assert!(s.dir.path().join("objects/s3.buckets/news-1").is_dir());
    let r = s
        .send("POST", "/api/v1/archives", &h, br#"{"id":"news"}"#)
        .await;
    assert_eq!(r.status, 409);
    let r = s
        .send("POST", "/api/v1/archives", &h, br#"{"id":"News_1"}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("is invalid"));
    let list: Value =
        serde_json::from_slice(&s.send("GET", "/api/v1/archives", &h, b"").await.body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let one = s.send("GET", "/api/v1/archives/news", &h, b"").await;
    assert_eq!(serde_json::from_slice::<Value>(&one.body).unwrap(), v);
    assert_eq!(
        s.send("DELETE", "/api/v1/archives/news", &h, b"")
            .await
            .status,
        204
    );
    assert_eq!(
        s.send("GET", "/api/v1/archives/news", &h, b"").await.status,
        404
    );
    assert!(!s.dir.path().join("objects/s3.buckets/news-0").exists());
    // Its keys no longer open anything.
    assert!(
        s.state
            .keys
            .principal(v["destinations"][0]["access_key_id"].as_str().unwrap())
            .is_none()
    );
}

/// `POST /api/v1/channels` with `body`; the answer's status and JSON.
async fn create_channel(s: &TestServer, body: &str) -> (u16, Value) {
    let auth = bearer(s);
    let r = s
        .send(
            "POST",
            "/api/v1/channels",
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .await;
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

#[tokio::test]
async fn per_channel_failover_settings_are_accepted_kept_and_validated() {
    let s = TestServer::start(|_| {}).await;
    // The README's example, verbatim.
    let (status, v) = create_channel(
        &s,
        r#"{"id": "news", "failover": {"loss_after_targets": 1.5, "pdt_tolerance_targets": 0.5, "prefer": 0, "hold_down_secs": 30}}"#,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["id"], "news");
    let id = tandem_core::ChannelId::parse("news").unwrap();
    let want = tandem_core::FailoverSettings {
        loss_after_targets: Some(1.5),
        pdt_tolerance_targets: Some(0.5),
        prefer: Some(0),
        hold_down_secs: Some(30),
    };
    // Kept where the server and the next start read it.
    assert_eq!(s.state.channels.get(&id).unwrap().spec.failover, want);
    assert_eq!(s.state.db.get(&id).unwrap().unwrap().failover, want);

    // Each invalid value is a 400 that says what is wrong, and creates
    // nothing. (Serde's type errors name the expected type, not the field.)
    for (body, needle) in [
        (r#"{"id":"bad","failover":{"prefer":2}}"#, "prefer"),
        (r#"{"id":"bad","failover":{"prefer":-1}}"#, "expected u8"),
        (
            r#"{"id":"bad","failover":{"loss_after_targets":0}}"#,
            "loss_after_targets",
        ),
        (
            r#"{"id":"bad","failover":{"loss_after_targets":-1.5}}"#,
            "loss_after_targets",
        ),
        (
            r#"{"id":"bad","failover":{"loss_after_targets":"fast"}}"#,
            "expected f64",
        ),
        (
            r#"{"id":"bad","failover":{"pdt_tolerance_targets":"x"}}"#,
            "expected f64",
        ),
        (
            r#"{"id":"bad","failover":{"hold_down_secs":-30}}"#,
            "expected u64",
        ),
        (
            r#"{"id":"bad","failover":{"loss_after":1.5}}"#,
            "unknown field `loss_after`",
        ),
        // Values a timer cannot hold (the driver once panicked on them).
        (
            r#"{"id":"bad","failover":{"loss_after_targets":1e30}}"#,
            "loss_after_targets",
        ),
        (
            r#"{"id":"bad","failover":{"pdt_tolerance_targets":-1}}"#,
            "pdt_tolerance_targets",
        ),
        (
            r#"{"id":"bad","failover":{"pdt_tolerance_targets":1e300}}"#,
            "pdt_tolerance_targets",
        ),
        (
            r#"{"id":"bad","failover":{"hold_down_secs":18446744073709551615}}"#,
            "hold_down_secs",
        ),
    ] {
        let (status, v) = create_channel(&s, body).await;
        assert_eq!(status, 400, "{body}: {v}");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{body}: {error}");
    }
    let auth = bearer(&s);
    assert_eq!(
        s.send(
            "GET",
            "/api/v1/channels/bad",
            &[("Authorization", auth.as_str())],
            b""
        )
        .await
        .status,
        404
    );
}

/// Pipeline `p` of `channel` uploads segment `k` and announces 0..=k.
async fn push(s: &TestServer, channel: &str, p: usize, k: u64) {
    let auth = s.basic(channel, p);
    let seg = format!("p{p}-s{k}").repeat(40);
    let r = s
        .put(
            &format!("/in/{channel}/{p}/live/s{k}.ts"),
            &auth,
            seg.as_bytes(),
        )
        .await;
    assert_eq!(r.status / 100, 2);
    let mut pl = String::from("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n");
    for i in 0..=k {
        pl.push_str(&format!("#EXTINF:2.0,\ns{i}.ts\n"));
    }
    let r = s
        .put(
            &format!("/in/{channel}/{p}/live/s.m3u8"),
            &auth,
            pl.as_bytes(),
        )
        .await;
    assert_eq!(r.status / 100, 2);
}

#[tokio::test]
async fn a_preferred_pipeline_set_through_the_api_takes_the_output_back() {
    let s = TestServer::start(|_| {}).await;
    let (status, v) = create_channel(
        &s,
        r#"{"id":"pref","failover":{"prefer":1,"hold_down_secs":0}}"#,
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = create_channel(&s, r#"{"id":"plain"}"#).await;
    assert_eq!(status, 201, "{v}");
    for ch in ["pref", "plain"] {
        // Pipeline 0 starts first, so the output starts on it; pipeline 1
        // then catches up and stays aligned.
        push(&s, ch, 0, 0).await;
        push(&s, ch, 0, 1).await;
        for k in 0..=2 {
            push(&s, ch, 1, k).await;
        }
        push(&s, ch, 0, 2).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let auth = bearer(&s);
    let switches = |ch: &'static str| {
        let auth = auth.clone();
        let s = &s;
        async move {
            let r = s
                .send(
                    "GET",
                    &format!("/api/v1/channels/{ch}/events"),
                    &[("Authorization", auth.as_str())],
                    b"",
                )
                .await;
            assert_eq!(r.status, 200);
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "switch")
                .map(|e| {
                    (
                        e["to"].as_str().unwrap_or_default().to_owned(),
                        e["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let out = |ch: &'static str| {
        let s = &s;
        async move {
            s.send("GET", &format!("/out/{ch}/live/s.m3u8"), &[], b"")
                .await
                .text()
        }
    };
    while !(out("pref").await.contains("s2.ts") && out("plain").await.contains("s2.ts")) {
        assert!(tokio::time::Instant::now() < deadline, "no output");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let start = |to: &str, reason: &str| (to.to_owned(), reason.to_owned());
    assert_eq!(
        switches("pref").await,
        [start("0", "started"), start("1", "preferred")]
    );
    assert_eq!(switches("plain").await, [start("0", "started")]);
    let seg = s.send("GET", "/out/pref/live/s/2/s2.ts", &[], b"").await;
    assert_eq!((seg.status, seg.text()), (200, "p1-s2".repeat(40)));
}
