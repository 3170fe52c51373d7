//! MediaStore-style loads: PutObject and GetObject requests per second
//! against Tandem's MediaStore listener beside nginx, and the time to first
//! byte of a `STREAMING` GET while its upload is in flight.
//!
//! One load generator serves both sides: the same connections, object
//! sizes, rotating names and code path, and every request SigV4-signed when
//! it is sent (nginx ignores the signature; signing it keeps the client's
//! cost equal). [`compare`] interleaves the two servers in short rounds,
//! alternating which goes first, so that other work on a shared machine
//! falls on both alike.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::client::{BodyMode, BodyState, Conn, Framing};
use crate::scenarios::{Percentiles, Target};
use crate::sign::{Payload, Signer};

/// Names a PUT load rotates over, as the anchor's `wrk-put.lua` does per
/// thread: a bounded set of objects, overwritten round robin.
const PUT_ROTATE: u64 = 32;
/// Objects a GET load reads, round robin.
const GET_OBJECTS: u64 = 16;
/// The content type every PUT carries (an encoder's segment).
const CONTENT_TYPE: &str = "video/mp2t";

/// An origin under load: where, under which path prefix, and which
/// processes to charge CPU time to.
#[derive(Debug, Clone)]
pub struct Origin {
    pub label: &'static str,
    pub addr: SocketAddr,
    /// Prepended to every object path: `/{container}` for Tandem, the
    /// `dav_methods PUT` location for nginx.
    pub prefix: String,
    /// The server's processes (nginx: the master; its workers are found
    /// as its children).
    pub pids: Vec<u32>,
}

/// One container of a pair, as the control API hands it to an encoder.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Container {
    /// A signer with this container's key.
    pub fn signer(&self) -> Signer {
        Signer::new(&self.access_key_id, &self.secret_access_key, &self.region)
    }
}

/// Creates (or re-creates) container pair `id` through the control API;
/// returns pipeline 0's container.
pub async fn create_container(t: &Target, id: &str) -> anyhow::Result<Container> {
    let mut c = Conn::new(t.addr);
    let bearer = format!("Bearer {}", t.token);
    let del = c
        .request(
            "DELETE",
            &format!("/api/v1/containers/{id}"),
            Some(&bearer),
            b"",
        )
        .await?;
    if !matches!(del.status, 200 | 204 | 404) {
        bail!("deleting container pair {id}: HTTP {}", del.status);
    }
    let r = c
        .request(
            "POST",
            "/api/v1/containers",
            Some(&bearer),
            format!("{{\"id\":\"{id}\"}}").as_bytes(),
        )
        .await?;
    if r.status != 201 {
        bail!(
            "creating container pair {id}: HTTP {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    let c0 = &v["containers"][0];
    let s = |k: &str| -> anyhow::Result<String> {
        Ok(c0[k]
            .as_str()
            .with_context(|| format!("container answer without {k}"))?
            .to_owned())
    };
    Ok(Container {
        name: s("container")?,
        region: s("region")?,
        access_key_id: s("access_key_id")?,
        secret_access_key: s("secret_access_key")?,
    })
}

/// PutObject or GetObject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "PUT",
            Op::Get => "GET",
        }
    }
}

/// What one timed load measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Requests answered with success within the duration.
    pub requests: u64,
    /// Failed requests: a status other than 2xx, a short body, a broken
    /// connection.
    pub errors: u64,
    pub secs: f64,
    pub latency: Percentiles,
    /// Server CPU time per request, in microseconds (all threads).
    pub cpu_us_per_req: Option<f64>,
}

impl LoadReport {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// CPU time in nanoseconds of `pids`, their threads and their direct
/// children (nginx's workers), from `/proc/*/task/*/schedstat`.
pub fn cpu_ns(pids: &[u32]) -> Option<u64> {
    let mut all: Vec<u32> = pids.to_vec();
    for p in pids {
        for task in std::fs::read_dir(format!("/proc/{p}/task")).ok()?.flatten() {
            if let Ok(kids) = std::fs::read_to_string(task.path().join("children")) {
                all.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok()),
                );
            }
        }
    }
    let mut total = 0u64;
    for p in all {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Sends one signed request and reads its answer; the body is discarded
/// (only counted) unless `keep`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn signed(
    conn: &mut Conn,
    signer: &Signer,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    payload: &Payload,
    body: &[u8],
    keep: BodyMode,
) -> anyhow::Result<crate::client::Resp> {
    let host = conn.host();
    let mut to_sign: Vec<(&str, &str)> = vec![("host", host.as_str())];
    to_sign.extend_from_slice(extra);
    let auth = signer.sign(method, &host, path, &to_sign, payload, SystemTime::now())?;
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    headers.extend(auth.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    conn.request_with(method, path, &headers, body, keep).await
}

/// The payload mode to sign a PUT of `body` with.
fn payload_for(mode: &PayloadMode, body: &[u8]) -> Payload {
    match mode {
        PayloadMode::Unsigned => Payload::Unsigned,
        PayloadMode::Header => Payload::Header(hex_sha256(body)),
        PayloadMode::Body => Payload::Body(hex_sha256(body)),
    }
}

/// How PUT bodies are signed (see [`Payload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD`, as botocore sends PutObject.
    #[default]
    Unsigned,
    Header,
    Body,
}

