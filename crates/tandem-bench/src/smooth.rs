//! Smooth publishing points at scale: N points × 2 encoders × (3 video + 1
//! audio) streams, a fragment every 2 s on each, replayed from the
//! captured ffmpeg push (`testdata/smooth/ffmpeg_ismv_push.bin`).
//!
//! Each publishing point is a channel (`bench-sm{i}`, point `live.isml`).
//! Each encoder sends one long chunked POST per track, as AWS Elemental
//! MediaLive does (`…/live.isml/Streams(video1)`, …, `Streams(audio)`): the
//! capture's `ftyp`, its Live Server Manifest cut down to that one track
//! (video bitrates made distinct: 150, 300 and 600 kb/s), its `moov`, then
//! the capture's fragments of that track in a loop, each `tfxd` rewritten
//! to the next 2 s time on a clock shared by both encoders (they are
//! time-locked, as the two pipelines of one MediaLive channel are).
//! Pipeline 1 sends each fragment 50 ms after pipeline 0 (MediaLive's
//! `sendDelayMs`), so the copy the output names is pipeline 0's.
//!
//! Publish delay is timed on each point's audio track: from the last byte
//! of the first copy of a fragment written to the socket (pipeline 0's,
//! unless the scheduler held it back past the send delay) to the first
//! manifest
//! GET whose audio `StreamIndex` reaches that time (polled every 0.5 ms on a
//! keep-alive connection; the figure is the send time of that GET, an
//! upper bound within one poll). Server CPU and RSS come from /proc.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

use crate::client::Conn;
use crate::scenarios::{Percentiles, Target, cpu_secs, create_channel, rss_bytes};

/// `tfxd`'s extended type.
const TFXD: [u8; 16] = [
    0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2,
];
/// 2 s in the Smooth timescale (100 ns).
const FRAGMENT: u64 = 20_000_000;
const PERIOD: Duration = Duration::from_secs(2);
/// Pipeline 1 sends this long after pipeline 0.
const SEND_DELAY: Duration = Duration::from_millis(50);
/// Between two manifest GETs of a point waiting for its fragment.
const POLL: Duration = Duration::from_micros(500);
const VIDEO_BITRATES: [u32; 3] = [150_000, 300_000, 600_000];

/// One stream of a push: its header (`ftyp`, manifest, `moov`) and the
/// fragments (`moof` + `mdat`) to loop over.
#[derive(Debug, Clone)]
pub struct StreamTemplate {
    pub name: String,
    pub header: Vec<u8>,
    pub fragments: Vec<Vec<u8>>,
}

fn top_boxes(b: &[u8]) -> anyhow::Result<Vec<(usize, usize, [u8; 4])>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= b.len() {
        let size = u32::from_be_bytes(b[at..at + 4].try_into()?) as usize;
        if size < 8 || at + size > b.len() {
            bail!("byte {at}: box of {size} bytes does not fit the capture");
        }
        out.push((at, size, b[at + 4..at + 8].try_into()?));
        at += size;
    }
    Ok(out)
}

/// The `tkhd`-less way to tell a fragment's track: `tfhd` track_ID.
fn track_id(moof: &[u8]) -> Option<u32> {
    let at = moof.windows(4).position(|w| w == b"tfhd")?;
    Some(u32::from_be_bytes(
        moof.get(at + 8..at + 12)?.try_into().ok()?,
    ))
}

/// The Live Server Manifest with only the `<video>` or `<audio>` element,
/// its bitrate set to `bitrate` (video).
fn manifest_for(smil: &str, kind: &str, bitrate: Option<u32>) -> anyhow::Result<String> {
    let other = if kind == "video" { "audio" } else { "video" };
    let start = smil
        .find(&format!("<{other} "))
        .context("manifest without both tracks")?;
    let end = smil
        .find(&format!("</{other}>"))
        .context("manifest without both tracks")?
        + other.len()
        + 3;
    let mut s = format!("{}{}", &smil[..start], &smil[end..]);
    if let Some(b) = bitrate {
        s = s.replace("\"150000\"", &format!("\"{b}\""));
    }
    Ok(s)
}

