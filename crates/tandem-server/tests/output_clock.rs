//! The output's timing rules at server level, on a clock the test moves:
//! the loss threshold, the grace period of segments that left the window
//! and the hold-down before a return to the preferred pipeline each act at
//! their exact instant, not a moment before.
//!
//! Every test uses its own channel: metrics are process-wide. Before
//! asserting that nothing happened, a test makes the driver handle one
//! more notice and waits until the publish-delay count says it did.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Resp, TestServer};
use tandem_core::{ChannelId, FailoverSettings};

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

struct Ch<'a> {
    s: &'a TestServer,
    id: &'static str,
}

impl Ch<'_> {
    async fn create<'s>(s: &'s TestServer, id: &'static str, failover: FailoverSettings) -> Ch<'s> {
        let cid = ChannelId::parse(id).unwrap();
        s.state
            .create_channel_with(&cid, s.state.clock.now(), failover)
            .await
            .unwrap();
        Ch { s, id }
    }

    async fn put(&self, p: usize, name: &str, body: &[u8]) {
        let r = self
            .s
            .put(
                &format!("/in/{}/{p}/live/{name}", self.id),
                &self.s.basic(self.id, p),
                body,
            )
            .await;
        assert_eq!(r.status / 100, 2, "{}", r.text());
    }

    /// Stores segment `k` on pipeline `p`, then publishes the playlist
    /// ending with it, and waits until the driver has handled it.
    async fn push(&self, p: usize, k: u64) {
        self.put(
            p,
            &format!("channel{k}.ts"),
            format!("p{p}-seg{k}").repeat(50).as_bytes(),
        )
        .await;
        self.republish(p, k).await;
    }

    /// Publishes pipeline `p`'s playlist ending with `k` again and waits
    /// until the driver has handled it.
    async fn republish(&self, p: usize, k: u64) {
        let before = self.handled().await;
        self.put(
            p,
            "channel.m3u8",
            playlist(k.saturating_sub(2), k).as_bytes(),
        )
        .await;
        for _ in 0..500 {
            if self.handled().await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the driver of {} never handled a playlist", self.id);
    }

    /// Playlists the driver has handled.
    async fn handled(&self) -> u64 {
        let m = self.s.send("GET", "/metrics", &[], b"").await.text();
        let key = format!(
            "tandem_output_publish_delay_seconds_count{{channel=\"{}\"}} ",
            self.id
        );
        m.lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    async fn get(&self, path: &str) -> Resp {
        self.s
            .send("GET", &format!("/out/{}/live/{path}", self.id), &[], b"")
            .await
    }

    async fn output(&self) -> String {
        self.get("channel.m3u8").await.text()
    }

    /// Polls (bounded) until the output playlist satisfies `want`.
    async fn output_until(&self, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..500 {
            let t = self.output().await;
            if want(&t) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "the output of {} never became what the test waits for:\n{}",
            self.id,
            self.output().await
        );
    }

    async fn events(&self) -> Vec<serde_json::Value> {
        let token = format!("Bearer {}", self.s.state.admin_token);
        let r = self
            .s
            .send(
                "GET",
                &format!("/api/v1/channels/{}/events", self.id),
                &[("Authorization", &token)],
                b"",
            )
            .await;
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["events"].as_array().unwrap().clone()
    }

    fn advance(&self, ms: u64) {
        self.s
            .clock
            .as_ref()
            .unwrap()
            .advance(Duration::from_millis(ms));
    }
}

#[tokio::test]
async fn the_output_switches_exactly_at_the_loss_threshold() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(&s, "loss", FailoverSettings::default()).await;
    for k in 0..4 {
        ch.push(0, k).await;
        ch.push(1, k).await;
    }
    ch.output_until(|t| t.contains("channel/3/channel3.ts"))
        .await;
    // P0 last advanced at t = 0; P1 carries on.
    ch.advance(2000);
    ch.push(1, 4).await;
    ch.advance(999);
    ch.republish(1, 4).await;
    let waiting = ch.output().await;
    assert!(
        waiting.ends_with("channel/3/channel3.ts\n"),
        "at 2.999 s the output waits for P0:\n{waiting}"
    );
    assert_eq!(
        ch.get("channel/3/channel3.ts").await.text(),
        "p0-seg3".repeat(50)
    );
    // 1.5 × 2 s after P0's last advance, the timer fires.
    ch.advance(1);
    ch.output_until(|t| t.ends_with("channel/4/channel4.ts\n"))
        .await;
    assert_eq!(
        ch.get("channel/4/channel4.ts").await.text(),
        "p1-seg4".repeat(50)
    );
    let events = ch.events().await;
    let switch = events.iter().rfind(|e| e["kind"] == "switch").unwrap();
    assert_eq!(
        (
            &switch["from"],
            &switch["to"],
            &switch["reason"],
            &switch["discontinuity"],
            &switch["switch_delay_ms"]
        ),
        (
            &serde_json::json!("0"),
            &serde_json::json!("1"),
            &serde_json::json!("stalled"),
            &serde_json::json!(false),
            &serde_json::json!(3000)
        ),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "input_state" && e["pipeline"] == 0 && e["to"] == "lost"),
        "{events:#?}"
    );
    let alarms = |events: &[serde_json::Value]| -> Vec<(String, u64)> {
        events
            .iter()
            .filter(|e| e["kind"] == "input_lost" || e["kind"] == "input_restored")
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_owned(),
                    e["pipeline"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(alarms(&events), [("input_lost".to_owned(), 0)]);
    // P0 comes back: restored, once.
    ch.push(0, 5).await;
    let events = ch.events().await;
    assert_eq!(
        alarms(&events),
        [
            ("input_lost".to_owned(), 0),
            ("input_restored".to_owned(), 0)
        ]
    );
    let m = ch.s.send("GET", "/metrics", &[], b"").await.text();
    for kind in ["input_lost", "input_restored"] {
        let line = format!(
            "tandem_input_transitions_total{{channel=\"loss\",pipeline=\"0\",kind=\"{kind}\"}} 1"
        );
        assert!(m.contains(&line), "{line} in\n{m}");
    }
}

#[tokio::test]
async fn a_segment_that_left_the_window_is_served_for_exactly_the_grace_period() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(&s, "grace", FailoverSettings::default()).await;
    for k in 0..6 {
        ch.push(0, k).await;
    }
    let out = ch
        .output_until(|t| t.contains("channel/5/channel5.ts"))
        .await;
    assert!(
        !out.contains("channel0.ts"),
        "segment 0 left the window:\n{out}"
    );
    let seg0 = "channel/0/channel0.ts";
    assert_eq!(ch.get(seg0).await.text(), "p0-seg0".repeat(50));
    // The default grace period is 60 s.
    ch.advance(59_999);
    ch.republish(0, 5).await;
    assert_eq!(ch.get(seg0).await.status, 200, "at 59.999 s");
    ch.advance(1);
    let mut status = 0;
    for _ in 0..500 {
        status = ch.get(seg0).await.status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(status, 404, "at 60 s the pin is gone");
    assert_eq!(
        ch.get("channel/5/channel5.ts").await.status,
        200,
        "still in the window"
    );
}

#[tokio::test]
async fn the_output_returns_to_the_preferred_pipeline_exactly_after_the_hold_down() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(
        &s,
        "hold",
        FailoverSettings {
            prefer: Some(0),
            hold_down_secs: Some(30),
            ..FailoverSettings::default()
        },
    )
    .await;
    for k in 0..3 {
        ch.push(0, k).await;
        ch.push(1, k).await;
    }
    // P0 misses segment 3; at 3 s the output is on P1.
    ch.advance(2000);
    ch.push(1, 3).await;
    ch.advance(1000);
    ch.output_until(|t| t.ends_with("channel/3/channel3.ts\n"))
        .await;
    assert_eq!(
        ch.get("channel/3/channel3.ts").await.text(),
        "p1-seg3".repeat(50)
    );
    // P0 is back at 4 s and stays healthy; both push every 2 s.
    ch.advance(1000);
    for k in 4..=18 {
        if k > 4 {
            ch.advance(2000);
        }
        ch.push(0, k).await;
        ch.push(1, k).await;
    }
    // 32 s. At 33.999 s P0 has segment 19 whole, P1 not yet: the
    // output waits for its active pipeline, P1.
    ch.advance(1999);
    ch.push(0, 19).await;
    let out = ch.output().await;
    assert!(out.ends_with("channel/18/channel18.ts\n"), "{out}");
    assert_eq!(
        ch.get("channel/18/channel18.ts").await.text(),
        "p1-seg18".repeat(50)
    );
    assert!(!ch.events().await.iter().any(|e| e["reason"] == "preferred"));
    // 34 s: P0 has been receiving for 30 s since 4 s.
    ch.advance(1);
    ch.output_until(|t| t.ends_with("channel/19/channel19.ts\n"))
        .await;
    assert_eq!(
        ch.get("channel/19/channel19.ts").await.text(),
        "p0-seg19".repeat(50)
    );
    let events = ch.events().await;
    let back = events.iter().rfind(|e| e["kind"] == "switch").unwrap();
    assert_eq!(
        (
            &back["from"],
            &back["to"],
            &back["reason"],
            &back["discontinuity"]
        ),
        (
            &serde_json::json!("1"),
            &serde_json::json!("0"),
            &serde_json::json!("preferred"),
            &serde_json::json!(false)
        ),
        "{events:#?}"
    );
}

