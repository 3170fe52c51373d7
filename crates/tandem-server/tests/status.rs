//! The status page's server side: sign-in with the admin token into a
//! cookie, the page and its embedded assets, `GET /api/v1/status` on a
//! clock the test moves, and the live event stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::TestServer;
use tandem_core::{ChannelId, FailoverSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:{:02}:{:02}.000+0000\n#EXTINF:2.000000,\nchannel{k}.ts\n",
            2 * k / 60,
            2 * k % 60
        ));
    }
    t
}

/// Stores segment `k` on pipeline `p` of channel `id` and publishes the
/// playlist ending with it.
async fn push(s: &TestServer, id: &str, p: usize, k: u64) {
    let auth = s.basic(id, p);
    let seg = format!("/in/{id}/{p}/live/channel{k}.ts");
    assert_eq!(s.put(&seg, &auth, b"segment").await.status / 100, 2);
    let pl = format!("/in/{id}/{p}/live/channel.m3u8");
    let r = s
        .put(&pl, &auth, playlist(k.saturating_sub(2), k).as_bytes())
        .await;
    assert_eq!(r.status / 100, 2);
}

async fn status_with(s: &TestServer, auth: (&str, &str)) -> (u16, serde_json::Value) {
    let r = s.send("GET", "/api/v1/status", &[auth], b"").await;
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

async fn status(s: &TestServer) -> serde_json::Value {
    let bearer = format!("Bearer {}", s.state.admin_token);
    let (code, v) = status_with(s, ("Authorization", &bearer)).await;
    assert_eq!(code, 200);
    v
}

/// Polls (bounded) until the status satisfies `want`.
async fn status_until(
    s: &TestServer,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..400 {
        let v = status(s).await;
        if want(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "the status never became what the test waits for:\n{:#}",
        status(s).await
    );
}

#[tokio::test]
async fn the_page_signs_in_with_the_admin_token_into_a_cookie() {
    let s = TestServer::start(|_| {}).await;
    let token = s.state.admin_token.clone();

    // Not signed in: the form, and nothing else.
    for path in ["/", "/ui/"] {
        let r = s.send("GET", path, &[], b"").await;
        assert_eq!(r.status, 200, "{path}");
        assert!(r.text().contains("name=\"token\""), "{}", r.text());
        assert!(!r.text().contains("app.js"));
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("default-src 'self'")
        );
        assert_eq!(r.header("set-cookie"), None);
    }
    assert_eq!(s.send("GET", "/api/v1/status", &[], b"").await.status, 401);

    // A wrong token: 401 and no cookie.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = s.send("POST", "/ui/login", &form, b"token=nope").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("set-cookie"), None);
    assert!(r.text().contains("not the admin token"));

    // The right one: a session cookie that does not carry the token.
    let body = format!("token={token}");
    let r = s.send("POST", "/ui/login", &form, body.as_bytes()).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/"));
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(&token));
    let cookie = set.split(';').next().unwrap().to_owned();

    let r = s.send("GET", "/", &[("Cookie", &cookie)], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/ui/app.js"));
    let (code, v) = status_with(&s, ("Cookie", &cookie)).await;
    assert_eq!(code, 200);
    assert!(v["channels"].is_array());
    // A forged cookie is refused.
    let forged = format!("{}x", cookie);
    assert_eq!(status_with(&s, ("Cookie", &forged)).await.0, 401);

    // Signing out clears it.
    let r = s
        .send("POST", "/ui/logout", &[("Cookie", &cookie)], b"")
        .await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn the_assets_are_built_in() {
    let s = TestServer::start(|_| {}).await;
    let js = s.send("GET", "/ui/app.js", &[], b"").await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.text().contains("/api/v1/events/stream"));
    let hls = s.send("GET", "/ui/hls-1.7.4.min.js", &[], b"").await;
    assert_eq!(hls.status, 200);
    assert!(hls.body.len() > 100_000);
    assert!(hls.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(s.send("GET", "/ui/app.css", &[], b"").await.status, 200);
    assert_eq!(s.send("GET", "/ui/nothing.js", &[], b"").await.status, 404);
}

fn glance(v: &serde_json::Value) -> &serde_json::Value {
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "glance")
        .unwrap()
}

#[tokio::test]
async fn the_status_shows_inputs_the_active_pipeline_and_switches_on_the_timeline() {
    let s = TestServer::start_clocked(|_| {}).await;
    let clock = s.clock.clone().unwrap();
    let id = ChannelId::parse("glance").unwrap();
    s.state
        .create_channel_with(&id, s.state.clock.now(), FailoverSettings::default())
        .await
        .unwrap();
    for k in 0..4 {
        push(&s, "glance", 0, k).await;
        push(&s, "glance", 1, k).await;
    }
    let v = status_until(&s, |v| glance(v)["active_pipeline"] == 0).await;
    let ch = glance(&v);
    assert_eq!(ch["id"], "glance");
    assert_eq!(ch["playlist"], "/out/glance/live/channel.m3u8");
    assert_eq!(ch["inputs"][0]["state"], "receiving");
    assert_eq!(ch["inputs"][1]["state"], "receiving");

    // Pipeline 0 stops; 3 s later (1.5 targets) the output is on 1.
    clock.advance(Duration::from_millis(2000));
    push(&s, "glance", 1, 4).await;
    clock.advance(Duration::from_millis(1000));
    push(&s, "glance", 1, 5).await;
    // The switch fires on the clock; pipeline 1's advance to 5 comes with
    // its playlist, handled a moment later.
    let v = status_until(&s, |v| {
        let ch = glance(v);
        ch["active_pipeline"] == 1 && ch["inputs"][1]["seconds_since_advance"] == 0.0
    })
    .await;
    let ch = glance(&v);
    assert_eq!(ch["inputs"][0]["state"], "lost");
    assert_eq!(ch["inputs"][1]["state"], "receiving");
    assert_eq!(ch["inputs"][0]["seconds_since_advance"], 3.0);
    assert_eq!(ch["inputs"][1]["seconds_since_advance"], 0.0);
    // A second later the stretch on 1 has a length.
    clock.advance(Duration::from_millis(1000));
    let v = status(&s).await;
    let r = &glance(&v)["timeline"]["renditions"][0];
    assert_eq!(r["rendition"], "live/channel.m3u8");
    let switches: Vec<(u64, &str)> = r["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["to"].as_u64().unwrap(), w["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(switches, [(0, "started"), (1, "stalled")]);
    let stretches: Vec<serde_json::Value> = r["stretches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pipeline"].clone())
        .collect();
    assert_eq!(
        stretches,
        [serde_json::Value::Null, 0.into(), 1.into()],
        "{r:#}"
    );
    // The stretch on 0 ended at the switch, 3 s after it began.
    let on0 = &r["stretches"][1];
    assert_eq!(on0["to"], r["switches"][1]["time"]);
}

/// A server-sent-events reader over one raw connection.
struct Sse {
    stream: tokio::net::TcpStream,
    raw: Vec<u8>,
}

impl Sse {
    async fn open(s: &TestServer, path: &str, last_id: Option<u64>) -> Sse {
        let mut stream = s.connect().await;
        let last = last_id.map_or(String::new(), |i| format!("Last-Event-ID: {i}\r\n"));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n{last}\r\n",
            s.state.admin_token
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut sse = Sse {
            stream,
            raw: Vec::new(),
        };
        sse.fill_until(|t| t.contains("\r\n\r\n")).await;
        let head = String::from_utf8_lossy(&sse.raw).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/event-stream")
        );
        sse
    }

    async fn fill_until(&mut self, done: impl Fn(&str) -> bool) {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&String::from_utf8_lossy(&self.raw)) {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .expect("the stream sent what the test waits for within 10 s")
                .unwrap();
            assert!(n > 0, "the stream closed");
            self.raw.extend_from_slice(&buf[..n]);
        }
    }

    /// The `(id, data)` of every event received so far (chunk-size lines
    /// of the chunked body are not `id:` or `data:` lines).
    fn events(&self) -> Vec<(u64, serde_json::Value)> {
        let text = String::from_utf8_lossy(&self.raw);
        let mut out = Vec::new();
        let mut id = None;
        for line in text.lines() {
            if let Some(i) = line.strip_prefix("id: ") {
                id = i.trim().parse().ok();
            } else if let Some(d) = line.strip_prefix("data: ") {
                out.push((id.take().unwrap(), serde_json::from_str(d).unwrap()));
            }
        }
        out
    }

    async fn wait_events(&mut self, n: usize) -> Vec<(u64, serde_json::Value)> {
        self.fill_until(|t| t.matches("\ndata: ").count() >= n)
            .await;
        self.events()
    }
}

