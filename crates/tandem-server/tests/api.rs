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
