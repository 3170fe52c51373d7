//! A publishing point under test: two encoders pushing 2 s fragments of a
//! video track (and, when asked, audio), with an injected clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tandem_core::Pipeline;
use tandem_smooth::{
    EndOfStream, Event, FragmentNotice, SmoothConfig, SmoothMerge, StreamStart, Track, TrackKey,
    TrackMedia,
};

/// 2 s in the tracks' 100 ns timescale.
pub const D: u64 = 20_000_000;
/// Where MediaLive-style `tfxd` times start: an epoch-based time, far from 0.
pub const T0: u64 = 15_852_321_820_000_000;

pub fn video(bitrate: u32) -> Track {
    Track {
        name: "video".into(),
        bitrate,
        timescale: 10_000_000,
        four_cc: "H264".into(),
        codec_private_data:
            "000000016764001FACD9405005BB011000000300100000030320F18319600000000168EBECB22C".into(),
        language: None,
        media: TrackMedia::Video {
            max_width: 1280,
            max_height: 720,
            display_width: None,
            display_height: None,
            nal_unit_length_field: None,
        },
    }
}

pub fn audio() -> Track {
    Track {
        name: "audio".into(),
        bitrate: 128_000,
        timescale: 10_000_000,
        four_cc: "AACL".into(),
        codec_private_data: "1190".into(),
        language: Some("eng".into()),
        media: TrackMedia::Audio {
            sampling_rate: 48_000,
            channels: 2,
            bits_per_sample: 16,
            packet_size: 4,
            audio_tag: 255,
        },
    }
}

pub fn vkey() -> TrackKey {
    TrackKey::new("video", 1_000_000)
}

pub fn pl(p: usize) -> Pipeline {
    if p == 0 { Pipeline::P0 } else { Pipeline::P1 }
}

pub struct H {
    pub m: SmoothMerge,
    pub t0: Instant,
    pub events: Vec<Event>,
}

impl H {
    pub fn new(cfg: SmoothConfig) -> Self {
        Self {
            m: SmoothMerge::new(cfg),
            t0: Instant::now(),
            events: Vec::new(),
        }
    }

    pub fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn keep(&mut self, ev: Vec<Event>) -> Vec<Event> {
        self.m.check_invariants();
        self.events.extend(ev.iter().cloned());
        ev
    }

    /// Pipeline `p` opens push `stream` (one video track at 1 Mb/s).
    pub fn start(&mut self, secs: f64, p: usize, event: Option<&str>) -> Vec<Event> {
        self.start_tracks(secs, p, "s1", event, vec![video(1_000_000)])
    }

    pub fn start_tracks(
        &mut self,
        secs: f64,
        p: usize,
        stream: &str,
        event: Option<&str>,
        tracks: Vec<Track>,
    ) -> Vec<Event> {
        let start = StreamStart {
            pipeline: pl(p),
            stream: stream.into(),
            event: event.map(Into::into),
            tracks,
        };
        let ev = self.m.on_stream_started(self.at(secs), &start).unwrap();
        self.keep(ev)
    }

    /// Pipeline `p` stores fragment `k` (time T0 + k·D) of the video track.
    pub fn frag(&mut self, secs: f64, p: usize, k: u64) -> Vec<Event> {
        self.frag_at(secs, p, "s1", vkey(), T0 + k * D, D)
    }

    pub fn frag_at(
        &mut self,
        secs: f64,
        p: usize,
        stream: &str,
        track: TrackKey,
        time: u64,
        duration: u64,
    ) -> Vec<Event> {
        let n = FragmentNotice {
            pipeline: pl(p),
            stream: stream.into(),
            storage_key: format!("p{p}/{}/{time}", track.name),
            track,
            time,
            duration,
            bytes: 1000,
        };
        let ev = self.m.on_fragment(self.at(secs), n);
        self.keep(ev)
    }

    pub fn end(&mut self, secs: f64, p: usize) -> Vec<Event> {
        let ev = self
            .m
            .on_stream_ended(self.at(secs), pl(p), "s1", EndOfStream::Eos);
        self.keep(ev)
    }

    pub fn drop_conn(&mut self, secs: f64, p: usize) -> Vec<Event> {
        let ev = self.m.on_connection_dropped(self.at(secs), pl(p), "s1");
        self.keep(ev)
    }

    pub fn tick(&mut self, secs: f64) -> Vec<Event> {
        let ev = self.m.on_tick(self.at(secs));
        self.keep(ev)
    }

    /// The video output as (tfxd time, serving pipeline), in order.
    pub fn out(&self) -> Vec<(u64, usize)> {
        self.m
            .timeline(&vkey())
            .map(|f| (f.time, f.from.index()))
            .collect()
    }

    /// The events of one kind seen so far.
    pub fn seen(&self, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        self.events.iter().filter(|e| pred(e)).cloned().collect()
    }
}

/// The time of video fragment `k`.
pub fn tk(k: u64) -> u64 {
    T0 + k * D
}
