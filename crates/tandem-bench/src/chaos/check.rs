//! The checks after every restart, each against one promise.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::ledger::{Body, Invariant, Observed, Violation};
use super::load::{self, ARCHIVE, CHANNEL, PLAYLIST, Shared, with};
use super::rng::Rng;
use super::server::Process;
use crate::client::Conn;
use crate::digest::DigestAuth;
use crate::sign::Signer;

/// Objects read back through the server's GET paths at each restart,
/// beyond the ones written since the last restart.
const SAMPLE: usize = 32;
/// How long a restarted server may take to serve the output again.
const OUTPUT_WAIT: Duration = Duration::from_secs(15);

/// What one round of checks found.
#[derive(Debug, Default)]
pub struct Found {
    pub objects_checked: u64,
    pub violations: Vec<Violation>,
}

impl Found {
    fn add(&mut self, invariant: Invariant, point: usize, detail: String) {
        self.violations.push(Violation {
            invariant,
            point,
            detail,
        });
    }
}

/// Runs every check against the restarted server `srv`.
pub async fn after_restart(
    w: &Shared,
    srv: &Process,
    data: &Path,
    restarted: SystemTime,
    point: usize,
    rng: &mut Rng,
) -> anyhow::Result<Found> {
    let mut f = Found::default();
    staging(data, restarted, point, &mut f);
    objects(w, srv, data, point, rng, &mut f).await?;
    definitions(w, srv, point, &mut f).await?;
    output(w, srv, point, &mut f).await?;
    Ok(f)
}

/// `staging/` holds nothing from before the restart.
fn staging(data: &Path, restarted: SystemTime, point: usize, f: &mut Found) {
    let dir = data.join("staging");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let modified = e.metadata().and_then(|m| m.modified()).ok();
        if modified.is_none_or(|m| m < restarted) {
            f.add(
                Invariant::Staging,
                point,
                format!("{} left over from before the restart", e.path().display()),
            );
        }
    }
}

/// Reads one key through the server: the input's GET (Digest) for a
/// channel's object, S3 GetObject (SigV4) for a bucket's.
async fn read(
    key: &str,
    http: &mut Conn,
    s3: &mut Conn,
    auth: &mut [DigestAuth; 2],
    signers: &[Signer; 2],
) -> anyhow::Result<Observed> {
    let r = if let Some(rest) = key.strip_prefix(&format!("{CHANNEL}/")) {
        let (p, path) = rest.split_once('/').unwrap_or((rest, ""));
        let p = usize::from(p == "1");
        auth[p]
            .request(http, "GET", &format!("/in/{CHANNEL}/{p}/{path}"), &[], b"")
            .await?
    } else if let Some(rest) = key.strip_prefix("s3.buckets/") {
        let b = usize::from(rest.starts_with(&format!("{ARCHIVE}-1/")));
        load::s3_request(s3, &signers[b], "GET", &format!("/{rest}"), b"").await?
    } else {
        anyhow::bail!("no GET path for key {key}");
    };
    Ok(match r.status {
        200 => Observed::State(Some(Body::of(&r.body))),
        404 => Observed::State(None),
        s => Observed::Unreadable(format!("HTTP {s}")),
    })
}