/// A body of `n` bytes that looks like MPEG-TS (sync bytes every 188)
/// and is not all one byte, so a wrong offset shows in a comparison.
pub fn ts_like(n: usize) -> Arc<[u8]> {
    (0..n)
        .map(|i| if i % 188 == 0 { 0x47 } else { (i % 251) as u8 })
        .collect()
}

pub fn hex_sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the objects a GET load reads: `{prefix}/{folder}/seg{k}.ts`.
pub async fn seed(
    o: &Origin,
    signer: &Signer,
    folder: &str,
    body: &[u8],
    payload: PayloadMode,
) -> anyhow::Result<()> {
    let mut c = Conn::new(o.addr);
    let p = payload_for(&payload, body);
    for k in 0..GET_OBJECTS {
        let path = format!("{}/{folder}/seg{k:05}.ts", o.prefix);
        let r = signed(
            &mut c,
            signer,
            "PUT",
            &path,
            &[("content-type", CONTENT_TYPE)],
            &p,
            body,
            BodyMode::Keep,
        )
        .await?;
        if r.status / 100 != 2 {
            bail!(
                "{}: seeding {path}: HTTP {} {}",
                o.label,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    verify_get(o, signer, &format!("{folder}/seg00000.ts"), body).await
}

/// Reads an object back and checks its bytes.
pub async fn verify_get(
    o: &Origin,
    signer: &Signer,
    name: &str,
    body: &[u8],
) -> anyhow::Result<()> {
    let mut c = Conn::new(o.addr);
    let path = format!("{}/{name}", o.prefix);
    let r = signed(
        &mut c,
        signer,
        "GET",
        &path,
        &[],
        &Payload::Empty,
        b"",
        BodyMode::Keep,
    )
    .await?;
    if r.status != 200 || r.body.as_ref() != body {
        bail!(
            "{}: GET {path} gave HTTP {} with {} bytes; expected 200 with the {} bytes written",
            o.label,
            r.status,
            r.body.len(),
            body.len()
        );
    }
    Ok(())
}

/// One timed load: `conns` connections sending `op` back to back for
/// `duration`. PUTs write `{folder}/seg{k}.ts` for k rotating over
/// [`PUT_ROTATE`] names; GETs read the [`seed`]ed objects of `folder`.
#[allow(clippy::too_many_arguments)]
pub async fn load(
    o: &Origin,
    signer: &Arc<Signer>,
    op: Op,
    folder: &str,
    body: &Arc<[u8]>,
    conns: usize,
    duration: Duration,
    payload: PayloadMode,
) -> anyhow::Result<LoadReport> {
    let next = Arc::new(AtomicU64::new(0));
    let payload = Arc::new(payload_for(&payload, body));
    let cpu0 = cpu_ns(&o.pids);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (o, signer, next, body, payload) = (
            o.clone(),
            signer.clone(),
            next.clone(),
            body.clone(),
            payload.clone(),
        );
        let folder = folder.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(o.addr);
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            let mut total = 0u64;
            while Instant::now() < end {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let r = match op {
                    Op::Put => {
                        let path = format!("{}/{folder}/seg{:05}.ts", o.prefix, k % PUT_ROTATE);
                        signed(
                            &mut c,
                            &signer,
                            "PUT",
                            &path,
                            &[("content-type", CONTENT_TYPE)],
                            &payload,
                            &body,
                            BodyMode::Discard,
                        )
                        .await
                    }
                    Op::Get => {
                        let path = format!("{}/{folder}/seg{:05}.ts", o.prefix, k % GET_OBJECTS);
                        signed(
                            &mut c,
                            &signer,
                            "GET",
                            &path,
                            &[],
                            &Payload::Empty,
                            b"",
                            BodyMode::Discard,
                        )
                        .await
                    }
                };
                let done = Instant::now();
                total += 1;
                let good = match &r {
                    Ok(r) if op == Op::Get => r.status == 200 && r.body_len == body.len() as u64,
                    Ok(r) => r.status / 100 == 2,
                    Err(_) => false,
                };
                if !good {
                    errors += 1;
                    c.close();
                } else if done <= end {
                    ok += 1;
                    lat.push(done - t0);
                }
            }
            (ok, errors, lat, total)
        }));
    }
    let (mut requests, mut errors, mut lat, mut total) = (0, 0, Vec::new(), 0u64);
    for t in tasks {
        let (a, b, l, n) = t.await?;
        requests += a;
        errors += b;
        total += n;
        lat.extend(l);
    }
    let cpu1 = cpu_ns(&o.pids);
    let cpu_us_per_req = match (cpu0, cpu1) {
        (Some(a), Some(b)) if total > 0 => Some(b.saturating_sub(a) as f64 / 1e3 / total as f64),
        _ => None,
    };
    Ok(LoadReport {
        requests,
        errors,
        secs: duration.as_secs_f64(),
        latency: Percentiles::of(lat),
        cpu_us_per_req,
    })
}

