//! Bad input on the wire: each refusal's exact status, `__type` and
//! `x-amzn-ErrorType`, and that nothing refused becomes visible.
//! Requests are signed with `aws-sigv4`, independent of the verifier.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use support::{KEY0, KEY1, Server, Signer, send, start_request};
use tandem_mediastore::Settings;

struct T {
    srv: Server,
    s0: Signer,
}

impl T {
    async fn start(settings: Settings) -> Self {
        Self {
            srv: Server::start(settings).await,
            s0: Signer::new(KEY0),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.srv.addr)
    }

    async fn put(
        &self,
        signer: &Signer,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> support::Resp {
        let url = self.url(path);
        let len = body.len().to_string();
        let mut ex = extra.to_vec();
        ex.push(("content-length", &len));
        let h = signer.headers("PUT", &url, &ex, None);
        send(self.srv.addr, "PUT", &url, &h, body).await
    }

    async fn req(
        &self,
        signer: &Signer,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
    ) -> support::Resp {
        let url = self.url(path);
        let h = signer.headers(method, &url, extra, Some(b""));
        send(self.srv.addr, method, &url, &h, b"").await
    }
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_requests_are_refused_with_403() {
    let t = T::start(Settings::default()).await;
    let url = t.url("/news-0/live/a.ts");
    // No signature at all.
    let r = send(
        t.srv.addr,
        "PUT",
        &url,
        &[("content-length".into(), "3".into())],
        b"abc",
    )
    .await;
    r.assert_error(403, "MissingAuthenticationTokenException");
    let r = send(t.srv.addr, "GET", &t.url("/news-0"), &[], b"").await;
    r.assert_error(403, "MissingAuthenticationTokenException");
    // The right key id with the wrong secret.
    let wrong = Signer::new((KEY0.0, "not-the-secret"));
    t.put(&wrong, "/news-0/live/a.ts", &[], b"abc")
        .await
        .assert_error(403, "InvalidSignatureException");
    // A key id nobody issued.
    let stranger = Signer::new(("AKIDSTRANGER", "x"));
    t.put(&stranger, "/news-0/live/a.ts", &[], b"abc")
        .await
        .assert_error(403, "UnrecognizedClientException");
    // Signed for another region, or another service.
    let mut eu = Signer::new(KEY0);
    eu.region = "eu-west-1".into();
    t.req(&eu, "GET", "/news-0", &[])
        .await
        .assert_error(403, "InvalidSignatureException");
    // A signature over other headers than those sent: tampered after signing.
    let h = t.s0.headers(
        "PUT",
        &url,
        &[("content-type", "video/MP2T"), ("content-length", "3")],
        None,
    );
    let h: Vec<(String, String)> = h
        .into_iter()
        .map(|(k, v)| {
            if k == "content-type" {
                (k, "text/html".into())
            } else {
                (k, v)
            }
        })
        .collect();
    send(t.srv.addr, "PUT", &url, &h, b"abc")
        .await
        .assert_error(403, "InvalidSignatureException");
    // The body is signed (no x-amz-content-sha256) and was changed.
    let h =
        t.s0.headers("PUT", &url, &[("content-length", "3")], Some(b"abc"));
    send(t.srv.addr, "PUT", &url, &h, b"abd")
        .await
        .assert_error(403, "InvalidSignatureException");
    // A hash in x-amz-content-sha256 that the body does not match.
    let claimed = "0".repeat(64);
    let h = t.s0.headers(
        "PUT",
        &url,
        &[("content-length", "3"), ("x-amz-content-sha256", &claimed)],
        Some(b"abc"),
    );
    send(t.srv.addr, "PUT", &url, &h, b"abc")
        .await
        .assert_error(400, "XAmzContentSHA256Mismatch");
    // Nothing of the above was stored.
    t.req(&t.s0, "GET", "/news-0/live/a.ts", &[])
        .await
        .assert_error(404, "ObjectNotFoundException");
    // The body signed properly (no x-amz-content-sha256) is accepted.
    let h =
        t.s0.headers("PUT", &url, &[("content-length", "3")], Some(b"abc"));
    let r = send(t.srv.addr, "PUT", &url, &h, b"abc").await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = t.req(&t.s0, "GET", "/news-0/live/a.ts", &[]).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"abc"[..]));
}

#[tokio::test]
async fn a_pipeline_key_writes_only_its_own_container() {
    let t = T::start(Settings::default()).await;
    let s1 = Signer::new(KEY1);
    t.put(&s1, "/news-0/a.ts", &[], b"x")
        .await
        .assert_error(403, "AccessDeniedException");
    t.req(&s1, "DELETE", "/news-0/a.ts", &[])
        .await
        .assert_error(403, "AccessDeniedException");
    assert_eq!(t.put(&s1, "/news-1/a.ts", &[], b"x").await.status, 200);
    // It reads its partner's container (verification), not other pairs'.
    t.srv
        .ms
        .add_pair("sport", [("TDMSPORT0", "s0"), ("TDMSPORT1", "s1")]);
    assert_eq!(t.req(&s1, "GET", "/news-0", &[]).await.status, 200);
    t.req(&s1, "GET", "/sport-0", &[])
        .await
        .assert_error(403, "AccessDeniedException");
    // The admin key reaches every container; unknown ones are 404.
    let admin = Signer::new(("tandem-admin", support::ADMIN_SECRET));
    t.req(&admin, "GET", "/weather-0", &[])
        .await
        .assert_error(404, "ContainerNotFoundException");
    t.req(&admin, "GET", "/weather-0/a.ts", &[])
        .await
        .assert_error(404, "ContainerNotFoundException");
    assert_eq!(t.req(&admin, "GET", "/news-1/a.ts", &[]).await.body, "x");
}

