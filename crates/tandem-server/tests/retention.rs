//! Retention at server level, on a clock the test moves: encoders push HLS
//! by HTTP PUT and never DELETE; what no playlist and no output window
//! names any more goes from disk and from the `/in/` listing, while
//! everything the output names is still served. Also a channel's longer
//! input history, stray uploads, and the `disk_low` event.
//!
//! Every test uses its own channel: metrics are process-wide. Checks are
//! made after a whole retention walk that began at a known instant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Resp, TestServer, metric_value, scrape};
use tandem_core::ChannelId;

/// Pipeline `p`'s bytes of segment `k`.
fn seg(p: usize, k: u64) -> Vec<u8> {
    format!("p{p}-v{k}|").repeat(40).into_bytes()
}

const INIT: &[u8] = b"init-section-of-the-rendition";

/// fMP4, a three-segment window ending with `last`, 2 s segments.
fn playlist(last: u64) -> String {
    let first = last.saturating_sub(2);
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init.mp4\"\n"
    );
    for k in first..=last {
        t.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T05:{:02}:{:02}.000Z\n#EXTINF:2.000,\nv{k}.m4s\n",
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
    /// Creates the channel through the API, with `body` (JSON) merged into
    /// the request.
    async fn create<'s>(s: &'s TestServer, id: &'static str, extra: serde_json::Value) -> Ch<'s> {
        let mut body = serde_json::json!({ "id": id });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let r = s
            .send(
                "POST",
                "/api/v1/channels",
                &[("Authorization", &format!("Bearer {}", s.state.admin_token))],
                body.to_string().as_bytes(),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let ch = Ch { s, id };
        // The first walk runs at the start.
        ch.settle().await;
        ch
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

    /// Stores segment `k` on pipeline `p`, then the playlist ending with
    /// it, and waits until the driver has handled it.
    async fn push(&self, p: usize, k: u64) {
        if k == 0 {
            self.put(p, "init.mp4", INIT).await;
        }
        self.put(p, &format!("v{k}.m4s"), &seg(p, k)).await;
        let before = self.handled().await;
        self.put(p, "video.m3u8", playlist(k).as_bytes()).await;
        for _ in 0..500 {
            if self.handled().await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the driver of {} never handled a playlist", self.id);
    }

    async fn handled(&self) -> u64 {
        let m = scrape(self.s).await;
        metric_value(
            &m,
            &format!(
                "tandem_output_publish_delay_seconds_count{{channel=\"{}\"}}",
                self.id
            ),
        )
        .map_or(0, |v| v as u64)
    }

    fn clock(&self) -> &tandem_server::ManualClock {
        self.s.clock.as_deref().unwrap()
    }

    /// Moves time on by `secs`, and lets a retention step that is due
    /// then run before anything else happens at that instant (a small
    /// channel's walk is one step).
    async fn advance(&self, secs: u64) {
        self.clock().advance(Duration::from_secs(secs));
        self.settle().await;
    }

    /// Waits for the retention step due now, if one is.
    async fn settle(&self) {
        use tandem_server::Clock;
        use tandem_server::output::retention::SWEEP_EVERY;
        let now = self.clock().instant();
        let last = self.status().retention.last_walk();
        if last.is_some_and(|w| w + SWEEP_EVERY > now) {
            return;
        }
        self.walk_since(now).await;
    }

    /// Waits for a whole walk that began at `t` or later.
    async fn walk_since(&self, t: Instant) {
        for _ in 0..1000 {
            if self.status().retention.last_walk().is_some_and(|w| w >= t) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!(
            "no retention walk of {} began at or after the instant",
            self.id
        );
    }

    fn status(&self) -> Arc<tandem_server::output::ChannelOutput> {
        let id = ChannelId::parse(self.id).unwrap();
        self.s.state.outputs.get(&id).unwrap()
    }

    /// Moves time on by `secs` and waits for a whole retention walk that
    /// began then (a step must be due).
    async fn advance_and_walk(&self, secs: u64) {
        use tandem_server::Clock;
        self.clock().advance(Duration::from_secs(secs));
        self.walk_since(self.clock().instant()).await;
    }

    /// Files of pipeline `p`'s `live/` directory on disk, with sizes.
    fn on_disk(&self, p: usize) -> BTreeMap<String, u64> {
        std::fs::read_dir(self.s.on_disk(&format!("{}/{p}/live", self.id)))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect()
    }

    /// The names a WebDAV client sees in pipeline `p`'s `live/`.
    async fn listed(&self, p: usize) -> Vec<String> {
        let dir = format!("/in/{}/{p}/live/", self.id);
        let auth = self.s.basic(self.id, p);
        let r = self
            .s
            .send(
                "PROPFIND",
                &dir,
                &[("Authorization", &auth), ("Depth", "1")],
                b"",
            )
            .await;
        assert_eq!(r.status, 207, "{}", r.text());
        r.text()
            .split("<D:href>")
            .skip(1)
            .filter_map(|h| h.split("</D:href>").next())
            .filter_map(|h| h.strip_prefix(&dir))
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    async fn get(&self, path: &str) -> Resp {
        self.s
            .send("GET", &format!("/out/{}/live/{path}", self.id), &[], b"")
            .await
    }

    /// Every URI the output playlist names (segments, and `URI="…"`
    /// attributes such as an init section's) answers 200 with the bytes an
    /// input uploaded under that name; returns how many segments it names.
    async fn output_all_served(&self) -> usize {
        let out = self.get("video.m3u8").await;
        assert_eq!(out.status, 200);
        let text = out.text();
        let segments = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        let uris = tandem_hls::referenced_uris(&text, true);
        for uri in uris {
            let r = self.get(uri).await;
            assert_eq!(r.status, 200, "{uri} of\n{text}");
            let name = uri.rsplit('/').next().unwrap();
            let want: Vec<Vec<u8>> = match name.strip_prefix('v') {
                Some(n) => {
                    let k = n.strip_suffix(".m4s").unwrap().parse().unwrap();
                    vec![seg(0, k), seg(1, k)]
                }
                None => vec![INIT.to_vec()],
            };
            assert!(want.contains(&r.body), "{uri}: wrong bytes");
        }
        segments
    }
}

fn segments(names: impl IntoIterator<Item = String>) -> Vec<u64> {
    let mut v: Vec<u64> = names
        .into_iter()
        .filter_map(|n| n.strip_prefix('v')?.strip_suffix(".m4s")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn input_segments_go_from_disk_and_listing_once_out_of_every_window_for_the_grace_period() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(&s, "ret", serde_json::json!({})).await;
    // 40 segments of 2 s on both pipelines, no DELETE: 13 windows.
    for k in 0..40 {
        ch.push(0, k).await;
        ch.push(1, k).await;
        ch.advance(2).await;
    }
    // 85 s. Segment k left the input playlists and the output window at
    // 2k + 6 s. Retention steps ran at 0, 6, 12, … 78 s (each 5 s after the
    // last, at the first advance past it, before that instant's uploads)
    // and now at 85 s. It saw v8 go at 24 s: due at 84 s, gone. v9 went
    // at 24 s too, after that step: seen at 30 s, due at 90 s.
    ch.advance_and_walk(5).await;
    for p in [0, 1] {
        let disk = ch.on_disk(p);
        let on_disk = segments(disk.keys().cloned());
        assert_eq!(
            on_disk,
            (9..40).collect::<Vec<_>>(),
            "pipeline {p}: what left every window more than the grace period ago is gone, nothing else"
        );
        assert!(disk.contains_key("video.m3u8") && disk.contains_key("init.mp4"));
        let listed = ch.listed(p).await;
        assert_eq!(
            segments(listed.iter().cloned()),
            on_disk,
            "pipeline {p}: the listing shows what is on disk"
        );
        assert!(listed.contains(&"init.mp4".to_owned()), "{listed:?}");
        // What the API and /metrics report is what is on disk.
        let stored: u64 = disk.values().sum();
        assert_eq!(ch.status().retention.stored_bytes().unwrap()[p], stored);
        let m = scrape(&s).await;
        let series = |name: &str| format!("{name}{{channel=\"ret\",pipeline=\"{p}\"}}");
        assert_eq!(
            metric_value(&m, &series("tandem_channel_stored_bytes")),
            Some(stored as f64)
        );
        assert_eq!(
            metric_value(&m, &series("tandem_retention_removed_objects_total")),
            Some(9.0)
        );
        let removed_bytes: usize = (0..9).map(|k| seg(p, k).len()).sum();
        assert_eq!(
            metric_value(&m, &series("tandem_retention_removed_bytes_total")),
            Some(removed_bytes as f64)
        );
    }
    let token = format!("Bearer {}", s.state.admin_token);
    let view: serde_json::Value = serde_json::from_slice(
        &s.send(
            "GET",
            "/api/v1/channels/ret",
            &[("Authorization", &token)],
            b"",
        )
        .await
        .body,
    )
    .unwrap();
    let disk_total = |p| ch.on_disk(p).values().sum::<u64>();
    assert_eq!(
        view["stored_bytes"],
        serde_json::json!([disk_total(0), disk_total(1)])
    );
    assert_eq!(ch.output_all_served().await, 3);
    // Much later, the encoders stopped: the window's last segments and the
    // init section are still named by the playlists and the output.
    ch.advance_and_walk(600).await;
    for p in [0, 1] {
        assert_eq!(segments(ch.on_disk(p).into_keys()), [37, 38, 39]);
    }
    assert_eq!(ch.output_all_served().await, 3);
}

#[tokio::test]
async fn a_channel_s_input_history_is_kept_for_its_retention_and_can_be_changed() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(
        &s,
        "dvr",
        serde_json::json!({"retention": {"input_secs": 300}}),
    )
    .await;
    for k in 0..20 {
        ch.push(0, k).await;
        ch.advance(2).await;
    }
    // 40 s + 255 s: a walk at 295 s, the next due at 300 s, when v0
    // (uploaded at 0 s) is 300 s old. Without the channel's retention it
    // would have gone at about 66 s.
    ch.advance_and_walk(255).await;
    assert_eq!(
        segments(ch.on_disk(0).into_keys()),
        (0..20).collect::<Vec<_>>()
    );
    ch.advance_and_walk(5).await;
    assert_eq!(
        segments(ch.on_disk(0).into_keys()),
        (1..20).collect::<Vec<_>>()
    );
    // Saved with the channel, shown by the API; changed at run time.
    let token = format!("Bearer {}", s.state.admin_token);
    let auth = [("Authorization", token.as_str())];
    let view: serde_json::Value =
        serde_json::from_slice(&s.send("GET", "/api/v1/channels/dvr", &auth, b"").await.body)
            .unwrap();
    assert_eq!(view["retention"], serde_json::json!({"input_secs": 300}));
    let id = ChannelId::parse("dvr").unwrap();
    assert_eq!(
        s.state.db.get(&id).unwrap().unwrap().retention.input_secs,
        Some(300)
    );
    let r = s
        .send(
            "PATCH",
            "/api/v1/channels/dvr",
            &auth,
            br#"{"retention":{"input_secs":0}}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = s
        .send(
            "PATCH",
            "/api/v1/channels/dvr",
            &auth,
            br#"{"retention":{}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.state.db.get(&id).unwrap().unwrap().retention.input_secs,
        None
    );
    // Without it, what left the windows 60 s ago goes (with it, only v2
    // would, 300 s old): v1..=v14. v15 and v16 left at 36 and 38 s, after
    // the step at 36 s; the next step came at 295 s, when time jumped:
    // they stay until 355 s.
    ch.advance_and_walk(5).await;
    assert_eq!(segments(ch.on_disk(0).into_keys()), [15, 16, 17, 18, 19]);
    assert_eq!(ch.output_all_served().await, 3);
}

#[tokio::test]
async fn objects_no_playlist_names_go_once_older_than_the_unnamed_retention() {
    let s = TestServer::start_clocked(|_| {}).await;
    let ch = Ch::create(&s, "stray", serde_json::json!({})).await;
    ch.push(0, 0).await;
    ch.put(0, "thumb.jpg", b"not named by any playlist").await;
    // Uploaded at 0 s; the default is 600 s. A walk at 595 s, the next at
    // 600 s.
    ch.advance_and_walk(595).await;
    let disk = ch.on_disk(0);
    assert!(disk.contains_key("thumb.jpg"), "young: kept {disk:?}");
    assert!(disk.contains_key("v0.m4s"), "named: kept");
    ch.advance_and_walk(5).await;
    let disk = ch.on_disk(0);
    assert!(!disk.contains_key("thumb.jpg"), "600 s old: gone {disk:?}");
    assert!(!ch.listed(0).await.contains(&"thumb.jpg".to_owned()));
    // What the playlist still names stays, however old; playlists stay.
    assert!(disk.contains_key("v0.m4s") && disk.contains_key("init.mp4"));
    assert!(disk.contains_key("video.m3u8"));
    assert_eq!(ch.output_all_served().await, 1);
}

/// Free space the test decides.
#[derive(Debug)]
struct FakeSpace(Mutex<u64>);

impl tandem_server::disk::SpaceSource for FakeSpace {
    fn space(&self) -> std::io::Result<tandem_store::Space> {
        Ok(tandem_store::Space {
            available: *self.0.lock().unwrap(),
            total: 100 * 1024 * 1024 * 1024,
        })
    }
}

#[tokio::test]
async fn disk_low_is_raised_under_the_threshold_and_cleared_above_it() {
    let s = TestServer::start_clocked(|c| {
        c.disk_low_percent = tandem_server::config::DEFAULT_DISK_LOW_PERCENT;
        c.disk_low_bytes = tandem_server::config::DEFAULT_DISK_LOW_BYTES;
    })
    .await;
    let mut events = s.state.events.subscribe();
    let space = Arc::new(FakeSpace(Mutex::new(50 * 1024 * 1024 * 1024)));
    s.state.disk.set_source(space.clone());
    let clock = s.clock.as_deref().unwrap();
    let check = async |avail: u64| {
        *space.0.lock().unwrap() = avail;
        // The watch checks every 10 s.
        clock.advance(Duration::from_secs(10));
        for _ in 0..400 {
            if s.state.disk.last().is_some_and(|l| l.available == avail) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the disk was not checked");
    };
    check(50 * 1024 * 1024 * 1024).await;
    assert!(!s.state.disk.is_low());
    // 5 % of 100 GiB is 5 GiB (more than 1 GiB).
    let gib = 1024 * 1024 * 1024;
    check(5 * gib).await;
    assert!(!s.state.disk.is_low(), "at the threshold: not low");
    check(5 * gib - 1).await;
    assert!(s.state.disk.is_low());
    // (A real check before the test's source may have raised its own.)
    let ev = loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        if e.kind() == "disk_low" {
            break e;
        }
    };
    let v = serde_json::to_value(&*ev).unwrap();
    assert_eq!(v["kind"], "disk_low");
    assert_eq!(v["disk"], s.state.cfg.data_dir.display().to_string());
    assert_eq!(v["available_bytes"], 5 * gib - 1);
    assert_eq!(v["threshold_bytes"], 5 * gib);
    let m = scrape(&s).await;
    assert_eq!(metric_value(&m, "tandem_disk_low"), Some(1.0));
    check(6 * gib).await;
    assert!(!s.state.disk.is_low());
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.kind(), "disk_ok");
    assert_eq!(
        metric_value(&scrape(&s).await, "tandem_disk_low"),
        Some(0.0)
    );
}