/// One row of the comparison: an operation, an object size and a
/// connection count, measured on both origins in alternating rounds.
#[derive(Debug, Clone)]
pub struct Cell {
    pub op: Op,
    pub object: String,
    pub bytes: usize,
    pub conns: usize,
    pub tandem: Vec<LoadReport>,
    pub nginx: Vec<LoadReport>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Cell {
    fn med(v: &[LoadReport], f: impl Fn(&LoadReport) -> f64) -> f64 {
        median(v.iter().map(f).collect())
    }

    /// Median req/s of each side over its rounds.
    pub fn rps(&self) -> (f64, f64) {
        (
            Self::med(&self.tandem, LoadReport::rps),
            Self::med(&self.nginx, LoadReport::rps),
        )
    }

    /// Tandem / nginx of the median req/s.
    pub fn ratio(&self) -> f64 {
        let (t, n) = self.rps();
        t / n
    }

    /// The ratio of each round (Tandem's and nginx's reps paired in order).
    pub fn round_ratios(&self) -> Vec<f64> {
        self.tandem
            .iter()
            .zip(&self.nginx)
            .map(|(t, n)| t.rps() / n.rps())
            .collect()
    }

    pub fn errors(&self) -> (u64, u64) {
        (
            self.tandem.iter().map(|r| r.errors).sum(),
            self.nginx.iter().map(|r| r.errors).sum(),
        )
    }

    /// A markdown row: see [`TABLE_HEAD`].
    pub fn row(&self) -> String {
        let (t, n) = self.rps();
        let rr = self.round_ratios();
        let lo = rr.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p = |v: &[LoadReport], f: fn(&Percentiles) -> f64| Self::med(v, |r| f(&r.latency));
        let cpu = |v: &[LoadReport]| {
            let m = Self::med(v, |r| r.cpu_us_per_req.unwrap_or(f64::NAN));
            if m.is_finite() {
                format!("{m:.0}")
            } else {
                "-".into()
            }
        };
        let (et, en) = self.errors();
        format!(
            "| {} | {} | c{} | {:.0} | {:.0} | **{:.2}** | {:.2}–{:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {} | {} / {} |",
            self.op.name(),
            self.object,
            self.conns,
            t,
            n,
            t / n,
            lo,
            hi,
            p(&self.tandem, |l| l.p50_ms),
            p(&self.tandem, |l| l.p99_ms),
            p(&self.nginx, |l| l.p50_ms),
            p(&self.nginx, |l| l.p99_ms),
            cpu(&self.tandem),
            cpu(&self.nginx),
            et,
            en
        )
    }
}

/// The header of the rows [`Cell::row`] prints.
pub const TABLE_HEAD: &str = "| op | object | conns | Tandem req/s | nginx req/s | Tandem / nginx | per round | Tandem p50 / p99 ms | nginx p50 / p99 ms | Tandem CPU µs/req | nginx CPU µs/req | errors T / n |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// What [`compare`] runs.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Named bodies, e.g. `("seg200k.ts", bytes)`.
    pub bodies: Vec<(String, Arc<[u8]>)>,
    pub put_conns: Vec<usize>,
    pub get_conns: Vec<usize>,
    /// Rounds per cell; each round runs both origins once.
    pub rounds: usize,
    /// Length of one origin's turn in a round.
    pub turn: Duration,
    pub payload: PayloadMode,
}