/// Every key: read through the server when written since the last
/// restart or sampled, else its size on disk; and no file on disk the
/// campaign never wrote.
async fn objects(
    w: &Shared,
    srv: &Process,
    data: &Path,
    point: usize,
    rng: &mut Rng,
    f: &mut Found,
) -> anyhow::Result<()> {
    let (mut auth, signers, touched, all) = with(w, |w| {
        let auth = [0, 1].map(|p| DigestAuth::new(&w.inputs[p].0, &w.inputs[p].1));
        let signers =
            [0, 1].map(|b| Signer::for_service(&w.keys[b].0, &w.keys[b].1, &w.region, "s3"));
        let all: Vec<String> = w.ledger.keys().map(str::to_owned).collect();
        (auth, signers, w.ledger.take_touched(), all)
    });
    let mut read_back: BTreeSet<String> = touched;
    for _ in 0..SAMPLE.min(all.len()) {
        if let Some(k) = all.get(rng.below(all.len() as u64) as usize) {
            read_back.insert(k.clone());
        }
    }
    let mut http = Conn::new(srv.http);
    let mut s3 = Conn::new(srv.s3);
    for key in &read_back {
        let found = read(key, &mut http, &mut s3, &mut auth, &signers).await?;
        f.objects_checked += 1;
        if let Some(v) = with(w, |w| w.ledger.check(key, &found, point)) {
            f.violations.push(v);
        }
    }
    for key in all.iter().filter(|k| !read_back.contains(*k)) {
        let md = std::fs::metadata(data.join("objects").join(key));
        let found = match md {
            Ok(m) if m.is_file() => Observed::Size(Some(m.len())),
            Ok(_) => Observed::Unreadable("not a file".into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Observed::Size(None),
            Err(e) => Observed::Unreadable(e.to_string()),
        };
        f.objects_checked += 1;
        if let Some(v) = with(w, |w| w.ledger.check(key, &found, point)) {
            f.violations.push(v);
        }
    }
    // Files the campaign never sent whole.
    let roots = [
        format!("{CHANNEL}/0"),
        format!("{CHANNEL}/1"),
        format!("s3.buckets/{ARCHIVE}-0"),
        format!("s3.buckets/{ARCHIVE}-1"),
    ];
    for root in roots {
        let mut stack = vec![root];
        while let Some(rel) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(data.join("objects").join(&rel)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tandem") {
                    continue;
                }
                let key = format!("{rel}/{name}");
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(key),
                    Ok(_) if !with(w, |w| w.ledger.may_exist(&key)) => f.add(
                        Invariant::OnlyWhole,
                        point,
                        format!("{key}: on disk, but no upload of it was sent whole"),
                    ),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Every channel and archive pair the campaign defined is there, or gone,
/// as its answered requests say, with the same credentials, and those
/// credentials open it.
async fn definitions(w: &Shared, srv: &Process, point: usize, f: &mut Found) -> anyhow::Result<()> {
    let mut conn = Conn::new(srv.http);
    let region = with(w, |w| w.region.clone());
    for id in with(w, |w| w.defs.ids()) {
        let archive = id == ARCHIVE || id.starts_with("chaos-x");
        let path = if archive {
            format!("/api/v1/archives/{id}")
        } else {
            format!("/api/v1/channels/{id}")
        };
        let r = load::api(&mut conn, &srv.token, "GET", &path, "").await?;
        let found = match r.status {
            404 => None,
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                let canon = if archive {
                    load::archive_canon(&v)
                } else {
                    load::channel_canon(&v)
                };
                if canon.is_none() {
                    f.add(
                        Invariant::Definitions,
                        point,
                        format!("{id}: unreadable definition {v}"),
                    );
                    continue;
                }
                canon
            }
            s => {
                f.add(
                    Invariant::Definitions,
                    point,
                    format!("GET {path}: HTTP {s}"),
                );
                continue;
            }
        };
        let verdict = with(w, |w| {
            // What the churned channel is now, for the next PATCH's
            // expectation (its create may have gone unanswered).
            if id == format!("chaos-c{}", w.churn_n) {
                w.churn_channel = found.clone();
            }
            w.defs.check(&id, found.clone(), point)
        });
        if let Some(v) = verdict {
            f.violations.push(v);
        }
        let Some(canon) = found else { continue };
        // Authenticate with the credentials the definition carries.
        let creds: Vec<(&str, &str)> = canon
            .split(' ')
            .filter_map(|c| c.split_once(':'))
            .take(2)
            .collect();
        for (p, (user, secret)) in creds.iter().enumerate() {
            let status = if archive {
                let mut s3 = Conn::new(srv.s3);
                let signer = Signer::for_service(user, secret, &region, "s3");
                load::s3_request(
                    &mut s3,
                    &signer,
                    "GET",
                    &format!("/{id}-{p}?list-type=2"),
                    b"",
                )
                .await?
                .status
            } else {
                let mut auth = DigestAuth::new(user, secret);
                auth.request(
                    &mut conn,
                    "GET",
                    &format!("/in/{id}/{p}/chaos-probe.ts"),
                    &[],
                    b"",
                )
                .await?
                .status
            };
            let good = if archive {
                status == 200
            } else {
                status == 404 || status == 200
            };
            if !good {
                f.add(
                    Invariant::Definitions,
                    point,
                    format!("{id} input {p}: its credentials ({user}) are refused: HTTP {status}"),
                );
            }
        }
    }
    Ok(())
}

fn resolve(dir: &str, uri: &str) -> String {
    if let Some((_, rest)) = uri.split_once("://") {
        rest.find('/')
            .map_or("/".to_owned(), |i| rest[i..].to_owned())
    } else if uri.starts_with('/') {
        uri.to_owned()
    } else {
        format!("{dir}{uri}")
    }
}

/// The output playlist parses, does not go back, and every segment it
/// names is readable.
async fn output(w: &Shared, srv: &Process, point: usize, f: &mut Found) -> anyhow::Result<()> {
    let before = with(w, |w| w.output_msn);
    let path = format!("/out/{CHANNEL}/{PLAYLIST}");
    let dir = path
        .rsplit_once('/')
        .map_or("/".to_owned(), |(d, _)| format!("{d}/"));
    let mut conn = Conn::new(srv.http);
    let deadline = Instant::now() + OUTPUT_WAIT;
    let r = loop {
        let r = conn.request("GET", &path, None, b"").await?;
        // Until the output served once, there is nothing to come back to.
        if r.status == 200 || before.is_none() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if r.status != 200 {
        if before.is_some() {
            f.add(
                Invariant::Output,
                point,
                format!(
                    "GET {path}: HTTP {} after the restart (served before it)",
                    r.status
                ),
            );
        }
        return Ok(());
    }
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let pl = match tandem_hls::playlist::parse_media(&text) {
        Ok(pl) => pl,
        Err(e) => {
            f.add(
                Invariant::Output,
                point,
                format!("{path} does not parse: {e}\n{text}"),
            );
            return Ok(());
        }
    };
    if let Some(b) = before
        && pl.media_sequence < b
    {
        f.add(
            Invariant::Output,
            point,
            format!(
                "{path}: EXT-X-MEDIA-SEQUENCE {} after the restart, {b} before it",
                pl.media_sequence
            ),
        );
    }
    with(w, |w| {
        w.output_msn = Some(
            w.output_msn
                .map_or(pl.media_sequence, |m| m.max(pl.media_sequence)),
        );
    });
    for seg in &pl.segments {
        let url = resolve(&dir, &seg.uri);
        let r = conn.request("GET", &url, None, b"").await?;
        f.objects_checked += 1;
        if r.status != 200 {
            f.add(
                Invariant::Output,
                point,
                format!("{path} names {}, which answers HTTP {}", seg.uri, r.status),
            );
        }
    }
    Ok(())
}
