//! `x-amz-upload-availability: STREAMING`: a GET during the upload gets
//! the bytes so far, then the rest as they arrive; a broken upload ends
//! its readers with an error and leaves nothing. STANDARD stays
//! complete-only.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use support::{KEY0, Sender, Server, Signer, send, start_request};
use tandem_mediastore::Settings;

const DEADLINE: Duration = Duration::from_secs(10);

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

struct T {
    srv: Server,
    s: Signer,
}

impl T {
    async fn start() -> Self {
        Self {
            srv: Server::start(Settings::default()).await,
            s: Signer::new(KEY0),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.srv.addr)
    }

    /// Starts a PUT of `len` bytes and sends its first `first` bytes.
    async fn start_put(
        &self,
        path: &str,
        availability: &str,
        data: &[u8],
        first: usize,
    ) -> (
        Sender,
        tokio::task::JoinHandle<Result<http::Response<Incoming>, hyper::Error>>,
    ) {
        let url = self.url(path);
        let len = data.len().to_string();
        let h = self.s.headers(
            "PUT",
            &url,
            &[
                ("content-length", &len),
                ("content-type", "video/MP2T"),
                ("x-amz-upload-availability", availability),
            ],
            None,
        );
        let (tx, resp) = start_request(self.srv.addr, "PUT", &url, &h).await;
        tx.send(Ok(Frame::data(Bytes::copy_from_slice(&data[..first]))))
            .await
            .unwrap();
        (tx, resp)
    }

    async fn get(&self, path: &str) -> support::Resp {
        let url = self.url(path);
        let h = self.s.headers("GET", &url, &[], Some(b""));
        send(self.srv.addr, "GET", &url, &h, b"").await
    }

    /// A GET whose body is read by the caller.
    async fn get_streaming(&self, path: &str) -> http::Response<Incoming> {
        let url = self.url(path);
        let h = self.s.headers("GET", &url, &[], Some(b""));
        let (tx, resp) = start_request(self.srv.addr, "GET", &url, &h).await;
        drop(tx);
        tokio::time::timeout(DEADLINE, resp)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    /// GETs until the upload at `path` is readable (the server has taken
    /// the PUT's head), within the deadline.
    async fn get_when_in_flight(&self, path: &str) -> http::Response<Incoming> {
        let until = Instant::now() + DEADLINE;
        loop {
            let r = self.get_streaming(path).await;
            if r.status() == 200 {
                return r;
            }
            assert_eq!(r.status(), 404);
            assert!(Instant::now() < until, "the upload never became readable");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn next_data(b: &mut Incoming) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        match tokio::time::timeout(DEADLINE, b.frame()).await.unwrap() {
            None => return None,
            Some(Err(e)) => return Some(Err(e)),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    return Some(Ok(d));
                }
            }
        }
    }
}

#[tokio::test]
async fn a_streaming_upload_is_readable_while_it_arrives() {
    let t = T::start().await;
    let data = body(1_000_000);
    let half = data.len() / 2;
    let started = Instant::now();
    let (tx, put) = t
        .start_put("/news-0/live/seg1.ts", "STREAMING", &data, half)
        .await;
    let resp = t.get_when_in_flight("/news-0/live/seg1.ts").await;
    assert_eq!(resp.headers()["content-type"], "video/MP2T");
    let mut b = resp.into_body();
    let first = next_data(&mut b).await.unwrap().unwrap();
    let ttfb = started.elapsed();
    eprintln!("time to first byte of a STREAMING upload: {ttfb:?}");
    // The first bytes arrived before the upload ended: the rest is unsent.
    assert!(!first.is_empty());
    assert!(!put.is_finished());
    let mut got = first.to_vec();
    // Read what there is of the first half, then send the rest.
    while got.len() < half {
        got.extend_from_slice(&next_data(&mut b).await.unwrap().unwrap());
    }
    assert_eq!(got, &data[..half]);
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&data[half..]))))
        .await
        .unwrap();
    drop(tx);
    while let Some(chunk) = next_data(&mut b).await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the streamed body differs from the upload");
    let put = tokio::time::timeout(DEADLINE, put)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(put.status(), 200);
    // Afterwards it is a normal, complete object.
    let r = t.get("/news-0/live/seg1.ts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), data.len().to_string());
    assert!(r.body == data);
}

#[tokio::test]
async fn a_standard_upload_is_invisible_until_complete() {
    let t = T::start().await;
    let v1 = body(1000);
    let v2: Vec<u8> = body(300_000).iter().map(|b| b ^ 0xff).collect();
    // A new key: 404 while its upload is in progress.
    let (tx, put) = t
        .start_put("/news-0/new.ts", "STANDARD", &v2, 150_000)
        .await;
    t.get("/news-0/new.ts")
        .await
        .assert_error(404, "ObjectNotFoundException");
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&v2[150_000..]))))
        .await
        .unwrap();
    drop(tx);
    let put = tokio::time::timeout(DEADLINE, put)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(put.status(), 200);
    assert!(t.get("/news-0/new.ts").await.body == v2);

    // An existing key: the previous version until the new one is whole.
    let (tx, put) = t
        .start_put("/news-0/old.ts", "STANDARD", &v1, v1.len())
        .await;
    drop(tx);
    tokio::time::timeout(DEADLINE, put)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (tx, put) = t
        .start_put("/news-0/old.ts", "STANDARD", &v2, 150_000)
        .await;
    assert!(t.get("/news-0/old.ts").await.body == v1);
    tx.send(Ok(Frame::data(Bytes::copy_from_slice(&v2[150_000..]))))
        .await
        .unwrap();
    drop(tx);
    tokio::time::timeout(DEADLINE, put)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(t.get("/news-0/old.ts").await.body == v2);
}

#[tokio::test]
async fn a_broken_streaming_upload_fails_its_readers_and_leaves_nothing() {
    let t = T::start().await;
    let data = body(400_000);
    let (tx, put) = t
        .start_put("/news-0/live/cut.ts", "STREAMING", &data, 100_000)
        .await;
    let mut b = t
        .get_when_in_flight("/news-0/live/cut.ts")
        .await
        .into_body();
    let mut got = Vec::new();
    while got.len() < 100_000 {
        got.extend_from_slice(&next_data(&mut b).await.unwrap().unwrap());
    }
    assert_eq!(got, &data[..100_000]);
    // The encoder breaks off mid-body.
    tx.send(Err(std::io::Error::other("encoder went away")))
        .await
        .unwrap();
    drop(tx);
    let _ = tokio::time::timeout(DEADLINE, put).await.unwrap();
    // The reader ends with an error, not with a clean end of body.
    let mut ended_with_error = false;
    while let Some(r) = next_data(&mut b).await {
        if r.is_err() {
            ended_with_error = true;
            break;
        }
    }
    assert!(
        ended_with_error,
        "a reader of a broken upload saw a clean end"
    );
    t.get("/news-0/live/cut.ts")
        .await
        .assert_error(404, "ObjectNotFoundException");
    let url = t.url("/news-0?Path=live");
    let h = t.s.headers("GET", &url, &[], Some(b""));
    let listed = send(t.srv.addr, "GET", &url, &h, b"").await.json();
    assert_eq!(listed["Items"], serde_json::json!([]), "{listed}");
}