/// PUT and GET req/s of every body at every connection count, Tandem and
/// nginx in alternating turns (`rounds` of each, the first origin of a
/// round alternating). Writes of a cell go to a folder of their own; GETs
/// read objects seeded first on both sides. Calls `progress` after each
/// cell, so a long run shows its rows as they come.
pub async fn compare(
    tandem: &Origin,
    nginx: &Origin,
    signer: &Arc<Signer>,
    cfg: &CompareConfig,
    mut progress: impl FnMut(&Cell),
) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    for (name, body) in &cfg.bodies {
        let stem = name.split('.').next().unwrap_or(name);
        for o in [tandem, nginx] {
            seed(o, signer, &format!("ms/get-{stem}"), body, cfg.payload).await?;
        }
        let plan = cfg
            .put_conns
            .iter()
            .map(|&c| (Op::Put, c))
            .chain(cfg.get_conns.iter().map(|&c| (Op::Get, c)));
        for (op, conns) in plan {
            let mut cell = Cell {
                op,
                object: name.clone(),
                bytes: body.len(),
                conns,
                tandem: Vec::new(),
                nginx: Vec::new(),
            };
            let folder = match op {
                Op::Put => format!("ms/put-{stem}-c{conns}"),
                Op::Get => format!("ms/get-{stem}"),
            };
            for round in 0..cfg.rounds {
                let order = if round % 2 == 0 {
                    [tandem, nginx]
                } else {
                    [nginx, tandem]
                };
                for o in order {
                    let r = load(o, signer, op, &folder, body, conns, cfg.turn, cfg.payload)
                        .await
                        .with_context(|| format!("{} {} {name} c{conns}", o.label, op.name()))?;
                    if std::ptr::eq(o, tandem) {
                        cell.tandem.push(r);
                    } else {
                        cell.nginx.push(r);
                    }
                }
            }
            if op == Op::Put {
                // What the load wrote reads back whole on both sides.
                for o in [tandem, nginx] {
                    verify_get(o, signer, &format!("{folder}/seg00000.ts"), body).await?;
                }
            }
            progress(&cell);
            cells.push(cell);
        }
    }
    Ok(cells)
}

/// Time to first byte of GETs.
#[derive(Debug, Clone)]
pub struct TtfbReport {
    pub ttfb: Percentiles,
    /// GETs that arrived before the server had started the upload
    /// (answered 404, sent again; not counted in `ttfb`).
    pub early: u64,
}

