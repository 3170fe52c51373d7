//! What the campaign sends between two kills: two HLS pipelines of one
//! channel (pipeline 0 by HTTP PUT, pipeline 1 by WebDAV PUT then MOVE,
//! both with Digest), S3 PutObject and multipart uploads to both buckets
//! of an archive pair, and control-API changes (channels and archive pairs
//! created, patched, deleted). Every operation is entered in the ledger
//! before it is sent and settled when its answer arrives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::ledger::{Body, Definitions, Ledger};
use super::rng::Rng;
use crate::client::{BodyMode, Conn, Resp};
use crate::digest::DigestAuth;
use crate::sign::{EMPTY_SHA256, Payload, Signer};

/// The channel the HLS pipelines feed.
pub const CHANNEL: &str = "chaos-live";
/// The archive pair the S3 uploads go to.
pub const ARCHIVE: &str = "chaos-arc";
/// The rendition both pipelines publish.
pub const PLAYLIST: &str = "live/index.m3u8";
/// Segments an input playlist names.
const WINDOW: usize = 6;
/// Archive file names cycle through this many indexes, so the disk a long
/// campaign fills stays bounded.
const ARCHIVE_FILES: u64 = 6;
/// The smallest S3 part but the last.
const MIN_PART: usize = 5 * 1024 * 1024;
/// Input retention of the campaign's channels: nothing the campaign wrote
/// may be removed by retention while the campaign checks it.
pub const RETENTION_SECS: u64 = 30 * 86_400;

/// Everything that outlives one server process.
pub struct World {
    pub ledger: Ledger,
    pub defs: Definitions,
    /// Username and password of each input of [`CHANNEL`].
    pub inputs: [(String, String); 2],
    /// Access key and secret of each bucket of [`ARCHIVE`].
    pub keys: [(String, String); 2],
    pub region: String,
    /// Each pipeline's next media sequence number, and the acknowledged
    /// segments its playlist names.
    pub next_msn: [u64; 2],
    pub window: [Vec<u64>; 2],
    pub archive_round: [u64; 2],
    /// The highest media sequence an output playlist showed.
    pub output_msn: Option<u64>,
    /// The control-API churn: its counter and where it stands.
    pub churn_n: u64,
    pub churn_step: u8,
    pub churn_archive_step: u8,
    /// Canonical definitions of the churned channel and pair, when known.
    pub churn_channel: Option<String>,
}

pub type Shared = Arc<Mutex<World>>;

/// Runs `f` on the world (never across an await).
pub fn with<T>(w: &Shared, f: impl FnOnce(&mut World) -> T) -> T {
    let mut g = match w.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    f(&mut g)
}

