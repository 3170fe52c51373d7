//! Smooth Streaming publishing points over raw HTTP: the captured ffmpeg
//! push (testdata/smooth/ffmpeg_ismv_push.bin) replayed on both pipelines,
//! whole, cut, and corrupted, and the merged output read back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime};

use support::{TestServer, metric_value, scrape};
use tokio::io::AsyncWriteExt;

const PUSH: &str = "/pub.isml/Streams(s1)";

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/smooth/ffmpeg_ismv_push.bin"
    ))
    .unwrap()
}

/// Top-level boxes of the fixture: (offset, size, type).
fn boxes(b: &[u8]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= b.len() {
        let size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        out.push((
            at,
            size,
            String::from_utf8_lossy(&b[at + 4..at + 8]).into_owned(),
        ));
        at += size;
    }
    out
}

/// The fixture's fragments in order: (track name, tfxd time, moof+mdat).
/// ffmpeg alternates video and audio, four of each (testdata/smooth/README.md).
fn fragments(b: &[u8]) -> Vec<(&'static str, u64, Vec<u8>)> {
    let video = [0, 20_000_000, 40_000_000, 60_000_000];
    let audio = [
        18_446_744_073_709_338_283,
        20_053_333,
        40_106_667,
        60_160_000,
    ];
    let bx = boxes(b);
    let moofs: Vec<_> = bx
        .iter()
        .enumerate()
        .filter(|(_, x)| x.2 == "moof")
        .collect();
    moofs
        .iter()
        .enumerate()
        .map(|(i, (j, m))| {
            let mdat = &bx[j + 1];
            let (name, time) = if i % 2 == 0 {
                ("video", video[i / 2])
            } else {
                ("audio", audio[i / 2])
            };
            (name, time, b[m.0..mdat.0 + mdat.1].to_vec())
        })
        .collect()
}

/// A fragment's `tfxd` duration.
fn duration_of(frag: &[u8]) -> u64 {
    let size = u32::from_be_bytes(frag[..4].try_into().unwrap()) as u64;
    let h = tandem_mp4::BoxHeader {
        offset: 0,
        box_type: tandem_mp4::BoxType::FourCc(tandem_mp4::FourCc::MOOF),
        size,
        header_len: 8,
        size_field: tandem_mp4::SizeField::Compact,
    };
    let m = tandem_mp4::boxes::MovieFragment::parse(h, &frag[8..size as usize]).unwrap();
    m.track_fragments[0].tfxd.unwrap().duration
}