/// The four streams of one encoder, from the capture.
pub fn templates(capture: &[u8]) -> anyhow::Result<Vec<StreamTemplate>> {
    let boxes = top_boxes(capture)?;
    let find = |t: &[u8; 4]| boxes.iter().find(|b| &b.2 == t).copied();
    let (fa, fs, _) = find(b"ftyp").context("no ftyp")?;
    let (ma, ms, _) = find(b"moov").context("no moov")?;
    let (ua, us, _) = find(b"uuid").context("no Live Server Manifest")?;
    // uuid box: size, type, 16-byte extended type, version and flags.
    let smil = std::str::from_utf8(&capture[ua + 28..ua + us]).context("manifest not UTF-8")?;
    let manifest_box = |text: &str| {
        let mut b = ((28 + text.len()) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&capture[ua + 4..ua + 28]);
        b.extend_from_slice(text.as_bytes());
        b
    };
    let mut video = Vec::new();
    let mut audio = Vec::new();
    for (i, (at, size, t)) in boxes.iter().enumerate() {
        if t != b"moof" {
            continue;
        }
        let (mat, msize, mt) = boxes.get(i + 1).copied().context("moof without mdat")?;
        if &mt != b"mdat" {
            bail!("moof without mdat");
        }
        let frag = capture[*at..mat + msize].to_vec();
        let _ = size;
        match track_id(&frag) {
            Some(1) => video.push(frag),
            Some(2) => audio.push(frag),
            other => bail!("fragment of track {other:?}"),
        }
    }
    // ffmpeg's first audio fragment starts before 0 (priming); the
    // rewritten times make every fragment a whole 2 s step anyway.
    let header = |text: String| {
        [
            &capture[fa..fa + fs],
            &manifest_box(&text)[..],
            &capture[ma..ma + ms],
        ]
        .concat()
    };
    let mut out = Vec::new();
    for (i, b) in VIDEO_BITRATES.iter().enumerate() {
        out.push(StreamTemplate {
            name: format!("video{}", i + 1),
            header: header(manifest_for(smil, "video", Some(*b))?),
            fragments: video.clone(),
        });
    }
    out.push(StreamTemplate {
        name: "audio".into(),
        header: header(manifest_for(smil, "audio", None)?),
        fragments: audio,
    });
    Ok(out)
}

/// `frag` with its `tfxd` time and duration set.
fn with_time(frag: &[u8], time: u64, duration: u64) -> Vec<u8> {
    let mut f = frag.to_vec();
    if let Some(at) = f.windows(16).position(|w| w == TFXD) {
        let v = at + 16;
        if f.get(v) == Some(&1) {
            f[v + 4..v + 12].copy_from_slice(&time.to_be_bytes());
            f[v + 12..v + 20].copy_from_slice(&duration.to_be_bytes());
        } else {
            f[v + 4..v + 8].copy_from_slice(&(time as u32).to_be_bytes());
            f[v + 8..v + 12].copy_from_slice(&(duration as u32).to_be_bytes());
        }
    }
    f
}

async fn chunk(s: &mut TcpStream, data: &[u8]) -> anyhow::Result<()> {
    s.write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    s.write_all(data).await?;
    s.write_all(b"\r\n").await?;
    Ok(())
}

/// What the Smooth scale scenario measured.
#[derive(Debug, Clone)]
pub struct SmoothReport {
    pub points: usize,
    pub seconds: f64,
    /// Fragments POSTed (both pipelines).
    pub fragments_sent: u64,
    pub bytes_sent: u64,
    /// Every timed fragment but each point's first.
    pub publish: Percentiles,
    /// Each point's first fragment: its publishing point starts with it.
    pub publish_first: Percentiles,
    /// Server CPU over the run, percent of one core.
    pub cpu_percent: f64,
    pub rss_start: u64,
    pub rss_end: u64,
    pub rss_max: u64,
    /// RSS sampled every 10 s: (seconds since start, bytes).
    pub rss_trace: Vec<(u64, u64)>,
    pub errors: u64,
    pub late: u64,
    /// The server's own publish delay (`tandem_smooth_publish_delay_seconds`,
    /// last byte arrived → named in a served manifest), read from
    /// `/metrics` just before the pushes end: every bench point's
    /// histogram added up.
    pub server: Option<ServerDelay>,
}

/// The server's publish-delay histograms of the bench points, added up.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDelay {
    pub points: usize,
    pub count: u64,
    /// Cumulative counts by bucket edge (seconds), in edge order.
    pub buckets: Vec<(f64, u64)>,
}