/// The time from a GET's last request byte to the first body byte of its
/// answer, for a `STREAMING` object whose upload is in flight: for each of
/// `reps` repetitions a PUT (`x-amz-upload-availability: STREAMING`) sends
/// its head and the first half of `body`, a GET on a second connection is
/// timed to its first body byte, then the PUT sends the rest. Each GET
/// must return exactly `body`, and the PUT answer's `ContentSHA256` must
/// be the body's.
pub async fn ttfb_streaming(
    o: &Origin,
    signer: &Signer,
    body: &[u8],
    reps: usize,
    deadline: Duration,
) -> anyhow::Result<TtfbReport> {
    let (mut put, mut get) = (Conn::new(o.addr), Conn::new(o.addr));
    let half = body.len() / 2;
    let sha = hex_sha256(body);
    let host = put.host();
    let (mut samples, mut early) = (Vec::with_capacity(reps), 0u64);
    let stop = Instant::now() + deadline;
    for rep in 0..reps {
        if Instant::now() > stop {
            break;
        }
        let path = format!("{}/ttfb/stream{:02}.ts", o.prefix, rep % 16);
        let extra = [
            ("content-type", CONTENT_TYPE),
            ("x-amz-upload-availability", "STREAMING"),
        ];
        let mut to_sign = vec![("host", host.as_str())];
        to_sign.extend_from_slice(&extra);
        let auth = signer.sign(
            "PUT",
            &host,
            &path,
            &to_sign,
            &Payload::Unsigned,
            SystemTime::now(),
        )?;
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        headers.extend(auth.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        put.send("PUT", &path, &headers, body.len() as u64, &body[..half])
            .await?;
        // The GET: re-sent while the server has not yet begun the upload.
        let (head, sent) = loop {
            let auth = signer.sign(
                "GET",
                &host,
                &path,
                &[("host", host.as_str())],
                &Payload::Empty,
                SystemTime::now(),
            )?;
            let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            get.send("GET", &path, &h, 0, b"").await?;
            let sent = Instant::now();
            let head = get.read_head("GET").await?;
            if head.status == 404 && Instant::now() < stop {
                let mut st = BodyState::of(&head);
                while get.read_body_part(&mut st).await?.is_some() {}
                early += 1;
                tokio::task::yield_now().await;
                continue;
            }
            break (head, sent);
        };
        // A complete object would come with a Content-Length; a STREAMING
        // read of an upload in flight cannot know its length.
        if head.status != 200 || head.framing != Framing::Chunked {
            bail!(
                "{}: GET {path} of a STREAMING upload in flight: HTTP {} framed {:?}",
                o.label,
                head.status,
                head.framing
            );
        }
        let mut st = BodyState::of(&head);
        let Some(first) = get.read_body_part(&mut st).await? else {
            bail!(
                "{}: GET {path}: an empty body while the upload was in flight",
                o.label
            );
        };
        samples.push(sent.elapsed());
        put.send_more(&body[half..]).await?;
        let mut got = first.to_vec();
        while let Some(part) = get.read_body_part(&mut st).await? {
            got.extend_from_slice(&part);
        }
        if got != body {
            bail!(
                "{}: GET {path} during a STREAMING upload returned {} bytes, not the {} uploaded",
                o.label,
                got.len(),
                body.len()
            );
        }
        let ph = put.read_head("PUT").await?;
        let mut pst = BodyState::of(&ph);
        let mut answer = Vec::new();
        while let Some(part) = put.read_body_part(&mut pst).await? {
            answer.extend_from_slice(&part);
        }
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        if ph.status != 200 || v["ContentSHA256"].as_str() != Some(sha.as_str()) {
            bail!(
                "{}: STREAMING PUT {path}: HTTP {} {}",
                o.label,
                ph.status,
                String::from_utf8_lossy(&answer)
            );
        }
        // Gone again, so the next repetition's GET cannot find a complete
        // object of the same name before its upload begins.
        let r = signed(
            &mut get,
            signer,
            "DELETE",
            &path,
            &[],
            &Payload::Empty,
            b"",
            BodyMode::Keep,
        )
        .await?;
        if r.status / 100 != 2 {
            bail!("{}: DELETE {path}: HTTP {}", o.label, r.status);
        }
    }
    Ok(TtfbReport {
        ttfb: Percentiles::of(samples),
        early,
    })
}

/// For context: the time to first byte of GETs of a complete object (on
/// Tandem a `STANDARD` one), written once, read `reps` times and checked.
pub async fn ttfb_complete(
    o: &Origin,
    signer: &Signer,
    body: &[u8],
    reps: usize,
    deadline: Duration,
) -> anyhow::Result<TtfbReport> {
    let mut c = Conn::new(o.addr);
    let path = format!("{}/ttfb/complete.ts", o.prefix);
    let r = signed(
        &mut c,
        signer,
        "PUT",
        &path,
        &[("content-type", CONTENT_TYPE)],
        &Payload::Unsigned,
        body,
        BodyMode::Keep,
    )
    .await?;
    if r.status / 100 != 2 {
        bail!("{}: PUT {path}: HTTP {}", o.label, r.status);
    }
    let host = c.host();
    let mut samples = Vec::with_capacity(reps);
    let stop = Instant::now() + deadline;
    for _ in 0..reps {
        if Instant::now() > stop {
            break;
        }
        let auth = signer.sign(
            "GET",
            &host,
            &path,
            &[("host", host.as_str())],
            &Payload::Empty,
            SystemTime::now(),
        )?;
        let h: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        c.send("GET", &path, &h, 0, b"").await?;
        let sent = Instant::now();
        let head = c.read_head("GET").await?;
        if head.status != 200 {
            bail!("{}: GET {path}: HTTP {}", o.label, head.status);
        }
        let mut st = BodyState::of(&head);
        let mut got = Vec::with_capacity(body.len());
        if let Some(first) = c.read_body_part(&mut st).await? {
            samples.push(sent.elapsed());
            got.extend_from_slice(&first);
        }
        while let Some(part) = c.read_body_part(&mut st).await? {
            got.extend_from_slice(&part);
        }
        if got != body {
            bail!(
                "{}: GET {path} returned {} bytes, not the {} written",
                o.label,
                got.len(),
                body.len()
            );
        }
    }
    Ok(TtfbReport {
        ttfb: Percentiles::of(samples),
        early: 0,
    })
}