#[tokio::test]
async fn bad_names_ranges_and_tokens_are_400_404_416() {
    let t = T::start(Settings::default()).await;
    for bad in [
        "/news-0/a%20b.ts",
        "/news-0/caf%C3%A9.ts",
        "/news-0/live//a.ts",
        "/news-0/live/../a.ts",
        "/news-0/a%2Fb.ts",
        "/news-0/a%ZZ.ts",
        "/news-0/1/2/3/4/5/6/7/8/9/10/11/a.ts",
        "/news-0/live/",
    ] {
        let r = t.put(&t.s0, bad, &[], b"x").await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert_eq!(r.header("x-amzn-errortype"), "ValidationException", "{bad}");
    }
    let ok = t
        .put(
            &t.s0,
            "/news-0/1/2/3/4/5/6/7/8/9/10/a=b:c.ts",
            &[],
            b"0123456789",
        )
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let bad_class = t
        .put(
            &t.s0,
            "/news-0/a.ts",
            &[("x-amz-storage-class", "GLACIER")],
            b"x",
        )
        .await;
    bad_class.assert_error(400, "ValidationException");
    let bad_avail = t
        .put(
            &t.s0,
            "/news-0/a.ts",
            &[("x-amz-upload-availability", "LATER")],
            b"x",
        )
        .await;
    bad_avail.assert_error(400, "ValidationException");

    let p = "/news-0/1/2/3/4/5/6/7/8/9/10/a=b:c.ts";
    let r = t.req(&t.s0, "GET", p, &[("range", "bytes=2-4")]).await;
    assert_eq!((r.status, &r.body[..]), (206, &b"234"[..]));
    assert_eq!(r.header("content-range"), "bytes 2-4/10");
    assert_eq!(r.header("content-length"), "3");
    t.req(&t.s0, "GET", p, &[("range", "bytes=10-")])
        .await
        .assert_error(416, "RequestedRangeNotSatisfiableException");
    t.req(&t.s0, "GET", p, &[("range", "bytes=x-")])
        .await
        .assert_error(400, "ValidationException");

    for missing in ["GET", "DELETE"] {
        t.req(&t.s0, missing, "/news-0/nothing.ts", &[])
            .await
            .assert_error(404, "ObjectNotFoundException");
    }
    // HEAD: no body, but the status and the error type header.
    let r = t.req(&t.s0, "HEAD", "/news-0/nothing.ts", &[]).await;
    assert_eq!(
        (r.status, r.header("x-amzn-errortype")),
        (404, "ObjectNotFoundException")
    );
    // A folder is not an object.
    t.req(&t.s0, "GET", "/news-0/1", &[])
        .await
        .assert_error(404, "ObjectNotFoundException");

    for q in [
        "NextToken=zz",
        "NextToken=",
        "NextToken=746f6b656e",
        "NextToken=%FF%FE",
        "MaxResults=0",
        "MaxResults=1001",
        "MaxResults=-1",
        "Path=a%20b",
    ] {
        let r = t.req(&t.s0, "GET", &format!("/news-0?{q}"), &[]).await;
        r.assert_error(400, "ValidationException");
    }
    t.req(&t.s0, "POST", "/news-0/a.ts", &[])
        .await
        .assert_error(405, "MethodNotAllowedException");
}

#[tokio::test]
async fn too_large_or_too_slow_uploads_are_refused_and_leave_nothing() {
    let t = T::start(Settings {
        max_standard: 1000,
        max_streaming: 500,
        upload_timeout: Duration::from_millis(700),
        ..Settings::default()
    })
    .await;
    let big = vec![7u8; 1001];
    t.put(&t.s0, "/news-0/big.ts", &[], &big)
        .await
        .assert_error(413, "ValidationException");
    t.put(
        &t.s0,
        "/news-0/big.ts",
        &[("x-amz-upload-availability", "STREAMING")],
        &big[..501],
    )
    .await
    .assert_error(413, "ValidationException");
    assert_eq!(
        t.put(&t.s0, "/news-0/ok.ts", &[], &big[..1000])
            .await
            .status,
        200
    );

    // Chunked (no Content-Length): cut off once the limit is passed.
    let url = t.url("/news-0/chunked.ts");
    let h = t.s0.headers(
        "PUT",
        &url,
        &[("x-amz-upload-availability", "STREAMING")],
        None,
    );
    let (tx, resp) = start_request(t.srv.addr, "PUT", &url, &h).await;
    for _ in 0..6 {
        if tx
            .send(Ok(Frame::data(Bytes::from(vec![1u8; 100]))))
            .await
            .is_err()
        {
            break;
        }
    }
    let r = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 413);
    drop(tx);

    // Half a body, then silence: cancelled at the upload deadline.
    let url = t.url("/news-0/slow.ts");
    let h =
        t.s0.headers("PUT", &url, &[("content-length", "100")], None);
    let (tx, resp) = start_request(t.srv.addr, "PUT", &url, &h).await;
    tx.send(Ok(Frame::data(Bytes::from(vec![1u8; 50]))))
        .await
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status(), 408);
    assert_eq!(r.headers()["x-amzn-errortype"], "RequestTimeoutException");
    drop(tx);

    for gone in ["/news-0/big.ts", "/news-0/chunked.ts", "/news-0/slow.ts"] {
        t.req(&t.s0, "GET", gone, &[])
            .await
            .assert_error(404, "ObjectNotFoundException");
    }
    let listed = t.req(&t.s0, "GET", "/news-0", &[]).await.json();
    assert_eq!(listed["Items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["Items"][0]["Name"], "ok.ts");
}
