//! A channel whose pipelines take their HLS from a MediaStore-style
//! container and an S3 bucket of this server instead of `/in/`: every
//! complete object written there feeds the same merged output, loss rule
//! and fill as PUT ingest. Requests are signed with `aws-sigv4`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use support::TestServer;
use tandem_core::{ArchiveId, ContainerId, Pipeline};

/// Signs `PUT http://{addr}{path}` for `service` with an unsigned payload.
fn signed_put_headers(
    service: &str,
    key: (&str, &str),
    addr: std::net::SocketAddr,
    path: &str,
) -> Vec<(String, String)> {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    let identity = Credentials::new(key.0, key.1, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let host = addr.to_string();
    let url = format!("http://{host}{path}");
    let req = SignableRequest::new(
        "PUT",
        &url,
        [("host", host.as_str())].into_iter(),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instr, _) = sign(req, &params).unwrap().into_parts();
    instr
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn playlist(first: u64, last: u64) -> String {
    let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for k in first..=last {
        t.push_str(&format!("#EXTINF:2.000,\nseg{k}.ts\n"));
    }
    t
}

struct Dest {
    service: &'static str,
    addr: std::net::SocketAddr,
    /// `/{container or bucket}/live/`.
    base: String,
    key: (String, String),
}

impl Dest {
    async fn put(&self, s: &TestServer, name: &str, body: &[u8]) {
        let path = format!("{}{name}", self.base);
        let headers =
            signed_put_headers(self.service, (&self.key.0, &self.key.1), self.addr, &path);
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = s.send_to(self.addr, "PUT", &path, &h, body).await;
        assert_eq!(r.status, 200, "{} PUT {path}: {}", self.service, r.text());
    }

    async fn push(&self, s: &TestServer, tag: &str, k: u64) {
        self.put(
            s,
            &format!("seg{k}.ts"),
            format!("{tag}-seg{k}").repeat(40).as_bytes(),
        )
        .await;
        self.put(s, "index.m3u8", playlist(k.saturating_sub(2), k).as_bytes())
            .await;
    }
}

async fn output_until(s: &TestServer, want: impl Fn(&str) -> bool) -> String {
    for _ in 0..500 {
        let r = s.send("GET", "/out/bound/index.m3u8", &[], b"").await;
        if r.status == 200 && want(&r.text()) {
            return r.text();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the output never became what the test waits for: {}",
        s.send("GET", "/out/bound/index.m3u8", &[], b"")
            .await
            .text()
    );
}

#[tokio::test]
async fn a_container_and_a_bucket_bound_to_a_channel_feed_its_merged_output() {
    let s = TestServer::start_clocked(|_| {}).await;
    let now = s.state.clock.now();
    let pair = s
        .state
        .create_container(&ContainerId::parse("enc").unwrap(), now)
        .unwrap();
    let archive = s
        .state
        .create_archive(&ArchiveId::parse("arc").unwrap(), now, None)
        .await
        .unwrap();
    let token = format!("Bearer {}", s.state.admin_token);
    let body = br#"{"id":"bound","inputs":[{"source":{"mediastore":"enc-0","prefix":"live/"}},{"source":{"s3":"arc-1","prefix":"live"}}]}"#;
    let r = s
        .send(
            "POST",
            "/api/v1/channels",
            &[("Authorization", &token)],
            body,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["inputs"][0]["source"],
        serde_json::json!({"mediastore":"enc-0","prefix":"live/"})
    );
    assert_eq!(
        v["inputs"][1]["source"],
        serde_json::json!({"s3":"arc-1","prefix":"live"})
    );

    let k0 = pair.keys(Pipeline::P0);
    let k1 = archive.keys(Pipeline::P1);
    let ms = Dest {
        service: "mediastore",
        addr: s.mediastore,
        base: "/enc-0/live/".into(),
        key: (k0.access_key_id.clone(), k0.secret_access_key.clone()),
    };
    let bucket = Dest {
        service: "s3",
        addr: s.s3,
        base: "/arc-1/live/".into(),
        key: (k1.access_key_id.clone(), k1.secret_access_key.clone()),
    };
    for k in 0..3 {
        ms.push(&s, "ms", k).await;
        bucket.push(&s, "s3", k).await;
    }
    let out = output_until(&s, |t| t.contains("index/2/seg2.ts")).await;
    assert_eq!(
        out,
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.000,\nindex/0/seg0.ts\n#EXTINF:2.000,\nindex/1/seg1.ts\n#EXTINF:2.000,\nindex/2/seg2.ts\n"
    );
    let seg = s.send("GET", "/out/bound/index/2/seg2.ts", &[], b"").await;
    assert_eq!((seg.status, seg.text()), (200, "ms-seg2".repeat(40)));
    // Each destination's receiving state, as for /in/ inputs: three
    // segments and three playlists each.
    let r = s
        .send(
            "GET",
            "/api/v1/channels/bound",
            &[("Authorization", &token)],
            b"",
        )
        .await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    for p in 0..2 {
        let input = &v["inputs"][p];
        assert_eq!(
            (&input["state"], &input["objects_received"]),
            (&serde_json::json!("receiving"), &serde_json::json!(6)),
            "{v:#}"
        );
    }

    // The container's pipeline announces segment 3 but never stores it:
    // 1.5 target durations later it is filled from the bucket's.
    ms.put(&s, "index.m3u8", playlist(1, 3).as_bytes()).await;
    bucket.push(&s, "s3", 3).await;
    let waiting = output_until(&s, |t| t.contains("seg2.ts")).await;
    assert!(!waiting.contains("seg3.ts"), "{waiting}");
    s.clock.as_ref().unwrap().advance(Duration::from_secs(3));
    output_until(&s, |t| t.contains("index/3/seg3.ts")).await;
    let seg = s.send("GET", "/out/bound/index/3/seg3.ts", &[], b"").await;
    assert_eq!((seg.status, seg.text()), (200, "s3-seg3".repeat(40)));

    // A bound pipeline's /in/ URL would feed nothing: refused, saying why.
    let r = s
        .put("/in/bound/0/live/seg9.ts", &s.basic("bound", 0), b"x")
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("MediaStore container enc-0"),
        "{}",
        r.text()
    );
    let bad = br#"{"id":"bad","inputs":[{"source":{"mediastore":"a","s3":"b"}}]}"#;
    let r = s
        .send(
            "POST",
            "/api/v1/channels",
            &[("Authorization", &token)],
            bad,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let bad = br#"{"id":"bad","inputs":[{"source":{"s3":"b","prefix":"../x"}}]}"#;
    let r = s
        .send(
            "POST",
            "/api/v1/channels",
            &[("Authorization", &token)],
            bad,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}
