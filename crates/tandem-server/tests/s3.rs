//! The S3 listener on the wire: interrupted uploads publish nothing, and
//! every kind of bad input gets S3's status and error code in an XML body.
//! Requests are signed with `aws-sigv4`, an independent SigV4 signer.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use support::{Resp, TestServer, read_response};
use tandem_core::{ArchiveId, Pipeline};
use tokio::io::AsyncWriteExt;

/// Header or query pairs.
type Pairs = Vec<(String, String)>;

struct Signer {
    key: (String, String),
    region: String,
}

impl Signer {
    fn settings() -> SigningSettings {
        let mut s = SigningSettings::default();
        s.percent_encoding_mode = PercentEncodingMode::Single;
        s.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        s.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        s
    }

    /// Headers that sign `method url` with an unsigned payload.
    fn headers(&self, method: &str, url: &str, host: &str) -> Vec<(String, String)> {
        self.sign(method, url, host, Self::settings(), SystemTime::now())
            .0
    }

    /// A presigned URL, signed at `time`, valid for `expires`.
    fn presign(
        &self,
        method: &str,
        url: &str,
        host: &str,
        time: SystemTime,
        expires: u64,
    ) -> String {
        let mut s = Self::settings();
        s.signature_location = SignatureLocation::QueryParams;
        s.expires_in = Some(Duration::from_secs(expires));
        let (_, params) = self.sign(method, url, host, s, time);
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect();
        format!("{url}?{}", q.join("&"))
    }

    fn sign(
        &self,
        method: &str,
        url: &str,
        host: &str,
        settings: SigningSettings,
        time: SystemTime,
    ) -> (Pairs, Pairs) {
        let identity = Credentials::new(&self.key.0, &self.key.1, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let req = SignableRequest::new(
            method,
            url,
            [("host", host)].into_iter(),
            SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (instr, _) = sign(req, &params).unwrap().into_parts();
        let headers = instr
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let params = instr
            .params()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect();
        (headers, params)
    }
}

fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct S3 {
    srv: TestServer,
    signer: Signer,
}

impl S3 {
    async fn start() -> Self {
        Self::start_for("news").await
    }

    /// A server with the archive pair `id` (tests that read process-wide
    /// metrics use an id of their own).
    async fn start_for(id: &str) -> Self {
        Self::with_server(TestServer::start(|_| {}).await, id, 10).await
    }

    /// A server on a manual clock with the pair `id`, whose files roll
    /// over every `rollover` seconds.
    async fn start_clocked(
        id: &str,
        rollover: u64,
        tweak: impl FnOnce(&mut tandem_server::ServerConfig),
    ) -> Self {
        Self::with_server(TestServer::start_clocked(tweak).await, id, rollover).await
    }

    async fn with_server(srv: TestServer, id: &str, rollover: u64) -> Self {
        let id = ArchiveId::parse(id).unwrap();
        let spec = srv
            .state
            .create_archive(&id, SystemTime::now(), Some(rollover))
            .await
            .unwrap();
        let k = spec.keys(Pipeline::P0);
        let signer = Signer {
            key: (k.access_key_id.clone(), k.secret_access_key.clone()),
            region: "us-east-1".into(),
        };
        Self { srv, signer }
    }

    fn host(&self) -> String {
        self.srv.s3.to_string()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host())
    }

    /// Writes a signed request head announcing `len` body bytes, then
    /// `body` (which may be shorter), and either reads the answer or, when
    /// `cut`, closes the connection.
    async fn raw(
        &self,
        method: &str,
        path: &str,
        len: usize,
        body: &[u8],
        cut: bool,
    ) -> Option<Resp> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {len}\r\n",
            self.host()
        );
        for (k, v) in self.signer.headers(method, &self.url(path), &self.host()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut s = tokio::net::TcpStream::connect(self.srv.s3).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        if cut {
            s.shutdown().await.unwrap();
            drop(s);
            return None;
        }
        Some(read_response(&mut s, method == "HEAD").await)
    }

    async fn call(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        self.raw(method, path, body.len(), body, false)
            .await
            .unwrap()
    }

    /// One request signed by `signer`, with `extra` headers unsigned.
    async fn signed_by(
        &self,
        signer: &Signer,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let signed = signer.headers(method, &self.url(path), &self.host());
        let mut headers: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.extend_from_slice(extra);
        self.srv
            .send_to(self.srv.s3, method, path, &headers, body)
            .await
    }

