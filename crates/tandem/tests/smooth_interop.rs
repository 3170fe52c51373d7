//! Smooth Streaming with real encoders and a real client: two ffmpeg
//! processes push the same live source (`-f ismv -movflags
//! isml+frag_keyframe`, one long chunked POST each) to pipelines 0 and 1
//! of the demo channel; pipeline 1 is killed with SIGKILL mid-stream. A
//! reader polls the output manifest as a client would and fetches every
//! fragment it names; GStreamer's `mssdemux` plays the manifest meanwhile.
//!
//! ffmpeg sends a POST's body at once and never reads an answer before it
//! ends, so it cannot answer a 401 challenge: the URL carries the input's
//! credentials and `-auth_type basic` makes ffmpeg send them up front.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Tandem, http, peer};

const TFXD: [u8; 16] = [
    0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6, 0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2,
];
/// ffmpeg's fragments with a 2 s GOP, in 100 ns units.
const FRAGMENT: u64 = 20_000_000;

fn push(t: &Tandem, p: usize, src: &Path) -> Child {
    let url = t.url_with_credentials(&t.demo[p], "live.isml/Streams(s1)");
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(src)
        // Encoded, not copied: a copied stream has no bitrate, and a
        // Smooth track needs one (its QualityLevel is named by it).
        .args(["-map", "0", "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-b:v",
            "300k",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-auth_type", "basic"])
        .args(["-f", "ismv", "-movflags", "isml+frag_keyframe"])
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `(stream name, bitrate, time)` of every fragment the manifest names.
fn named(xml: &str) -> Vec<(String, u64, u64)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let tag = format!(" {tag}");
        let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[i..].split('"').next()?.to_owned())
    };
    let mut out = Vec::new();
    for si in xml.split("<StreamIndex").skip(1) {
        let head = si.split('>').next().unwrap();
        let name = attr(head, "Name").unwrap();
        let bitrates: Vec<u64> = si
            .split("<QualityLevel ")
            .skip(1)
            .map(|q| {
                attr(q.split('>').next().unwrap(), "Bitrate")
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let mut next = 0u64;
        for c in si.split("<c ").skip(1) {
            let tag = c.split('>').next().unwrap();
            let d: u64 = attr(tag, "d").unwrap().parse().unwrap();
            if let Some(t) = attr(tag, "t") {
                next = t.parse().unwrap();
            }
            let r: u64 = attr(tag, "r").map_or(1, |r| r.parse().unwrap());
            for _ in 0..r {
                for b in &bitrates {
                    out.push((name.clone(), *b, next));
                }
                next += d;
            }
        }
    }
    out
}

/// The `tfxd` time of the `moof` a fragment starts with.
fn tfxd_time(frag: &[u8]) -> Option<u64> {
    assert_eq!(frag.get(4..8)?, b"moof", "a fragment starts with moof");
    let moof = u32::from_be_bytes(frag.get(..4)?.try_into().ok()?) as usize;
    let at = frag.get(..moof)?.windows(16).position(|w| w == TFXD)? + 16;
    let version = *frag.get(at)?;
    let v = frag.get(at + 4..)?;
    Some(if version == 1 {
        u64::from_be_bytes(v.get(..8)?.try_into().ok()?)
    } else {
        u64::from(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    })
}

fn status(t: &Tandem) -> Value {
    let token = t.token();
    let mut s = std::net::TcpStream::connect(t.addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

/// What a reader saw of the output while pipeline 1 was killed at 10 s.
struct Watched {
    fetched: BTreeSet<(String, u64, u64)>,
    /// Per stream: its last named time and when that last grew.
    advanced: BTreeMap<String, (u64, Instant)>,
    longest_stall: Duration,
    killed_at: Instant,
    last_xml: String,
}

/// Polls the manifest every 500 ms for 32 s, SIGKILLs pipeline 1 at 10 s,
/// checks every manifest (each time once, no hole over two fragments) and
/// fetches every fragment it names (200, tfxd time equal to the URL's).
/// `each` runs after every poll with the fragments fetched so far.
fn watch_kill(
    t: &Tandem,
    encoders: &mut [Option<Child>; 2],
    mut each: impl FnMut(&BTreeSet<(String, u64, u64)>),
) -> Watched {
    let started = Instant::now();
    let mut fetched: BTreeSet<(String, u64, u64)> = BTreeSet::new();
    let mut advanced: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    let mut longest_stall = Duration::ZERO;
    let mut killed_at = None;
    let mut last_xml = String::new();
    while started.elapsed() < Duration::from_secs(32) {
        std::thread::sleep(Duration::from_millis(500));
        if killed_at.is_none() && started.elapsed() > Duration::from_secs(10) {
            let mut c = encoders[1].take().unwrap();
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
            killed_at = Some(Instant::now());
        }
        let (code, body) = http(t.addr, "GET", MANIFEST, None, b"");
        if code != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "no manifest yet: {code}"
            );
            continue;
        }
        let xml = String::from_utf8(body).unwrap();
        let all = named(&xml);
        // Each timestamp once, per stream and bitrate.
        let unique: BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "a time listed twice:\n{xml}");
        // Contiguous: no hole of more than two fragments, anywhere.
        let mut per: BTreeMap<(&str, u64), Vec<u64>> = BTreeMap::new();
        for (n, b, time) in &all {
            per.entry((n, *b)).or_default().push(*time);
        }
        for ((n, _), times) in &per {
            for w in times.windows(2) {
                assert!(w[1] - w[0] <= 3 * FRAGMENT, "{n}: gap {:?}\n{xml}", w);
            }
            let last = *times.last().unwrap();
            let e = advanced
                .entry((*n).to_owned())
                .or_insert((last, Instant::now()));
            if last > e.0 {
                *e = (last, Instant::now());
            } else {
                longest_stall = longest_stall.max(e.1.elapsed());
            }
        }
        for f in all {
            if fetched.contains(&f) {
                continue;
            }
            let url = format!(
                "/out/demo/live.isml/QualityLevels({})/Fragments({}={})",
                f.1, f.0, f.2
            );
            let (code, body) = http(t.addr, "GET", &url, None, b"");
            assert_eq!(code, 200, "{url}");
            assert_eq!(tfxd_time(&body), Some(f.2), "{url}: tfxd time");
            fetched.insert(f);
        }
        last_xml = xml;
        each(&fetched);
    }
    Watched {
        fetched,
        advanced,
        longest_stall,
        killed_at: killed_at.expect("pipeline 1 was killed"),
        last_xml,
    }
}

impl Watched {
    /// The output kept advancing after the kill and never stood still
    /// longer than 5 s.
    fn assert_kept_advancing(&self) {
        let after_kill = self.advanced.values().map(|(_, at)| *at).min().unwrap();
        assert!(
            after_kill > self.killed_at + Duration::from_secs(10),
            "{}",
            self.last_xml
        );
        assert!(
            self.longest_stall <= Duration::from_secs(5),
            "stood still {:?}",
            self.longest_stall
        );
    }
}

const MANIFEST: &str = "/out/demo/live.isml/Manifest";

#[test]
fn two_ffmpeg_pushes_one_killed_serve_one_smooth_output() {
    if !peer("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), 45);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let mut encoders = [Some(push(&t, 0, &src)), Some(push(&t, 1, &src))];
    let w = watch_kill(&t, &mut encoders, |_| {});
    for c in encoders.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
    w.assert_kept_advancing();
    let fetched = &w.fetched;
    let st = status(&t);
    let pp = &st["channels"][0]["publishing_points"][0];
    let c = &pp["counters"];
    eprintln!(
        "smooth kill test: fragments received per pipeline {}, duplicates dropped {}, fills {}, gaps {}, fragments fetched {}; inputs {}",
        c["received"],
        c["duplicates"],
        c["fills"],
        c["gaps"],
        fetched.len(),
        pp["inputs"]
    );
    assert_eq!(c["gaps"], 0, "{pp}");
    assert!(c["duplicates"].as_u64().unwrap() >= 4, "{pp}");
    assert_eq!(pp["inputs"][1], "lost", "{pp}");
}

/// The pts of every video buffer the player's video fakesink got, in
/// seconds, from `gst-launch-1.0 -v` with `silent=false`.
fn video_pts(log: &str) -> Vec<f64> {
    log.lines()
        .filter(|l| l.contains("vbin") && l.contains("chain"))
        .filter_map(|l| {
            let p = l.split("pts: ").nth(1)?.split([',', ')']).next()?;
            let mut secs = 0.0;
            for part in p.trim().split(':') {
                secs = secs * 60.0 + part.parse::<f64>().ok()?;
            }
            Some(secs)
        })
        .collect()
}

/// The `Fragments(video=…)` times `mssdemux` downloaded, from its
/// `adaptivedemux` debug log, in order.
fn video_fragments_fetched(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("Downloading fragment uri:"))
        .filter_map(|l| {
            let t = l.split("Fragments(video=").nth(1)?.split(')').next()?;
            t.parse().ok()
        })
        .collect()
}

/// GStreamer 1.22's `mssdemux` plays a live manifest only through `tfrf`
/// look-ahead boxes: it refuses a live fragment without one (its fragment
/// parser reports "no tfrf box", then asserts on the next buffer). The
/// output writes one into every fragment it serves; the player must run
/// through the kill without an ERROR and render at least 15 s of video,
/// fetching fragment after fragment as the output advances.
#[test]
fn two_ffmpeg_pushes_one_killed_serve_one_smooth_output_that_mssdemux_plays() {
    if !peer("ffmpeg") || !peer("gst-launch-1.0") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), 45);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let mut encoders = [Some(push(&t, 0, &src)), Some(push(&t, 1, &src))];
    let mut player: Option<(Child, Instant)> = None;
    // Files, not pipes: with `-v` the player writes a line per buffer, and
    // a pipe nobody reads until the end would stop it once full.
    let (out_path, err_path) = (dir.path().join("gst.out"), dir.path().join("gst.err"));
    let w = watch_kill(&t, &mut encoders, |fetched| {
        if player.is_none() && fetched.len() >= 2 {
            let uri = format!("http://{}{MANIFEST}", t.addr);
            let child = Command::new("gst-launch-1.0")
                .args(["-v", "playbin", &format!("uri={uri}")])
                .args([
                    "video-sink=fakesink sync=true silent=false",
                    "audio-sink=fakesink sync=true",
                ])
                .env("GST_DEBUG", "adaptivedemux:5")
                .env("GST_DEBUG_NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out_path).unwrap())
                .stderr(std::fs::File::create(&err_path).unwrap())
                .spawn()
                .unwrap();
            player = Some((child, Instant::now()));
        }
    });
    let (mut gst, gst_started) = player.expect("the player started");
    let played_for = gst_started.elapsed();
    let _ = gst.kill();
    let _ = gst.wait();
    let gst_out = std::fs::read_to_string(&out_path).unwrap();
    let gst_err = std::fs::read_to_string(&err_path).unwrap();
    for c in encoders.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
    w.assert_kept_advancing();
    let tail = |s: &str| s.lines().rev().take(30).collect::<Vec<_>>().join("\n");
    // No ERROR message on the bus, nor in the elements' own log.
    let errors: Vec<&str> = gst_out
        .lines()
        .chain(gst_err.lines())
        .filter(|l| l.contains("ERROR") || l.contains("CRITICAL"))
        .take(10)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // It rendered at least 15 s of video...
    let pts = video_pts(&gst_out);
    let span =
        pts.iter().cloned().fold(f64::MIN, f64::max) - pts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(played_for >= Duration::from_secs(16), "{played_for:?}");
    assert!(
        span >= 15.0,
        "played {span:.1} s of video ({} buffers)\n{}",
        pts.len(),
        tail(&gst_out)
    );
    // ...from at least 8 consecutive 2 s fragments: the player kept
    // finding the next fragment as the output grew. (After a manifest
    // refresh `mssdemux` repositions on its current time and may fetch the
    // fragment it stood on again, so times are counted once.)
    let frags: BTreeSet<u64> = video_fragments_fetched(&gst_err).into_iter().collect();
    assert!(frags.len() >= 8, "fetched {frags:?}\n{}", tail(&gst_err));
    let times: Vec<u64> = frags.iter().copied().collect();
    for p in times.windows(2) {
        assert_eq!(
            p[1],
            p[0] + FRAGMENT,
            "a hole in what was fetched: {times:?}"
        );
    }
    let st = status(&t);
    let pp = &st["channels"][0]["publishing_points"][0];
    let c = &pp["counters"];
    eprintln!(
        "smooth kill test: fragments received per pipeline {}, duplicates dropped {}, fills {}, gaps {}, fragments fetched {}, played {span:.1} s of video from {} fragments; inputs {}",
        c["received"],
        c["duplicates"],
        c["fills"],
        c["gaps"],
        w.fetched.len(),
        frags.len(),
        pp["inputs"]
    );
    assert_eq!(c["gaps"], 0, "{pp}");
    assert!(c["duplicates"].as_u64().unwrap() >= 4, "{pp}");
    assert_eq!(pp["inputs"][1], "lost", "{pp}");
}