impl ServerDelay {
    /// The smallest bucket edge (ms) at or under which a share `q` of the
    /// delays fell: the quantile, rounded up to an edge.
    pub fn quantile_edge_ms(&self, q: f64) -> Option<f64> {
        let want = (self.count as f64 * q).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map(|(le, _)| le * 1e3)
    }

    /// The share of delays at or under `ms` (an edge), in percent.
    pub fn share_within(&self, ms: f64) -> Option<f64> {
        let (_, c) = self
            .buckets
            .iter()
            .find(|(le, _)| (le * 1e3 - ms).abs() < 1e-9)?;
        Some(*c as f64 / self.count.max(1) as f64 * 100.0)
    }
}

/// Adds up every `bench-sm*` channel's `tandem_smooth_publish_delay_seconds`
/// histogram from a Prometheus text page.
pub fn server_delay(page: &str) -> Option<ServerDelay> {
    let mut buckets: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    let mut points = 0;
    let mut count = 0;
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("tandem_smooth_publish_delay_seconds_") else {
            continue;
        };
        if !rest.contains("channel=\"bench-sm") {
            continue;
        }
        let Some((head, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if head.starts_with("count{") {
            points += 1;
            count += v as u64;
        } else if let Some(labels) = head.strip_prefix("bucket{") {
            let Some(le) = labels
                .split("le=\"")
                .nth(1)
                .and_then(|l| l.split('"').next())
                .and_then(|l| l.parse::<f64>().ok())
            else {
                continue;
            };
            // Ordered by edge; +Inf parses as infinity and sorts last.
            let e = buckets.entry(le.to_bits()).or_insert((le, 0));
            e.1 += v as u64;
        }
    }
    if points == 0 {
        return None;
    }
    let mut buckets: Vec<(f64, u64)> = buckets.into_values().collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(ServerDelay {
        points,
        count,
        buckets,
    })
}

/// Runs `points` publishing points for `duration`.
pub async fn scale(
    t: &Target,
    capture: &[u8],
    points: usize,
    duration: Duration,
) -> anyhow::Result<SmoothReport> {
    let templates = Arc::new(templates(capture)?);
    let mut auths = Vec::new();
    for i in 0..points {
        auths.push(create_channel(t, &format!("bench-sm{i}")).await?);
    }
    let pid = t.pid;
    let rss_start = pid.and_then(rss_bytes).unwrap_or(0);
    let cpu_start = pid.and_then(cpu_secs);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let delays = Arc::new(Mutex::new(Vec::new()));
    let firsts = Arc::new(Mutex::new(Vec::new()));
    // A shared clock: the first fragment's time is now, in 100 ns units.
    let base = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() * 10_000_000)
        .unwrap_or(0);
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + duration;
    let mut tasks = Vec::new();
    for (i, auth) in auths.iter().enumerate() {
        // Points spread over the period, as independent encoders are.
        let phase = PERIOD.mul_f64(i as f64 / points.max(1) as f64);
        let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
        for p in 0..2usize {
            for (k, tpl) in templates.iter().enumerate() {
                let tx = (tpl.name == "audio").then(|| tx.clone());
                let (templates, auth, errors, sent, bytes, addr) = (
                    templates.clone(),
                    auth[p].clone(),
                    errors.clone(),
                    sent.clone(),
                    bytes.clone(),
                    t.addr,
                );
                tasks.push(tokio::spawn(async move {
                    let tpl = &templates[k];
                    let path = format!("/in/bench-sm{i}/{p}/live.isml/Streams({})", tpl.name);
                    let delay = if p == 1 { SEND_DELAY } else { Duration::ZERO };
                    let r = push(
                        addr,
                        &path,
                        &auth,
                        tpl,
                        base,
                        start + phase + delay,
                        end,
                        tx,
                        &sent,
                        &bytes,
                    )
                    .await;
                    if let Err(e) = r {
                        errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("{path}: {e:#}");
                    }
                }));
            }
        }
        drop(tx);
        let (errors, late, delays, firsts, addr) = (
            errors.clone(),
            late.clone(),
            delays.clone(),
            firsts.clone(),
            t.addr,
        );
        tasks.push(tokio::spawn(async move {
            if let Err(e) = watch(addr, i, rx, [&firsts, &delays], &late).await {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("bench-sm{i} manifest: {e:#}");
            }
        }));
    }
    // CPU and memory, sampled every second.
    let mut rss_max = rss_start;
    let mut rss_trace = Vec::new();
    let mut last_trace = 0;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(r) = pid.and_then(rss_bytes) {
            rss_max = rss_max.max(r);
            let at = start.elapsed().as_secs();
            if at >= last_trace + 10 {
                rss_trace.push((at, r));
                last_trace = at;
            }
        }
    }
    let cpu_end = pid.and_then(cpu_secs);
    let rss_end = pid.and_then(rss_bytes).unwrap_or(0);
    let wall = start.elapsed().as_secs_f64();
    let server = match Conn::new(t.addr)
        .request("GET", "/metrics", None, b"")
        .await
    {
        Ok(r) if r.status == 200 => server_delay(&String::from_utf8_lossy(&r.body)),
        Ok(r) => {
            eprintln!("/metrics answered {}", r.status);
            None
        }
        Err(e) => {
            eprintln!("/metrics: {e:#}");
            None
        }
    };
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let cpu_percent = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => (b - a) / wall * 100.0,
        _ => 0.0,
    };
    let delays = std::mem::take(&mut *delays.lock().await);
    let firsts = std::mem::take(&mut *firsts.lock().await);
    Ok(SmoothReport {
        points,
        seconds: wall,
        fragments_sent: sent.load(Ordering::Relaxed),
        bytes_sent: bytes.load(Ordering::Relaxed),
        publish: Percentiles::of(delays),
        publish_first: Percentiles::of(firsts),
        cpu_percent,
        rss_start,
        rss_end,
        rss_max,
        rss_trace,
        errors: errors.load(Ordering::Relaxed),
        late: late.load(Ordering::Relaxed),
        server,
    })
}