/// An encoder started again: media sequence from 0, the same file names,
/// program date-times `later_s` seconds on.
fn restarted_playlist(first: u64, last: u64, later_s: u64) -> String {
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in first..=last {
        let s = later_s + 2 * k;
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T{:02}:{:02}:{:02}.000+0000\n#EXTINF:2.000000,\nchannel{k}.ts\n",
            4 + s / 3600,
            s / 60 % 60,
            s % 60
        ));
    }
    t
}

impl Ch<'_> {
    /// Publishes `text` as pipeline `p`'s playlist and waits until the
    /// driver has handled it.
    async fn publish(&self, p: usize, text: &str) {
        let before = self.handled().await;
        self.put(p, "channel.m3u8", text.as_bytes()).await;
        for _ in 0..500 {
            if self.handled().await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the driver of {} never handled a playlist", self.id);
    }

    async fn reset(&self, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        self.s
            .send(
                "POST",
                &format!("/api/v1/channels/{}/reset", self.id),
                &headers,
                b"",
            )
            .await
    }

    /// Polls (bounded) until `path` under the output answers `status`.
    async fn status_until(&self, path: &str, status: u16) -> u16 {
        let mut got = 0;
        for _ in 0..500 {
            got = self.get(path).await.status;
            if got == status {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        got
    }
}

fn kinds(events: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Both encoders stop (ENDLIST) and start again from media sequence 0 with
/// the same file names: the output resumes on its own. Then an operator
/// resets it: the playlist empties at a time-based base, the old pins go
/// after exactly the grace period, and a restart of Tandem continues the
/// new output.
#[tokio::test]
async fn an_ended_output_resumes_when_the_encoders_start_again_and_a_reset_starts_afresh() {
    let s = TestServer::start_clocked(|_| {}).await;
    let token = s.state.admin_token.clone();
    let ch = Ch::create(&s, "daily", FailoverSettings::default()).await;
    for k in 0..4 {
        ch.push(0, k).await;
        ch.push(1, k).await;
    }
    ch.advance(1000);
    for p in 0..2 {
        ch.publish(p, &format!("{}#EXT-X-ENDLIST\n", playlist(1, 3)))
            .await;
    }
    let out = ch.output_until(|t| t.ends_with("#EXT-X-ENDLIST\n")).await;
    assert!(out.contains("channel/3/channel3.ts\n"), "{out}");
    // An hour later both start again.
    ch.advance(3_600_000);
    for p in 0..2 {
        ch.put(p, "channel0.ts", format!("r{p}-seg0").repeat(50).as_bytes())
            .await;
        ch.publish(p, &restarted_playlist(0, 0, 3600)).await;
    }
    let out = ch
        .output_until(|t| t.contains("channel/4/channel0.ts"))
        .await;
    assert!(!out.contains("ENDLIST"), "{out}");
    assert!(
        out.contains("channel/3/channel3.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T05:00:00.000+0000\n#EXTINF:2.000000,\nchannel/4/channel0.ts\n"),
        "{out}"
    );
    assert_eq!(out.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{out}");
    assert_eq!(
        ch.get("channel/4/channel0.ts").await.text(),
        "r0-seg0".repeat(50),
        "the new segment, not the old file of the same name"
    );
    let events = ch.events().await;
    let resumed = kinds(&events, "output_resumed");
    assert_eq!(resumed.len(), 1, "{events:#?}");
    assert_eq!(
        (&resumed[0]["pipeline"], &resumed[0]["media_sequence"]),
        (&serde_json::json!(0), &serde_json::json!(4))
    );

    // Reset: refused without the token or for an unknown channel.
    assert_eq!(ch.reset(None).await.status, 401);
    let unknown = s
        .send(
            "POST",
            "/api/v1/channels/nosuch/reset",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let base = s
        .state
        .clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = ch.reset(Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"renditions": [{"rendition": "live/channel.m3u8", "media_sequence": base}]})
    );
    // Answered once the new playlist is served.
    assert_eq!(
        ch.output().await,
        format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{base}\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n"
        ),
        "empty at the base; the discontinuity that left is counted"
    );
    assert_eq!(kinds(&ch.events().await, "output_reset").len(), 1);
    // Both are counted for the channel's one rendition.
    let m = support::scrape(&s).await;
    let total = |name: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("channel=\"daily\""))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(total("tandem_output_resumed_total"), 1.0, "{m}");
    assert_eq!(total("tandem_output_resets_total"), 1.0, "{m}");
    // The old pins are served for the grace period (60 s), then gone.
    ch.advance(59_999);
    ch.publish(0, &restarted_playlist(0, 0, 3600)).await;
    assert_eq!(ch.get("channel/4/channel0.ts").await.status, 200);
    ch.advance(1);
    assert_eq!(ch.status_until("channel/4/channel0.ts", 404).await, 404);
    assert_eq!(ch.status_until("channel/3/channel3.ts", 404).await, 404);

    // A restart of Tandem continues the new output.
    let s = s.restart(|_| {}).await;
    let ch = Ch { s: &s, id: "daily" };
    ch.output_until(|t| t.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{base}\n")))
        .await;
    ch.put(0, "channel1.ts", b"r0-seg1").await;
    ch.publish(0, &restarted_playlist(0, 1, 3600)).await;
    let out = ch
        .output_until(|t| t.contains(&format!("channel/{base}/channel1.ts")))
        .await;
    assert!(
        out.contains(&format!(
            "#EXT-X-MEDIA-SEQUENCE:{base}\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-DISCONTINUITY\n"
        )),
        "{out}"
    );
    assert!(
        !out.contains("channel0.ts"),
        "nothing goes out twice:\n{out}"
    );
}