fn chunked(body: &[u8], chunk: usize, end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    if end {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    out
}

async fn new_channel(s: &TestServer, name: &str) {
    let id = tandem_core::ChannelId::parse(name).unwrap();
    s.state
        .create_channel(&id, SystemTime::now())
        .await
        .unwrap();
}

/// POSTs `body` chunked, as ffmpeg does, and reads the answer.
async fn push(s: &TestServer, ch: &str, p: usize, body: &[u8]) -> support::Resp {
    let auth = s.basic(ch, p);
    s.send(
        "POST",
        &format!("/in/{ch}/{p}{PUSH}"),
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        &chunked(body, 32_768, true),
    )
    .await
}

/// POSTs the first `cut` bytes of `body` chunked, then closes the
/// connection without the last chunk: a broken-off push.
async fn push_cut(s: &TestServer, ch: &str, p: usize, body: &[u8], cut: usize) {
    let auth = s.basic(ch, p);
    let head = format!(
        "POST /in/{ch}/{p}{PUSH} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr
    );
    let mut c = s.connect().await;
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&chunked(&body[..cut], 32_768, false))
        .await
        .unwrap();
    c.flush().await.unwrap();
    drop(c);
    // Handled: the push is counted as broken off.
    let series = format!(
        "tandem_smooth_pushes_broken_total{{channel=\"{ch}\",pipeline=\"{p}\",reason=\"incomplete\"}}"
    );
    let mut seen = false;
    for _ in 0..200 {
        if metric_value(&scrape(s).await, &series).is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the cut push was handled");
}

/// `(stream name, time)` of every `c` element, `t`/`d`/`r` expanded.
fn manifest_times(xml: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for si in xml.split("<StreamIndex").skip(1) {
        let attr = |tag: &str, name: &str| -> Option<String> {
            let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(tag[i..].split('"').next()?.to_owned())
        };
        let head = si.split('>').next().unwrap();
        let name = attr(head, "Name").unwrap();
        let mut next = 0u64;
        for c in si.split("<c ").skip(1) {
            let tag = format!(" {}", c.split('>').next().unwrap());
            let tag = tag.as_str();
            let d: u64 = attr(tag, "d").unwrap().parse().unwrap();
            if let Some(t) = attr(tag, "t") {
                next = t.parse().unwrap();
            }
            let r: u64 = attr(tag, "r").map_or(1, |r| r.parse().unwrap());
            for _ in 0..r {
                out.push((name.clone(), next));
                next += d;
            }
        }
    }
    out
}

async fn manifest(s: &TestServer, ch: &str) -> support::Resp {
    s.send("GET", &format!("/out/{ch}/pub.isml/Manifest"), &[], b"")
        .await
}

/// Polls the manifest (advancing the test clock by `step` each round)
/// until `want` holds.
async fn manifest_until(
    s: &TestServer,
    ch: &str,
    step: Duration,
    want: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    for _ in 0..300 {
        let r = manifest(s, ch).await;
        if r.status == 200 {
            last = r.text();
            if want(&last) {
                return last;
            }
        }
        if let Some(c) = &s.clock {
            c.advance(step);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("manifest never got there: {last}");
}

fn expected_times() -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = [0, 20_000_000, 40_000_000, 60_000_000]
        .iter()
        .map(|t| ("video".to_owned(), *t))
        .collect();
    // The first AAC fragment starts before 0 (encoder priming): skipped.
    v.extend(
        [20_053_333, 40_106_667, 60_160_000]
            .iter()
            .map(|t| ("audio".to_owned(), *t)),
    );
    v.sort();
    v
}

#[tokio::test]
async fn two_pipelines_one_cut_mid_fragment_give_one_whole_output() {
    let s = TestServer::start_clocked(|_| {}).await;
    new_channel(&s, "sm").await;
    let body = fixture();
    let frags = fragments(&body);
    // Pipeline 1 breaks off halfway through its fifth fragment (video at 4 s).
    let bx = boxes(&body);
    let fifth = bx.iter().filter(|b| b.2 == "moof").nth(4).unwrap();
    push_cut(&s, "sm", 1, &body, fifth.0 + fifth.1 + 100).await;
    // Nothing of the cut fragment was published.
    let stored = |p: usize| -> Vec<String> {
        let mut names = Vec::new();
        for dir in ["video/150000", "audio/64000"] {
            if let Ok(rd) = std::fs::read_dir(s.on_disk(&format!("sm/{p}/pub.isml/{dir}"))) {
                names.extend(rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
            }
        }
        names.sort();
        names
    };
    let p1 = stored(1);
    assert_eq!(p1.len(), 3, "video 0 and 2 s, audio 2 s: {p1:?}");
    assert!(!p1.iter().any(|n| n.starts_with("40000000-")), "{p1:?}");
    // The cut fragment's staged bytes are discarded when its writer is
    // dropped, which may finish just after the push is counted as broken.
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "no partial fragment left behind: {} staged",
        s.staged_files()
    );

    let r = push(&s, "sm", 0, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Pipeline 0 ended with mfra; pipeline 1 is waited for until lost.
    let xml = manifest_until(&s, "sm", Duration::from_millis(500), |x| {
        let mut got = manifest_times(x);
        got.sort();
        got == expected_times()
    })
    .await;
    assert!(xml.contains("IsLive=\"TRUE\""), "{xml}");
    let served: Vec<_> = frags.iter().filter(|f| f.1 < 1 << 63).collect();
    for (i, (name, time, bytes)) in served.iter().enumerate() {
        let bitrate = if *name == "video" { 150_000 } else { 64_000 };
        let r = s
            .send(
                "GET",
                &format!("/out/sm/pub.isml/QualityLevels({bitrate})/Fragments({name}={time})"),
                &[],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{name} {time}: {}", r.text());
        // The encoder's moof+mdat, with a tfrf naming the (up to two)
        // fragments that follow in this track's output.
        let ahead: Vec<(u64, u64)> = served[i + 1..]
            .iter()
            .filter(|f| f.0 == *name)
            .take(2)
            .map(|f| (f.1, duration_of(&f.2)))
            .collect();
        let tfrf = tandem_mp4::Tfrf {
            version: 1,
            entries: ahead.clone(),
        };
        assert_eq!(
            r.body,
            tandem_mp4::with_tfrf(bytes, &tfrf).unwrap(),
            "{name} {time}: the encoder's fragment with the look-ahead {ahead:?}"
        );
        // Final bytes are immutable; a fragment still waiting for its
        // successors changes, and is cached as briefly as the manifest.
        let cache = r.header("cache-control").unwrap();
        if ahead.len() == 2 {
            assert!(cache.contains("immutable"), "{name} {time}: {cache}");
        } else {
            assert_eq!(cache, "public, max-age=1", "{name} {time}");
        }
    }
    let r = s
        .send(
            "GET",
            "/out/sm/pub.isml/QualityLevels(150000)/Fragments(video=1)",
            &[],
            b"",
        )
        .await;
    assert_eq!(r.status, 404);
    // The counters say where each fragment came from.
    let st = s
        .send(
            "GET",
            "/api/v1/status",
            &[("Authorization", &format!("Bearer {}", s.state.admin_token))],
            b"",
        )
        .await;
    let v: serde_json::Value = serde_json::from_slice(&st.body).unwrap();
    let ch = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "sm")
        .unwrap();
    let pp = &ch["publishing_points"][0];
    assert_eq!(pp["name"], "pub");
    assert_eq!(
        pp["counters"]["received"],
        serde_json::json!([7, 3]),
        "{pp}"
    );
    assert_eq!(pp["counters"]["duplicates"], 3, "{pp}");
}

#[tokio::test]
async fn both_encoders_ending_ends_the_manifest() {
    let s = TestServer::start(|_| {}).await;
    new_channel(&s, "end").await;
    let body = fixture();
    for p in [0, 1] {
        let r = push(&s, "end", p, &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let xml = manifest_until(&s, "end", Duration::ZERO, |x| {
        x.contains("IsLive=\"FALSE\"")
    })
    .await;
    let mut got = manifest_times(&xml);
    got.sort();
    assert_eq!(got, expected_times());
}

#[tokio::test]
async fn an_empty_post_is_a_probe_and_answers_200() {
    let s = TestServer::start(|_| {}).await;
    let auth = s.basic("demo", 0);
    let r = s
        .send(
            "POST",
            &format!("/in/demo/0{PUSH}"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(manifest(&s, "demo").await.status, 404, "nothing published");
}

#[tokio::test]
async fn a_push_without_credentials_is_refused_before_its_body() {
    let s = TestServer::start(|_| {}).await;
    let r = s
        .send(
            "POST",
            &format!("/in/demo/0{PUSH}"),
            &[("Transfer-Encoding", "chunked")],
            &chunked(&fixture(), 32_768, true),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(!r.all("www-authenticate").is_empty());
    assert!(!s.on_disk("demo/0/pub.isml").exists());
}

/// Pushes `bad` on pipeline 0 and the fixture whole on pipeline 1: the
/// bad one gets `status`, the good one's output is whole.
async fn bad_push(
    tweak: impl FnOnce(&mut tandem_server::ServerConfig),
    ch: &str,
    bad: &[u8],
    status: u16,
    reason: &str,
) -> TestServer {
    let s = TestServer::start(tweak).await;
    new_channel(&s, ch).await;
    let r = push(&s, ch, 0, bad).await;
    assert_eq!(r.status, status, "{}", r.text());
    let series = format!(
        "tandem_smooth_pushes_broken_total{{channel=\"{ch}\",pipeline=\"0\",reason=\"{reason}\"}}"
    );
    assert_eq!(
        metric_value(&scrape(&s).await, &series),
        Some(1.0),
        "{series}"
    );
    let r = push(&s, ch, 1, &fixture()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    manifest_until(&s, ch, Duration::ZERO, |x| {
        let mut got = manifest_times(x);
        got.sort();
        got == expected_times()
    })
    .await;
    // The driver saves its state after the manifest shows the fragments,
    // so its staged state file may still be on its way to its place.
    assert!(
        s.eventually(|| s.staged_files() == 0).await,
        "nothing left in staging: {} staged",
        s.staged_files()
    );
    s
}

#[tokio::test]
async fn a_body_that_is_not_iso_bmff_is_415() {
    let s = bad_push(
        |_| {},
        "b1",
        b"#EXTM3U\n#EXT-X-VERSION:3\n",
        415,
        "not_smooth",
    )
    .await;
    assert!(!s.on_disk("b1/0/pub.isml").exists());
}

#[tokio::test]
async fn a_box_over_the_body_limit_is_413_and_publishes_nothing() {
    // The first moof says it is 2 GiB, over the 256 MiB default.
    let mut body = fixture();
    let moof = boxes(&body).into_iter().find(|b| b.2 == "moof").unwrap();
    body[moof.0..moof.0 + 4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let s = bad_push(|_| {}, "b2", &body, 413, "too_large").await;
    assert!(!s.on_disk("b2/0/pub.isml").exists());
}

#[tokio::test]
async fn a_fragment_without_tfxd_ends_the_push_and_keeps_what_came_before() {
    let mut body = fixture();
    let frags = fragments(&body);
    // Third fragment (video at 2 s): its tfxd uuid no longer is one.
    let tfxd_uuid = [0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6];
    let start = body
        .windows(8)
        .enumerate()
        .filter(|(_, w)| *w == tfxd_uuid)
        .nth(2)
        .unwrap()
        .0;
    assert!(start > frags[1].2.len());
    body[start] ^= 0xff;
    let s = bad_push(|_| {}, "b3", &body, 422, "no_tfxd").await;
    let mut names: Vec<_> = std::fs::read_dir(s.on_disk("b3/0/pub.isml/video/150000"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("0-"), "{names:?}");
}

#[tokio::test]
async fn times_that_go_back_inside_one_push_end_it() {
    let body = fixture();
    let bx = boxes(&body);
    let moofs: Vec<_> = bx.iter().filter(|b| b.2 == "moof").collect();
    // Header and the first two pairs, then the first pair again.
    let mut bad = body[..moofs[4].0].to_vec();
    bad.extend_from_slice(&body[moofs[0].0..moofs[2].0]);
    bad.extend_from_slice(&body[moofs[4].0..]);
    bad_push(|_| {}, "b4", &bad, 422, "time_backwards").await;
}

#[tokio::test]
async fn a_fragment_of_a_track_moov_does_not_list_is_refused() {
    let mut body = fixture();
    let bx = boxes(&body);
    let moof = bx.iter().find(|b| b.2 == "moof").unwrap();
    let tfhd = body[moof.0..moof.0 + moof.1]
        .windows(4)
        .position(|w| w == b"tfhd")
        .unwrap()
        + moof.0;
    // tfhd: type, version+flags, track_ID.
    body[tfhd + 8..tfhd + 12].copy_from_slice(&9u32.to_be_bytes());
    let s = bad_push(|_| {}, "b5", &body, 422, "unknown_track").await;
    assert!(!s.on_disk("b5/0/pub.isml/video").exists());
}