#[tokio::test]
async fn the_event_stream_sends_every_event_once_and_replays_after_last_event_id() {
    let s = TestServer::start(|_| {}).await;
    let bus = s.state.events.clone();
    let mut all = Sse::open(&s, "/api/v1/events/stream", None).await;
    let mut one = Sse::open(&s, "/api/v1/events/stream?channel=b", None).await;
    // Both streams are subscribed once their heads arrived; publish three.
    for (ch, kind) in [
        ("a", "input_lost"),
        ("b", "switch"),
        ("a", "input_restored"),
    ] {
        bus.publish(
            tandem_server::events::Subject::Channel(ch.into()),
            &serde_json::json!({"time": "t", "kind": kind}),
        );
    }
    let got = all.wait_events(3).await;
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|(_, v)| (v["channel"].as_str().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("a", "input_lost"),
            ("b", "switch"),
            ("a", "input_restored")
        ]
    );
    let ids: Vec<u64> = got.iter().map(|(i, _)| *i).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(got[0].1["id"], ids[0]);
    let filtered = one.wait_events(1).await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].1["kind"], "switch");

    // A client that saw the first event reconnects: it gets the other two,
    // then live events.
    let mut again = Sse::open(&s, "/api/v1/events/stream", Some(ids[0])).await;
    let replayed = again.wait_events(2).await;
    assert_eq!(
        replayed.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        &ids[1..]
    );
    bus.publish(
        tandem_server::events::Subject::Archive("x".into()),
        &serde_json::json!({"time": "t", "kind": "index_uncovered"}),
    );
    let more = again.wait_events(3).await;
    assert_eq!(more[2].1["archive"], "x");
    assert_eq!(more[2].0, ids[2] + 1);

    // Without the token: 401; a bad filter: 400.
    let r = s.send("GET", "/api/v1/events/stream", &[], b"").await;
    assert_eq!(r.status, 401);
    let bearer = format!("Bearer {}", s.state.admin_token);
    let r = s
        .send(
            "GET",
            "/api/v1/events/stream?chanel=a",
            &[("Authorization", &bearer)],
            b"",
        )
        .await;
    assert_eq!(r.status, 400);
}