    /// Starts a multipart upload of `path`; its upload id.
    async fn create_upload(&self, path: &str) -> String {
        let created = self.call("POST", &format!("{path}?uploads"), b"").await;
        assert_eq!(created.status, 200);
        let text = String::from_utf8_lossy(&created.body).into_owned();
        text.split("<UploadId>")
            .nth(1)
            .and_then(|s| s.split("</UploadId>").next())
            .unwrap()
            .to_owned()
    }

    fn listed_keys(xml: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(xml);
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

fn code(r: &Resp) -> String {
    let text = String::from_utf8_lossy(&r.body);
    text.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn an_interrupted_put_object_publishes_nothing_and_keeps_the_previous_version() {
    // Its own archive id: the upload counter below is process-wide.
    let s3 = S3::start_for("cutoff").await;
    let v1 = vec![1u8; 100_000];
    assert_eq!(s3.call("PUT", "/cutoff-0/a/seg.ts", &v1).await.status, 200);
    // Version 2 announces 3 MB and sends 1.5 MB (past the store's 1 MiB
    // in-memory batch, so a staged file exists) before the client goes away.
    let v2 = vec![2u8; 1_500_000];
    assert!(
        s3.raw("PUT", "/cutoff-0/a/seg.ts", 3_000_000, &v2, true)
            .await
            .is_none()
    );
    // A brand-new key cut off the same way.
    assert!(
        s3.raw("PUT", "/cutoff-0/a/new.ts", 3_000_000, &v2, true)
            .await
            .is_none()
    );
    // The client is gone before the server has read the end of either
    // body: wait until all three handlers are over, whatever their outcome,
    // before looking at what they left.
    let prefix = r#"tandem_s3_uploads_total{bucket="cutoff-0",operation="PutObject",outcome=""#;
    let outcomes = |text: &str| -> Vec<(String, f64)> {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .filter_map(|l| {
                let (outcome, value) = l.split_once("\"} ")?;
                Some((outcome.to_owned(), value.trim().parse().ok()?))
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let ended = outcomes(&support::scrape(&s3.srv).await);
        if ended.iter().map(|(_, n)| n).sum::<f64>() >= 3.0 {
            break ended;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the uploads never ended: {ended:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut ended = ended;
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ended,
        [("IncompleteBody".to_owned(), 2.0), ("ok".to_owned(), 1.0)],
        "the two cut uploads end refused, only the whole one is published"
    );
    let disk = s3.srv.dir.path().join("objects/s3.buckets/cutoff-0/a");
    assert_eq!(std::fs::read(disk.join("seg.ts")).unwrap(), v1);
    assert!(!disk.join("new.ts").exists());
    let got = s3.call("GET", "/cutoff-0/a/seg.ts", b"").await;
    assert_eq!((got.status, got.body == v1), (200, true));
    let head = s3.call("HEAD", "/cutoff-0/a/new.ts", b"").await;
    assert_eq!(head.status, 404);
    let list = s3.call("GET", "/cutoff-0?list-type=2", b"").await;
    assert_eq!(S3::listed_keys(&list.body), ["a/seg.ts"]);
    // The staged files of the cut bodies are gone with their handlers.
    assert_eq!(s3.srv.staged_files(), 0, "a staged file was left behind");
}

#[tokio::test]
async fn a_multipart_upload_never_completed_is_removed_after_a_day() {
    let s3 = S3::start_clocked("expiry", 10, |_| {}).await;
    let clock = s3.srv.clock.clone().unwrap();
    let id = s3.create_upload("/expiry-0/big.ts").await;
    let part = s3
        .call(
            "PUT",
            &format!("/expiry-0/big.ts?partNumber=1&uploadId={id}"),
            &[7u8; 1000],
        )
        .await;
    assert_eq!(part.status, 200);
    let dir = s3.srv.dir.path().join("objects/s3.uploads").join(&id);
    assert!(dir.join("00001.part").is_file());
    let listed = |body: &[u8]| String::from_utf8_lossy(body).contains(&id);
    // 23 hours on: kept, and still listed and completable.
    clock.advance(Duration::from_secs(23 * 3600));
    let expiry = s3.srv.state.cfg.s3_multipart_expiry;
    assert_eq!(expiry, Duration::from_secs(86_400));
    let now = tandem_server::clock::Clock::now(clock.as_ref());
    assert_eq!(
        s3.srv.state.s3.expire_uploads(now, expiry).await.unwrap(),
        0
    );
    assert!(listed(&s3.call("GET", "/expiry-0?uploads", b"").await.body));
    // Past a day: the hourly sweep removes it, parts and all.
    clock.advance(Duration::from_secs(2 * 3600));
    assert!(
        s3.srv.eventually(|| !dir.exists()).await,
        "the abandoned upload is still on disk"
    );
    assert!(!listed(
        &s3.call("GET", "/expiry-0?uploads", b"").await.body
    ));
    let done = s3
        .call(
            "POST",
            &format!("/expiry-0/big.ts?uploadId={id}"),
            b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        )
        .await;
    assert_eq!((done.status, code(&done).as_str()), (404, "NoSuchUpload"));
    let m = support::scrape(&s3.srv).await;
    assert!(
        support::metric_value(&m, "tandem_s3_multipart_expired_total").is_some_and(|v| v >= 1.0),
        "{m}"
    );
}

#[tokio::test]
async fn an_unfinished_multipart_upload_is_invisible_until_completed() {
    let s3 = S3::start().await;
    let id = s3.create_upload("/news-0/big.ts").await;
    let part1 = vec![7u8; 5 * 1024 * 1024];
    let up = s3
        .call(
            "PUT",
            &format!("/news-0/big.ts?partNumber=1&uploadId={id}"),
            &part1,
        )
        .await;
    assert_eq!(up.status, 200);
    // Part 2 is cut off mid-body.
    assert!(
        s3.raw(
            "PUT",
            &format!("/news-0/big.ts?partNumber=2&uploadId={id}"),
            1_000_000,
            &[8u8; 1000],
            true
        )
        .await
        .is_none()
    );
    let list = s3.call("GET", "/news-0?list-type=2", b"").await;
    assert_eq!(S3::listed_keys(&list.body), Vec::<String>::new());
    assert!(
        !s3.srv
            .dir
            .path()
            .join("objects/s3.buckets/news-0/big.ts")
            .exists()
    );
    assert_eq!(s3.call("GET", "/news-0/big.ts", b"").await.status, 404);
    // Completing with the part that did not arrive is refused, and still
    // nothing is visible.
    let etag1 = up.header("etag").unwrap().to_owned();
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"00\"</ETag></Part></CompleteMultipartUpload>"
    );
    let bad = s3
        .call(
            "POST",
            &format!("/news-0/big.ts?uploadId={id}"),
            xml.as_bytes(),
        )
        .await;
    assert_eq!((bad.status, code(&bad).as_str()), (400, "InvalidPart"));
    assert_eq!(s3.call("GET", "/news-0/big.ts", b"").await.status, 404);
    // Aborted: gone from the upload list too.
    assert_eq!(
        s3.call("DELETE", &format!("/news-0/big.ts?uploadId={id}"), b"")
            .await
            .status,
        204
    );
    let uploads = s3.call("GET", "/news-0?uploads", b"").await;
    assert!(!String::from_utf8_lossy(&uploads.body).contains(&id));
    // A completed upload is one object, bytes in part order.
    let id = s3.create_upload("/news-0/big.ts").await;
    let e1 = s3
        .call(
            "PUT",
            &format!("/news-0/big.ts?partNumber=1&uploadId={id}"),
            &part1,
        )
        .await;
    let e2 = s3
        .call(
            "PUT",
            &format!("/news-0/big.ts?partNumber=2&uploadId={id}"),
            b"tail",
        )
        .await;
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        e1.header("etag").unwrap(),
        e2.header("etag").unwrap()
    );
    let done = s3
        .call(
            "POST",
            &format!("/news-0/big.ts?uploadId={id}"),
            xml.as_bytes(),
        )
        .await;
    assert_eq!(done.status, 200, "{}", String::from_utf8_lossy(&done.body));
    assert!(
        String::from_utf8_lossy(&done.body).contains("-2&quot;</ETag>")
            || String::from_utf8_lossy(&done.body).contains("-2\"</ETag>")
    );
    let mut want = part1.clone();
    want.extend_from_slice(b"tail");
    assert!(
        std::fs::read(s3.srv.dir.path().join("objects/s3.buckets/news-0/big.ts")).unwrap() == want
    );
}

#[tokio::test]
async fn bad_input_gets_s3_error_codes() {
    let s3 = S3::start().await;
    let host = s3.host();
    // Anonymous.
    let anon = s3
        .srv
        .send_to(s3.srv.s3, "GET", "/news-0?list-type=2", &[], b"")
        .await;
    assert_eq!((anon.status, code(&anon).as_str()), (403, "AccessDenied"));
    // A signature made with the wrong secret.
    let wrong = Signer {
        key: (s3.signer.key.0.clone(), "not-the-secret".into()),
        region: "us-east-1".into(),
    };
    let r = s3
        .signed_by(&wrong, "GET", "/news-0?list-type=2", &[], b"")
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (403, "SignatureDoesNotMatch")
    );
    // An unknown access key.
    let stranger = Signer {
        key: ("AKIDEXAMPLE".into(), "x".into()),
        region: "us-east-1".into(),
    };
    let r = s3
        .signed_by(&stranger, "GET", "/news-0?list-type=2", &[], b"")
        .await;
    assert_eq!((r.status, code(&r).as_str()), (403, "InvalidAccessKeyId"));
    // The wrong region.
    let elsewhere = Signer {
        key: s3.signer.key.clone(),
        region: "eu-west-1".into(),
    };
    let r = s3
        .signed_by(&elsewhere, "GET", "/news-0?list-type=2", &[], b"")
        .await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (400, "AuthorizationHeaderMalformed")
    );
    // A presigned URL that expired an hour ago, and a fresh one.
    assert_eq!(
        s3.call("PUT", "/news-0/p.ts", b"presigned").await.status,
        200
    );
    let old = s3.signer.presign(
        "GET",
        &s3.url("/news-0/p.ts"),
        &host,
        SystemTime::now() - Duration::from_secs(3600),
        60,
    );
    let path = old.split_once(&host).unwrap().1.to_owned();
    let r = s3.srv.send_to(s3.srv.s3, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, code(&r).as_str()),
        (403, "AccessDenied"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let fresh = s3
        .signer
        .presign("GET", &s3.url("/news-0/p.ts"), &host, SystemTime::now(), 60);
    let path = fresh.split_once(&host).unwrap().1.to_owned();
    let r = s3.srv.send_to(s3.srv.s3, "GET", &path, &[], b"").await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, b"presigned".as_slice())
    );
    // Malformed XML.
    let r = s3
        .call("POST", "/news-0?delete", b"<Delete><Object><Key>x</Key>")
        .await;
    assert_eq!((r.status, code(&r).as_str()), (400, "MalformedXML"));
    // An unknown upload id.
    let r = s3
        .call(
            "PUT",
            "/news-0/x.ts?partNumber=1&uploadId=nosuchupload",
            b"abc",
        )
        .await;
    assert_eq!((r.status, code(&r).as_str()), (404, "NoSuchUpload"));
    // A part larger than S3's 5 GiB limit is refused from its header.
    let id = s3.create_upload("/news-0/huge.ts").await;
    let r = s3
        .raw(
            "PUT",
            &format!("/news-0/huge.ts?partNumber=1&uploadId={id}"),
            6 * 1024 * 1024 * 1024,
            b"",
            false,
        )
        .await
        .unwrap();
    assert_eq!((r.status, code(&r).as_str()), (400, "EntityTooLarge"));
    // Keys that cannot name a file.
    for key in ["a/../b.ts", "a/%01b.ts", "a//b.ts"] {
        let r = s3.call("PUT", &format!("/news-0/{key}"), b"x").await;
        assert_eq!(
            (r.status, code(&r).as_str()),
            (400, "InvalidArgument"),
            "{key}"
        );
    }
    // Another pipeline's bucket.
    let r = s3.call("PUT", "/news-1/x.ts", b"x").await;
    assert_eq!((r.status, code(&r).as_str()), (403, "AccessDenied"));
    assert!(
        !s3.srv
            .dir
            .path()
            .join("objects/s3.buckets/news-1/x.ts")
            .exists()
    );
    // A Content-MD5 that does not match the body.
    let r = s3
        .signed_by(
            &s3.signer,
            "PUT",
            "/news-0/md5.ts",
            &[("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
            b"not empty",
        )
        .await;
    assert_eq!((r.status, code(&r).as_str()), (400, "BadDigest"));
    assert!(
        !s3.srv
            .dir
            .path()
            .join("objects/s3.buckets/news-0/md5.ts")
            .exists()
    );
    // An x-amz-checksum-crc32 that does not match the body (the AWS CLI
    // sends one with every PutObject; see testdata/captures).
    let r = s3
        .signed_by(
            &s3.signer,
            "PUT",
            "/news-0/crc.ts",
            &[("x-amz-checksum-crc32", "AAAAAA==")],
            b"hello archive\n",
        )
        .await;
    assert_eq!((r.status, code(&r).as_str()), (400, "BadDigest"));
    assert!(
        !s3.srv
            .dir
            .path()
            .join("objects/s3.buckets/news-0/crc.ts")
            .exists()
    );
    let r = s3
        .signed_by(
            &s3.signer,
            "PUT",
            "/news-0/crc.ts",
            &[("x-amz-checksum-crc32", "BvGDdQ==")],
            b"hello archive\n",
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-amz-checksum-crc32"), Some("BvGDdQ=="));
}

/// Archive files of indexes 0, 1 and 3 (real ffmpeg segments) into both
/// buckets of the pair `id` (the only pair), each with its own key; index
/// 2 arrives in neither.
async fn upload_all_but_index_2(s3: &S3, id: &str) {
    let seg = |i: usize| {
        std::fs::read(format!(
            "{}/../../testdata/ts/ffmpeg_segment_2s.{i:06}.ts",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let k1 = s3
        .srv
        .state
        .db
        .list_archives()
        .unwrap()
        .remove(0)
        .keys(Pipeline::P1)
        .clone();
    let backup = Signer {
        key: (k1.access_key_id, k1.secret_access_key),
        region: "us-east-1".into(),
    };
    for (index, fixture) in [(0, 0), (1, 1), (3, 2)] {
        let path = format!("/{id}-0/live/a.{index:06}.ts");
        assert_eq!(s3.call("PUT", &path, &seg(fixture)).await.status, 200);
        let path = format!("/{id}-1/live/a.{index:06}.ts");
        let r = s3
            .signed_by(&backup, "PUT", &path, &[], &seg(fixture))
            .await;
        assert_eq!(r.status, 200);
    }
}

#[tokio::test]
async fn the_archive_watch_raises_an_index_that_neither_bucket_holds() {
    let s3 = S3::start().await;
    upload_all_but_index_2(&s3, "news").await;
    let id = ArchiveId::parse("news").unwrap();
    let state = &s3.srv.state;
    let mut bus = state.events.subscribe();
    tandem_server::archive_watch::check_pair(state, &id, Some(Duration::from_secs(2))).await;
    tandem_server::archive_watch::check_pair(state, &id, Some(Duration::from_secs(2))).await;
    let events = state.archive_watches.events("news");
    let raised: Vec<(u64, String, String)> = events
        .iter()
        .map(|e| {
            let v = serde_json::to_value(e).unwrap();
            (
                v["index"].as_u64().unwrap(),
                v["primary"].as_str().unwrap().to_owned(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        raised,
        [(2, "missing".to_owned(), "index_uncovered".to_owned())]
    );
    // The same event went to live listeners, and the status grid shows
    // each bucket's verdict per index.
    let live = bus.try_recv().unwrap();
    assert_eq!(
        serde_json::to_value(&*live).unwrap()["archive"],
        serde_json::json!("news")
    );
    assert_eq!(live.kind(), "index_uncovered");
    let status = tandem_server::api::status::status(state).unwrap();
    let grid: Vec<(u64, &str, &str)> = status.archives[0]
        .indexes
        .iter()
        .map(|i| (i.index, i.primary.as_str(), i.backup.as_str()))
        .collect();
    assert_eq!(
        grid,
        [
            (0, "whole", "whole"),
            (1, "whole", "whole"),
            (2, "missing", "missing"),
            (3, "whole", "whole")
        ]
    );
    assert_eq!(status.archives[0].uncovered, 1);
    let token = state.admin_token.clone();
    let api = s3
        .srv
        .send(
            "GET",
            "/api/v1/archives/news/events",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await;
    assert_eq!(api.status, 200);
    assert!(String::from_utf8_lossy(&api.body).contains("\"index\":2"));
    let metrics = s3.srv.send("GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("tandem_archive_indexes_uncovered_total{archive=\"news\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn virtual_host_style_names_the_bucket_in_the_host() {
    let s3 = S3::start().await;
    assert_eq!(
        s3.call("PUT", "/news-0/live/v.ts", b"virtual").await.status,
        200
    );
    let host = format!("news-0.localhost:{}", s3.srv.s3.port());
    let url = format!("http://{host}/live/v.ts");
    let mut head = format!(
        "GET /live/v.ts HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in s3.signer.headers("GET", &url, &host) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(s3.srv.s3).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let r = read_response(&mut s, false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"virtual".as_slice()));
}

#[tokio::test]
async fn the_archive_indexes_gauge_counts_the_indexes_the_watch_saw() {
    // Its own archive id: the gauge is process-wide.
    let s3 = S3::start_for("gauged").await;
    let seg = |i: usize| {
        std::fs::read(format!(
            "{}/../../testdata/ts/ffmpeg_segment_2s.{i:06}.ts",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let id = ArchiveId::parse("gauged").unwrap();
    let state = &s3.srv.state;
    let series = r#"tandem_archive_indexes{archive="gauged"}"#;
    // Indexes 0 and 1 in pipeline 0's bucket.
    for index in 0..2 {
        let path = format!("/gauged-0/live/a.{index:06}.ts");
        assert_eq!(s3.call("PUT", &path, &seg(index)).await.status, 200);
    }
    tandem_server::archive_watch::check_pair(state, &id, Some(Duration::from_secs(2))).await;
    let text = support::scrape(&s3.srv).await;
    assert_eq!(support::metric_value(&text, series), Some(2.0), "{text}");
    // Index 2 arrives; index 3 is a name the watch does not recognise.
    assert_eq!(
        s3.call("PUT", "/gauged-0/live/a.000002.ts", &seg(2))
            .await
            .status,
        200
    );
    assert_eq!(
        s3.call("PUT", "/gauged-0/live/notes.txt", b"not an archive file")
            .await
            .status,
        200
    );
    tandem_server::archive_watch::check_pair(state, &id, Some(Duration::from_secs(2))).await;
    let text = support::scrape(&s3.srv).await;
    assert_eq!(support::metric_value(&text, series), Some(3.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_watch_runs_at_its_set_interval_and_grace_and_its_events_reach_webhooks() {
    let rx = support::receiver::Receiver::start();
    let url = rx.url("/archive-alerts");
    // Every 5 s (default 10), an index may be 7 s late (default 30); the
    // pair's files roll over every 2 s.
    let s3 = S3::start_clocked("watched", 2, |c| {
        c.archive_check_every = Duration::from_secs(5);
        c.archive_grace = Duration::from_secs(7);
        c.webhooks = vec![tandem_server::webhooks::WebhookSettings {
            name: Some("archive-alerts".into()),
            ..tandem_server::webhooks::WebhookSettings::url(url)
        }];
    })
    .await;
    let clock = s3.srv.clock.clone().unwrap();
    upload_all_but_index_2(&s3, "watched").await;
    let state = s3.srv.state.clone();
    let raised = move || -> Vec<u64> {
        state
            .archive_watches
            .events("watched")
            .iter()
            .map(|e| e.uncovered.index)
            .collect()
    };
    let until = |want: Vec<u64>| {
        let raised = raised.clone();
        async move {
            for _ in 0..300 {
                if raised() == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("raised {:?}, expected {want:?}", raised());
        }
    };
    // The pass 5 s after the first: index 2 is overdue (3 exists); index 4
    // is not (5 s since the last file is within 2 s + 7 s).
    clock.advance(Duration::from_secs(5));
    until(vec![2]).await;
    // 15 s: past 2 s + 7 s since the last file; index 4 is overdue too.
    clock.advance(Duration::from_secs(10));
    until(vec![2, 4]).await;
    for _ in 0..500 {
        if rx.received().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: Vec<serde_json::Value> = rx.received().iter().map(|r| r.json()).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    for (e, index) in got.iter().zip([2, 4]) {
        assert_eq!(
            (
                &e["archive"],
                &e["kind"],
                &e["index"],
                &e["primary"],
                &e["backup"]
            ),
            (
                &serde_json::json!("watched"),
                &serde_json::json!("index_uncovered"),
                &serde_json::json!(index),
                &serde_json::json!("missing"),
                &serde_json::json!("missing")
            ),
            "{got:?}"
        );
    }
}