/// A body shaped like MPEG-TS (188-byte packets, sync byte first) with
/// seeded content, so no two uploads carry the same bytes.
pub fn ts_body(rng: &mut Rng, min_packets: usize, more: u64) -> Vec<u8> {
    let packets = min_packets + rng.below(more) as usize;
    let mut v = Vec::with_capacity(packets * 188);
    for _ in 0..packets {
        v.push(0x47);
        for _ in 0..187 / 8 {
            v.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        v.extend_from_slice(&rng.next_u64().to_le_bytes()[..3]);
    }
    v
}

/// The store key of an object of an input of [`CHANNEL`].
pub fn input_key(pipeline: usize, path: &str) -> String {
    format!("{CHANNEL}/{pipeline}/{path}")
}

/// The store key of an object in a bucket.
pub fn bucket_key(bucket: &str, key: &str) -> String {
    format!("s3.buckets/{bucket}/{key}")
}

fn media_playlist(window: &[u64]) -> String {
    let first = window.first().copied().unwrap_or(0);
    let mut t = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    for k in window {
        t.push_str(&format!("#EXTINF:2.000,\nseg{k}.ts\n"));
    }
    t
}

fn ok(r: &anyhow::Result<Resp>) -> bool {
    r.as_ref().is_ok_and(|r| r.status / 100 == 2)
}

/// One HLS pipeline: segment, then the playlist that names it, at a
/// seeded pace, until the server dies. Pipeline 0 PUTs each object in
/// place; pipeline 1 PUTs it under a `.part` name and MOVEs it in.
pub async fn pipeline(w: Shared, addr: SocketAddr, p: usize, mut rng: Rng) -> anyhow::Result<()> {
    let (user, pass) = with(&w, |w| w.inputs[p].clone());
    let mut auth = DigestAuth::new(&user, &pass);
    let mut conn = Conn::new(addr);
    loop {
        let k = with(&w, |w| {
            let k = w.next_msn[p];
            w.next_msn[p] += 1;
            k
        });
        let seg = ts_body(&mut rng, 8, 120);
        if upload(
            &w,
            &mut conn,
            &mut auth,
            p,
            &format!("live/seg{k}.ts"),
            &seg,
        )
        .await?
        {
            with(&w, |w| {
                w.window[p].push(k);
                let n = w.window[p].len();
                if n > WINDOW {
                    w.window[p].drain(..n - WINDOW);
                }
            });
        }
        let text = with(&w, |w| media_playlist(&w.window[p]));
        upload(&w, &mut conn, &mut auth, p, PLAYLIST, text.as_bytes()).await?;
        tokio::time::sleep(Duration::from_millis(5 + rng.below(30))).await;
    }
}

/// Uploads one object of pipeline `p`; whether it was answered 2xx.
/// Errors end the pipeline (the server is gone).
async fn upload(
    w: &Shared,
    conn: &mut Conn,
    auth: &mut DigestAuth,
    p: usize,
    path: &str,
    body: &[u8],
) -> anyhow::Result<bool> {
    let key = input_key(p, path);
    let url = format!("/in/{CHANNEL}/{p}/{path}");
    if p == 0 {
        let id = with(w, |w| w.ledger.begin(vec![(key, Some(Body::of(body)))]));
        let r = auth.request(conn, "PUT", &url, &[], body).await;
        let acked = ok(&r);
        with(w, |w| w.ledger.finish(id, acked));
        r?;
        return Ok(acked);
    }
    let part = format!("{path}.part");
    let id = with(w, |w| {
        w.ledger
            .begin(vec![(input_key(p, &part), Some(Body::of(body)))])
    });
    let r = auth
        .request(conn, "PUT", &format!("{url}.part"), &[], body)
        .await;
    let acked = ok(&r);
    with(w, |w| w.ledger.finish(id, acked));
    r?;
    if !acked {
        return Ok(false);
    }
    let id = with(w, |w| {
        w.ledger.begin(vec![
            (input_key(p, &part), None),
            (key, Some(Body::of(body))),
        ])
    });
    let dest = format!("http://{}{url}", conn.host());
    let r = auth
        .request(
            conn,
            "MOVE",
            &format!("{url}.part"),
            &[("Destination", &dest), ("Overwrite", "T")],
            b"",
        )
        .await;
    let acked = ok(&r);
    with(w, |w| w.ledger.finish(id, acked));
    r?;
    Ok(acked)
}

/// A SigV4-signed S3 request (path style).
pub async fn s3_request(
    conn: &mut Conn,
    signer: &Signer,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Resp> {
    let host = conn.host();
    let payload = if body.is_empty() && matches!(method, "GET" | "HEAD" | "DELETE") {
        Payload::Header(EMPTY_SHA256.to_owned())
    } else {
        Payload::Unsigned
    };
    let auth = signer.sign(
        method,
        &host,
        path,
        &[("host", host.as_str())],
        &payload,
        SystemTime::now(),
    )?;
    let headers: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    conn.request_with(method, path, &headers, body, BodyMode::Keep)
        .await
}

fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body[start..].find(&format!("</{tag}>"))?;
    Some(&body[start..start + len])
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Archive uploads to bucket `b`: PutObject, or a multipart upload of one
/// part or of a 5 MiB part and a small one, over a cycle of file names.
pub async fn archive(w: Shared, addr: SocketAddr, b: usize, mut rng: Rng) -> anyhow::Result<()> {
    let (signer, bucket) = with(&w, |w| {
        let (ak, sk) = &w.keys[b];
        (
            Signer::for_service(ak, sk, &w.region, "s3"),
            format!("{ARCHIVE}-{b}"),
        )
    });
    let mut conn = Conn::new(addr);
    loop {
        let round = with(&w, |w| {
            w.archive_round[b] += 1;
            w.archive_round[b]
        });
        let name = format!("archive/file.{:06}.ts", round % ARCHIVE_FILES);
        let path = format!("/{bucket}/{name}");
        let key = bucket_key(&bucket, &name);
        let roll = rng.below(100);
        if roll < 60 {
            let body = ts_body(&mut rng, 50, 400);
            let id = with(&w, |w| w.ledger.begin(vec![(key, Some(Body::of(&body)))]));
            let r = s3_request(&mut conn, &signer, "PUT", &path, &body).await;
            let acked = ok(&r);
            with(&w, |w| w.ledger.finish(id, acked));
            r?;
        } else {
            let parts: Vec<Vec<u8>> = if roll < 66 {
                vec![
                    ts_body(&mut rng, MIN_PART / 188 + 1, 0),
                    ts_body(&mut rng, 10, 100),
                ]
            } else {
                vec![ts_body(&mut rng, 50, 400)]
            };
            multipart(&w, &mut conn, &signer, &path, &key, &parts).await?;
        }
        tokio::time::sleep(Duration::from_millis(10 + rng.below(40))).await;
    }
}

async fn multipart(
    w: &Shared,
    conn: &mut Conn,
    signer: &Signer,
    path: &str,
    key: &str,
    parts: &[Vec<u8>],
) -> anyhow::Result<()> {
    let r = s3_request(conn, signer, "POST", &format!("{path}?uploads"), b"").await?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let Some(upload) = xml_field(&text, "UploadId").filter(|_| r.status == 200) else {
        bail!("CreateMultipartUpload {path}: HTTP {} {text}", r.status);
    };
    let upload = query_escape(upload);
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let r = s3_request(
            conn,
            signer,
            "PUT",
            &format!("{path}?partNumber={n}&uploadId={upload}"),
            part,
        )
        .await?;
        let etag = r
            .head
            .field("etag")
            .filter(|_| r.status == 200)
            .with_context(|| format!("UploadPart {n} of {path}: HTTP {}", r.status))?
            .to_owned();
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let whole: Vec<u8> = parts.concat();
    let id = with(w, |w| {
        w.ledger
            .begin(vec![(key.to_owned(), Some(Body::of(&whole)))])
    });
    let r = s3_request(
        conn,
        signer,
        "POST",
        &format!("{path}?uploadId={upload}"),
        xml.as_bytes(),
    )
    .await;
    // S3 may answer 200 and put an error in the body.
    let acked = r
        .as_ref()
        .is_ok_and(|r| r.status == 200 && !r.body.windows(7).any(|x| x == b"<Error>"));
    with(w, |w| w.ledger.finish(id, acked));
    r?;
    Ok(())
}

/// The canonical form of a channel definition: both inputs' credentials
/// and the retention setting.
pub fn channel_canon(v: &serde_json::Value) -> Option<String> {
    let cred = |p: usize| -> Option<String> {
        let i = v.get("inputs")?.get(p)?;
        Some(format!(
            "{}:{}",
            i.get("username")?.as_str()?,
            i.get("password")?.as_str()?
        ))
    };
    let retention = v
        .get("retention")
        .and_then(|r| r.get("input_secs"))
        .and_then(serde_json::Value::as_u64)
        .map_or_else(|| "none".to_owned(), |s| s.to_string());
    Some(format!("{} {} retention={retention}", cred(0)?, cred(1)?))
}

/// The canonical form of an archive pair: both buckets' keys.
pub fn archive_canon(v: &serde_json::Value) -> Option<String> {
    let key = |p: usize| -> Option<String> {
        let d = v.get("destinations")?.get(p)?;
        Some(format!(
            "{}:{}",
            d.get("access_key_id")?.as_str()?,
            d.get("secret_access_key")?.as_str()?
        ))
    };
    Some(format!("{} {}", key(0)?, key(1)?))
}

/// A control-API request with the admin token.
pub async fn api(
    conn: &mut Conn,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<Resp> {
    let bearer = format!("Bearer {token}");
    conn.request_with(
        method,
        path,
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
        BodyMode::Keep,
    )
    .await
}

/// Control-API churn: a channel created, its retention patched, deleted;
/// an archive pair created and deleted; then the next of each.
pub async fn control(
    w: Shared,
    addr: SocketAddr,
    token: String,
    mut rng: Rng,
) -> anyhow::Result<()> {
    let mut conn = Conn::new(addr);
    loop {
        let (n, step, astep, canon) = with(&w, |w| {
            (
                w.churn_n,
                w.churn_step,
                w.churn_archive_step,
                w.churn_channel.clone(),
            )
        });
        let ch = format!("chaos-c{n}");
        let arc = format!("chaos-x{n}");
        if rng.below(2) == 0 {
            match step {
                0 => {
                    let body = format!("{{\"id\":\"{ch}\",\"retention\":{{\"input_secs\":3600}}}}");
                    // Entered before it is sent: a kill may take its answer.
                    with(&w, |w| w.defs.maybe(&ch, None, true));
                    let r = api(&mut conn, &token, "POST", "/api/v1/channels", &body).await;
                    let found = r
                        .as_ref()
                        .ok()
                        .filter(|r| r.status == 201)
                        .and_then(|r| serde_json::from_slice(&r.body).ok())
                        .and_then(|v: serde_json::Value| channel_canon(&v));
                    with(&w, |w| {
                        if let Some(c) = &found {
                            w.defs.acked(&ch, Some(c.clone()));
                        }
                        w.churn_channel = found.clone();
                        w.churn_step = 1;
                    });
                    r?;
                }
                1 => {
                    let body = "{\"retention\":{\"input_secs\":7200}}";
                    let path = format!("/api/v1/channels/{ch}");
                    let predicted = canon.as_ref().map(|c| {
                        let creds = c.rsplit_once(" retention=").map_or(c.as_str(), |x| x.0);
                        format!("{creds} retention=7200")
                    });
                    if let Some(p) = &predicted {
                        with(&w, |w| w.defs.maybe(&ch, Some(p.clone()), false));
                    }
                    let r = api(&mut conn, &token, "PATCH", &path, body).await;
                    let found = r
                        .as_ref()
                        .ok()
                        .filter(|r| r.status == 200)
                        .and_then(|r| serde_json::from_slice(&r.body).ok())
                        .and_then(|v: serde_json::Value| channel_canon(&v));
                    with(&w, |w| {
                        if let Some(c) = &found {
                            w.defs.acked(&ch, Some(c.clone()));
                        }
                        w.churn_step = 2;
                    });
                    r?;
                }
                _ => {
                    let path = format!("/api/v1/channels/{ch}");
                    with(&w, |w| w.defs.maybe(&ch, None, false));
                    let r = api(&mut conn, &token, "DELETE", &path, "").await;
                    let acked = r.as_ref().is_ok_and(|r| r.status == 204);
                    with(&w, |w| {
                        if acked {
                            w.defs.acked(&ch, None);
                        }
                        w.churn_step = 3;
                    });
                    r?;
                }
            }
        } else {
            match astep {
                0 => {
                    let body = format!("{{\"id\":\"{arc}\"}}");
                    with(&w, |w| w.defs.maybe(&arc, None, true));
                    let r = api(&mut conn, &token, "POST", "/api/v1/archives", &body).await;
                    let found = r
                        .as_ref()
                        .ok()
                        .filter(|r| r.status == 201)
                        .and_then(|r| serde_json::from_slice(&r.body).ok())
                        .and_then(|v: serde_json::Value| archive_canon(&v));
                    with(&w, |w| {
                        if let Some(c) = &found {
                            w.defs.acked(&arc, Some(c.clone()));
                        }
                        w.churn_archive_step = 1;
                    });
                    r?;
                }
                1 => {
                    let path = format!("/api/v1/archives/{arc}");
                    with(&w, |w| w.defs.maybe(&arc, None, false));
                    let r = api(&mut conn, &token, "DELETE", &path, "").await;
                    let acked = r.as_ref().is_ok_and(|r| r.status == 204);
                    with(&w, |w| {
                        if acked {
                            w.defs.acked(&arc, None);
                        }
                        w.churn_archive_step = 2;
                    });
                    r?;
                }
                _ => {}
            }
        }
        with(&w, |w| {
            if w.churn_step >= 3 && w.churn_archive_step >= 2 {
                w.churn_n += 1;
                w.churn_step = 0;
                w.churn_archive_step = 0;
                w.churn_channel = None;
            }
        });
        tokio::time::sleep(Duration::from_millis(20 + rng.below(60))).await;
    }
}

/// Reads the output playlist while the load runs, keeping the highest
/// media sequence it showed.
pub async fn watch_output(w: Shared, addr: SocketAddr) -> anyhow::Result<()> {
    let mut conn = Conn::new(addr);
    let path = format!("/out/{CHANNEL}/{PLAYLIST}");
    loop {
        let r = conn.request("GET", &path, None, b"").await?;
        if r.status == 200
            && let Ok(text) = std::str::from_utf8(&r.body)
            && let Ok(pl) = tandem_hls::playlist::parse_media(text)
        {
            with(&w, |w| {
                w.output_msn = Some(
                    w.output_msn
                        .map_or(pl.media_sequence, |m| m.max(pl.media_sequence)),
                );
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
