//! The harness of the engine's scenario tests: encoders that write
//! playlists, and an engine driven on an injected clock.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use tandem_core::Pipeline::{P0, P1};
use tandem_core::{InputState, Pipeline};
use tandem_hls::merge::Event;
use tandem_hls::{MergeConfig, RenditionMerge, SwitchReason, parse_media};

/// 2026-11-25T04:00:00Z in milliseconds.
pub const BASE_PDT: i64 = 1_795_579_200_000;

pub struct Encoder {
    /// Media sequence of segment k is k + msn_offset.
    pub msn_offset: u64,
    /// PDT of segment k is BASE_PDT + 2000 k + pdt_skew_ms (None: no PDT).
    pub pdt_skew_ms: Option<i64>,
    pub window: u64,
    /// fMP4: the init section's URI, named by `EXT-X-MAP` above the first
    /// segment of each playlist (as ffmpeg writes it); segments are `.m4s`.
    pub init: Option<&'static str>,
    /// Encrypted with a key that rotates every this many segments: segment
    /// k uses `k{k / n}.key`, named above the first segment of each
    /// playlist and where it changes.
    pub key_every: Option<u64>,
}

impl Encoder {
    pub fn plain() -> Self {
        Self {
            msn_offset: 0,
            pdt_skew_ms: None,
            window: 3,
            init: None,
            key_every: None,
        }
    }

    /// An fMP4 (CMAF) encoder whose playlists name `init`.
    pub fn fmp4(init: &'static str) -> Self {
        Self {
            init: Some(init),
            ..Self::plain()
        }
    }

    pub fn pdt(skew: i64) -> Self {
        Self {
            msn_offset: 0,
            pdt_skew_ms: Some(skew),
            window: 3,
            init: None,
            key_every: None,
        }
    }

    /// The playlist after segment `last` (counted from 0) was written.
    pub fn playlist(&self, first_k: u64, last: u64) -> String {
        let start = last.saturating_sub(self.window - 1).max(first_k);
        let mut t = format!(
            "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            if self.init.is_some() { 7 } else { 3 },
            start + self.msn_offset
        );
        for k in start..=last {
            if let Some(init) = self.init.filter(|_| k == start) {
                t.push_str(&format!("#EXT-X-MAP:URI=\"{init}\"\n"));
            }
            if let Some(n) = self.key_every.filter(|n| k == start || k % n == 0) {
                t.push_str(&format!(
                    "#EXT-X-KEY:METHOD=AES-128,URI=\"k{}.key\"\n",
                    k / n
                ));
            }
            if let Some(skew) = self.pdt_skew_ms {
                t.push_str(&format!(
                    "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                    tandem_hls::playlist::format_pdt(BASE_PDT + 2000 * k as i64 + skew)
                ));
            }
            let ext = if self.init.is_some() { "m4s" } else { "ts" };
            t.push_str(&format!("#EXTINF:2.000,\na{}.{ext}\n", k + self.msn_offset));
        }
        t
    }
}

pub struct H {
    pub m: RenditionMerge,
    pub t0: Instant,
    pub events: Vec<Event>,
}

impl H {
    pub fn new(cfg: MergeConfig) -> Self {
        Self {
            m: RenditionMerge::new(cfg),
            t0: Instant::now(),
            events: Vec::new(),
        }
    }

    pub fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Pipeline `p` stores every segment of `text` except `missing`, then
    /// publishes the playlist, at `secs`.
    pub fn feed(&mut self, secs: f64, p: Pipeline, text: &str, missing: &[&str]) {
        let now = self.at(secs);
        let pl = parse_media(text).unwrap();
        for s in &pl.segments {
            if !missing.contains(&s.uri.as_str()) {
                let ev = self.m.on_segment_stored(now, p, &s.uri);
                self.events.extend(ev);
            }
        }
        let ev = self.m.on_playlist(now, p, &pl);
        self.events.extend(ev);
        self.m.check_invariants();
    }

    /// The process restarts at `secs`: the state is saved as JSON, as the
    /// output driver keeps it, and a new engine continues from it.
    pub fn restart(&mut self, secs: f64) {
        let json = serde_json::to_string(&self.m.save()).unwrap();
        let saved: tandem_hls::SavedMerge = serde_json::from_str(&json).unwrap();
        let before = self.out();
        self.m = RenditionMerge::restore(self.m.config().clone(), &saved, self.at(secs)).unwrap();
        self.m.check_invariants();
        assert_eq!(
            self.out(),
            before,
            "a restored engine serves the same playlist"
        );
    }

    pub fn tick(&mut self, secs: f64) {
        let ev = self.m.on_tick(self.at(secs));
        self.events.extend(ev);
        self.m.check_invariants();
    }

    pub fn out(&self) -> String {
        self.m
            .playlist(|s| format!("p{}/{}", s.from, s.source_uri))
            .map(|p| p.serialize())
            .unwrap_or_default()
    }

    /// The output window as the engine holds it: each segment's media
    /// sequence number and `p{pipeline}/{source uri}`.
    pub fn window(&self) -> Vec<(u64, String)> {
        self.m
            .segments()
            .map(|s| (s.media_sequence, format!("p{}/{}", s.from, s.source_uri)))
            .collect()
    }

    pub fn switches(&self) -> Vec<(Option<Pipeline>, Pipeline, SwitchReason, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Switched {
                    from,
                    to,
                    reason,
                    discontinuity,
                    ..
                } => Some((*from, *to, *reason, *discontinuity)),
                _ => None,
            })
            .collect()
    }

    pub fn states(&self, p: Pipeline) -> Vec<InputState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::InputStateChanged { pipeline, to, .. } if *pipeline == p => Some(*to),
                _ => None,
            })
            .collect()
    }
}

/// For each segment of an output playlist's text: its URI, and the MAP
/// and KEY lines a reader of this text alone has in effect for it (the
/// last of each kind above its URI; the tests use one key format).
pub fn in_effect(text: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let (mut map, mut key) = (None, None);
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        if line.starts_with("#EXT-X-MAP:") {
            map = Some(line.to_owned());
        } else if line.starts_with("#EXT-X-KEY:") {
            key = Some(line.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.to_owned(), map.clone(), key.clone()));
        }
    }
    out
}

/// Both pipelines run segments 0..=last (segment k at t = 2k + 0.1 s, P1
/// 0.1 s after P0).
pub fn run_both(h: &mut H, e0: &Encoder, e1: &Encoder, from: u64, last: u64) {
    for k in from..=last {
        let t = 2.0 * k as f64;
        h.feed(t, P0, &e0.playlist(0, k), &[]);
        h.feed(t + 0.1, P1, &e1.playlist(0, k), &[]);
    }
}