/// One encoder stream: a long chunked POST, a fragment every 2 s from
/// `first` until `end`, then the body's end and the answer.
#[allow(clippy::too_many_arguments)]
async fn push(
    addr: std::net::SocketAddr,
    path: &str,
    auth: &str,
    tpl: &StreamTemplate,
    base: u64,
    first: Instant,
    end: Instant,
    tx: Option<mpsc::UnboundedSender<(u64, Instant)>>,
    sent: &AtomicU64,
    bytes: &AtomicU64,
) -> anyhow::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nUser-Agent: tandem-bench\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await?;
    chunk(&mut s, &tpl.header).await?;
    let mut n = 0u64;
    loop {
        let at = first + PERIOD * u32::try_from(n)?;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let tpl_frag = &tpl.fragments[(n as usize) % tpl.fragments.len()];
        let time = base + n * FRAGMENT;
        let frag = with_time(tpl_frag, time, FRAGMENT);
        chunk(&mut s, &frag).await?;
        s.flush().await?;
        let done = Instant::now();
        sent.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(frag.len() as u64, Ordering::Relaxed);
        if let Some(tx) = &tx {
            let _ = tx.send((time, done));
        }
        n += 1;
    }
    s.write_all(b"0\r\n\r\n").await?;
    let mut answer = [0u8; 256];
    let got = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer[..got]);
    if !text.starts_with("HTTP/1.1 200") && !text.starts_with("HTTP/1.1 204") {
        bail!(
            "push answered {:?}",
            text.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// The end of the audio `StreamIndex`'s timeline: the time after its last
/// listed fragment start, from `t`, `d` and `r`.
pub fn audio_last_time(xml: &str) -> Option<u64> {
    let si = xml
        .split("<StreamIndex")
        .find(|s| s.contains("Type=\"audio\""))?;
    let attr = |tag: &str, name: &str| -> Option<u64> {
        let k = format!(" {name}=\"");
        let i = tag.find(&k)? + k.len();
        tag[i..].split('"').next()?.parse().ok()
    };
    let mut next = 0u64;
    let mut last = None;
    for c in si.split("<c").skip(1) {
        let tag = c.split('>').next()?;
        if let Some(t) = attr(tag, "t") {
            next = t;
        }
        let d = attr(tag, "d")?;
        let r = attr(tag, "r").unwrap_or(1);
        last = Some(next + d * (r - 1));
        next += d * r;
    }
    last
}

/// Times each of a point's audio fragments from sent to named: the first
/// into `into[0]`, the others into `into[1]`.
async fn watch(
    addr: std::net::SocketAddr,
    i: usize,
    mut rx: mpsc::UnboundedReceiver<(u64, Instant)>,
    into: [&Mutex<Vec<Duration>>; 2],
    late: &AtomicU64,
) -> anyhow::Result<()> {
    let mut c = Conn::new(addr);
    let path = format!("/out/bench-sm{i}/live.isml/Manifest");
    // Both pipelines report their audio fragments; the first copy of a
    // time starts the clock, the second is ignored.
    let mut timed = 0u64;
    let mut first = true;
    while let Some((time, sent)) = rx.recv().await {
        if time < timed {
            continue;
        }
        timed = time + 1;
        let delays = into[usize::from(!std::mem::take(&mut first))];
        let give_up = sent + Duration::from_secs(5);
        loop {
            let r = c.request("GET", &path, None, b"").await?;
            if r.status == 200
                && audio_last_time(&String::from_utf8_lossy(&r.body)).is_some_and(|l| l >= time)
            {
                // Named: the answer's head arrived after the server
                // rendered it; the request's send time bounds it from above.
                delays
                    .lock()
                    .await
                    .push(r.sent.saturating_duration_since(sent));
                break;
            }
            if Instant::now() > give_up {
                late.fetch_add(1, Ordering::Relaxed);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_capture_gives_three_video_streams_and_one_audio_stream() {
        let capture = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/smooth/ffmpeg_ismv_push.bin"
        ))
        .unwrap();
        let t = templates(&capture).unwrap();
        assert_eq!(t.len(), 4);
        assert!(String::from_utf8_lossy(&t[1].header).contains("systemBitrate=\"300000\""));
        assert!(!String::from_utf8_lossy(&t[1].header).contains("<audio"));
        assert!(!String::from_utf8_lossy(&t[3].header).contains("<video"));
        assert_eq!(t[0].fragments.len(), 4);
        let f = with_time(&t[3].fragments[0], 123 * FRAGMENT, FRAGMENT);
        let at = f.windows(16).position(|w| w == TFXD).unwrap() + 16;
        assert_eq!(&f[at + 4..at + 12], &(123 * FRAGMENT).to_be_bytes());
    }

    #[test]
    fn the_server_delay_adds_up_the_bench_points_histograms() {
        let page = "# TYPE tandem_smooth_publish_delay_seconds histogram
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm0\",le=\"0.001\"} 50
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm0\",le=\"0.005\"} 99
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm0\",le=\"0.01\"} 100
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm0\",le=\"+Inf\"} 100
tandem_smooth_publish_delay_seconds_sum{channel=\"bench-sm0\"} 0.2
tandem_smooth_publish_delay_seconds_count{channel=\"bench-sm0\"} 100
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm1\",le=\"0.001\"} 0
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm1\",le=\"0.005\"} 98
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm1\",le=\"0.01\"} 100
tandem_smooth_publish_delay_seconds_bucket{channel=\"bench-sm1\",le=\"+Inf\"} 100
tandem_smooth_publish_delay_seconds_count{channel=\"bench-sm1\"} 100
tandem_smooth_publish_delay_seconds_bucket{channel=\"other\",le=\"0.01\"} 9
tandem_smooth_publish_delay_seconds_count{channel=\"other\"} 9
";
        let d = server_delay(page).unwrap();
        assert_eq!((d.points, d.count), (2, 200));
        assert_eq!(d.quantile_edge_ms(0.5), Some(5.0));
        // 197 of 200 within 5 ms: the 99th percentile is at 10 ms.
        assert_eq!(d.quantile_edge_ms(0.99), Some(10.0));
        assert_eq!(d.quantile_edge_ms(0.985), Some(5.0));
        assert!((d.share_within(5.0).unwrap() - 98.5).abs() < 1e-9);
        assert!(server_delay("").is_none());
    }

    #[test]
    fn the_audio_timeline_end_counts_runs() {
        let xml = r#"<StreamIndex Type="video"><c t="0" d="5"/></StreamIndex><StreamIndex Type="audio" Name="audio"><c t="100" d="20" r="3"/><c d="10"/></StreamIndex>"#;
        assert_eq!(audio_last_time(xml), Some(160));
    }
}
