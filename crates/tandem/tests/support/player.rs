//! A player on the merged output: polls a media playlist every 500 ms,
//! downloads each newly named segment once, and checks afterwards what a
//! viewer would notice (a gap, a replay, a jump, a broken segment, a
//! stall).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{http, run};

/// One output position as the reader saw it.
pub struct Position {
    pub uri: String,
    pub bytes: Vec<u8>,
    pub first_seen: Instant,
    /// The output's own EXT-X-PROGRAM-DATE-TIME, in ms.
    pub pdt: Option<i64>,
    pub duration: f64,
    pub discontinuity: bool,
}

#[derive(Default)]
pub struct Seen {
    /// Output media sequence → what the reader saw there.
    pub segments: BTreeMap<u64, Position>,
    /// EXT-X-MEDIA-SEQUENCE of every poll, in order.
    pub media_sequences: Vec<u64>,
    pub errors: Vec<String>,
}

/// Polls `playlist` (an `/out/…` path) until `stop`; segment URIs resolve
/// against its directory.
pub fn reader(
    addr: SocketAddr,
    playlist: &str,
    stop: Arc<AtomicBool>,
) -> (std::thread::JoinHandle<()>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    let playlist = playlist.to_owned();
    let base = playlist[..=playlist.rfind('/').unwrap_or(0)].to_owned();
    let handle = std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = http(addr, "GET", &playlist, None, b"");
            if status == 200 {
                let text = String::from_utf8_lossy(&body).into_owned();
                let pl = tandem_hls::parse_media(&text).unwrap();
                let mut s = out.lock().unwrap();
                s.media_sequences.push(pl.media_sequence);
                for (i, seg) in pl.segments.iter().enumerate() {
                    let n = pl.msn_of(i);
                    if let Some(known) = s.segments.get(&n) {
                        if known.uri != seg.uri {
                            let e =
                                format!("position {n} was {} and is now {}", known.uri, seg.uri);
                            s.errors.push(e);
                        }
                        continue;
                    }
                    let (st, bytes) = http(addr, "GET", &format!("{base}{}", seg.uri), None, b"");
                    if st != 200 {
                        s.errors.push(format!("segment {n} {}: HTTP {st}", seg.uri));
                    }
                    s.segments.insert(
                        n,
                        Position {
                            uri: seg.uri.clone(),
                            bytes,
                            first_seen: Instant::now(),
                            pdt: seg.program_date_time,
                            duration: seg.duration,
                            discontinuity: seg.discontinuity,
                        },
                    );
                }
            } else if status != 404 {
                out.lock()
                    .unwrap()
                    .errors
                    .push(format!("playlist: HTTP {status}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    (handle, seen)
}

impl Seen {
    /// Asserts what a viewer would check, and returns the longest time the
    /// output stood still (the caller knows what its setup allows):
    /// - no error while reading, the media sequence never went back;
    /// - at least `min_segments`, none skipped, each whole MPEG-TS;
    /// - program date-times strictly increase (no moment played twice, none
    ///   back in time), and where the output claims continuity (no
    ///   `EXT-X-DISCONTINUITY`) the next segment starts where the previous
    ///   one ended, within `target_secs`;
    /// - the concatenation decodes with `ffmpeg -v error` printing nothing
    ///   (written to `dir/output.ts`).
    pub fn assert_continuous(&self, dir: &Path, min_segments: usize, target_secs: f64) -> Duration {
        assert!(self.errors.is_empty(), "{:?}", self.errors);
        assert!(
            self.media_sequences.windows(2).all(|w| w[0] <= w[1]),
            "{:?}",
            self.media_sequences
        );
        let first = *self
            .segments
            .keys()
            .next()
            .expect("the output produced segments");
        let last = *self.segments.keys().last().unwrap();
        assert_eq!(
            self.segments.len() as u64,
            last - first + 1,
            "no segment was skipped by the output"
        );
        assert!(
            self.segments.len() >= min_segments,
            "only {} segments, expected at least {min_segments}",
            self.segments.len()
        );
        let mut concat = Vec::new();
        for (n, p) in &self.segments {
            assert!(
                !p.bytes.is_empty() && p.bytes.len() % 188 == 0 && p.bytes[0] == 0x47,
                "segment {n} {} is not whole MPEG-TS ({} bytes)",
                p.uri,
                p.bytes.len()
            );
            concat.extend_from_slice(&p.bytes);
        }
        let positions: Vec<(&u64, &Position)> = self.segments.iter().collect();
        for w in positions.windows(2) {
            let ((a, pa), (b, pb)) = (w[0], w[1]);
            let (ta, tb) = (pa.pdt.unwrap(), pb.pdt.unwrap());
            assert!(
                tb > ta,
                "position {b} ({}) starts at {tb}, not after {a} ({}) at {ta}",
                pb.uri,
                pa.uri
            );
            if !pb.discontinuity {
                let end = ta + (pa.duration * 1000.0).round() as i64;
                assert!(
                    (tb - end).abs() <= (target_secs * 1000.0) as i64,
                    "position {b} ({}) starts {} ms from the end of {a} ({}) with no discontinuity",
                    pb.uri,
                    tb - end,
                    pa.uri
                );
            }
        }
        let file = dir.join("output.ts");
        std::fs::write(&file, &concat).unwrap();
        let (_, _, err) = run(Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"]));
        assert_eq!(err, "", "ffmpeg -v error on the concatenated output");
        let appeared: Vec<Instant> = self.segments.values().map(|p| p.first_seen).collect();
        appeared
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}
