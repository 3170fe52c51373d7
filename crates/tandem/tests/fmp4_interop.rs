//! fMP4 (CMAF) HLS from real encoders: two ffmpeg pipelines push
//! `-hls_segment_type fmp4` over HTTP PUT with a three-segment window, and
//! name their init section only above the first segment of each playlist.
//! A player that joins the merged output several windows later must find
//! `EXT-X-MAP` above the first segment, fetch the init section (200), and
//! decode from there: the init section and the segments it reads, and
//! ffmpeg itself reading the output as a live HLS client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Tandem, http, peer, run};

const PLAYLIST: &str = "/out/demo/live/channel.m3u8";

#[test]
fn a_player_joining_an_fmp4_output_after_several_windows_finds_and_decodes_the_init_section() {
    if !peer("ffmpeg") || !peer("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = support::make_source(dir.path(), 50);
    let t = Tandem::start(&dir.path().join("data"), &[]);
    let mut encoders: Vec<_> = (0..2)
        .map(|p| {
            if p == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            let url = t.url_with_credentials(&t.demo[p], "live/channel.m3u8");
            // The later -hls_list_size wins: three segments a window. The
            // source's ADTS AAC must become MP4's.
            support::ffmpeg_hls(
                &src,
                &[
                    "-hls_segment_type",
                    "fmp4",
                    "-hls_list_size",
                    "3",
                    "-bsf:a",
                    "aac_adtstoasc",
                    "-method",
                    "PUT",
                ],
                &url,
            )
        })
        .collect();
    // Join once three whole windows have slid past (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let (status, body) = http(t.addr, "GET", PLAYLIST, None, b"");
        let text = String::from_utf8_lossy(&body).into_owned();
        if status == 200 && tandem_hls::parse_media(&text).is_ok_and(|pl| pl.media_sequence >= 9) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the output never slid three windows; last answer {status}:\n{text}\nlog:\n{}",
            std::fs::read_to_string(&t.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let pl = tandem_hls::parse_media(&text).unwrap();
    let first = pl.segments.first().unwrap();
    let map = first
        .tags
        .iter()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|u| u.split('"').next())
        .unwrap_or_else(|| {
            let input = std::fs::read_to_string(t.object("demo/0/live/channel.m3u8"));
            panic!(
                "no EXT-X-MAP above the first segment:\n{text}\npipeline 0 published:\n{input:?}"
            )
        });
    assert_eq!(map, "init.mp4", "{text}");
    let base = &PLAYLIST[..=PLAYLIST.rfind('/').unwrap()];
    let (status, init) = http(t.addr, "GET", &format!("{base}{map}"), None, b"");
    assert_eq!(status, 200, "the init section of\n{text}");
    let sent: Vec<Vec<u8>> = (0..2)
        .filter_map(|p| std::fs::read(t.object(&format!("demo/{p}/live/init.mp4"))).ok())
        .collect();
    assert!(
        sent.contains(&init),
        "the init section served is one an encoder uploaded"
    );
    // The init section and the segments of that playlist decode.
    let mut joined = init.clone();
    for s in &pl.segments {
        let (status, bytes) = http(t.addr, "GET", &format!("{base}{}", s.uri), None, b"");
        assert_eq!(status, 200, "{}", s.uri);
        joined.extend_from_slice(&bytes);
    }
    let file = dir.path().join("joined.mp4");
    std::fs::write(&file, &joined).unwrap();
    let (_, frames, err) = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&file));
    assert_eq!(err, "", "ffprobe on the init section and segments");
    let frames: usize = frames.trim().parse().unwrap_or(0);
    // 25 frames a second, 2 s segments.
    assert!(
        frames >= 45 * pl.segments.len(),
        "{frames} frames from {} segments",
        pl.segments.len()
    );
    // ffmpeg as a live HLS client of the output: 4 s of video decoded.
    let mut client = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(format!("http://{}{PLAYLIST}", t.addr))
        .args(["-map", "0:v", "-t", "4", "-f", "framecrc", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let mut stderr = client.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        (out, err)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = client.kill();
    let _ = client.wait();
    let (crc, err) = reading.join().unwrap();
    for e in &mut encoders {
        let _ = e.kill();
        let _ = e.wait();
    }
    assert_eq!(err, "", "ffmpeg reading the output as HLS");
    let decoded = crc.lines().filter(|l| !l.starts_with('#')).count();
    eprintln!(
        "joined at media sequence {}: {frames} frames from the init section and {} segments; ffmpeg as HLS client decoded {decoded} frames",
        pl.media_sequence,
        pl.segments.len()
    );
    assert!(
        decoded >= 90,
        "ffmpeg decoded {decoded} frames of 4 s:\n{crc}"
    );
}
