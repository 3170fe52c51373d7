//! The client manifest ([MS-SSTR] §2.2.2, the Manifest Response) and the
//! fragment URLs it makes clients ask for (§2.2.3, the Fragment Request).
//!
//! One `StreamIndex` per stream name (in practice one per type: `video`,
//! `audio`, a text track), its `QualityLevel`s ordered from the highest
//! bitrate down, as IIS lists them. The tracks of one stream index share
//! its `c` list: the union of their output times, each once, in order.
//! A time that only some bitrates carry is listed, and those that lack it
//! answer 404 (clients then take another bitrate). `t` is written on the
//! first `c` and after every jump (a gap); `d` always; with minor version
//! 2, a run of equal durations is one `c` with `r` (the count of fragments
//! the element stands for, as GStreamer's `mssdemux` and ExoPlayer read it).
//!
//! A live manifest says `IsLive="TRUE"` with `Duration="0"`,
//! `LookAheadFragmentCount` and `DVRWindowLength`; once the presentation
//! ended it says `IsLive="FALSE"`, its real duration, and omits both (the
//! specification forbids them for on-demand presentations).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::error::FragmentUrlError;
use crate::merge::OutFragment;
use crate::track::{Track, TrackKind, TrackMedia};

/// The presentation-wide timescale: 100 ns units, the specification's
/// default and what every client assumes for `DVRWindowLength`.
pub const TIMESCALE: u64 = 10_000_000;

/// Which manifest minor version to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MinorVersion {
    /// Version 2.0: one `c` per fragment, no `r` (older Silverlight
    /// clients).
    V0,
    /// Version 2.2: runs of equal durations as `r` (a live manifest stays
    /// a few lines long however long the window).
    #[default]
    V2,
}

/// What the client manifest says beyond the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSettings {
    /// `LookAheadFragmentCount`. 2: what IIS Media Services writes; a
    /// client uses it to read `tfrf` boxes in fragments that carry them,
    /// and refreshes the manifest otherwise.
    pub look_ahead_fragment_count: u32,
    pub minor_version: MinorVersion,
}

impl Default for ManifestSettings {
    fn default() -> Self {
        Self {
            look_ahead_fragment_count: 2,
            minor_version: MinorVersion::V2,
        }
    }
}

/// A client's fragment request:
/// `QualityLevels({bitrate})/Fragments({name}={time})`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRequest {
    pub bitrate: u32,
    pub name: String,
    pub time: u64,
}

/// Parses the part of a fragment URL after `{name}.isml/`.
pub fn parse_fragment_url(path: &str) -> Result<FragmentRequest, FragmentUrlError> {
    let shape = || FragmentUrlError::Shape {
        found: path.chars().take(200).collect(),
    };
    let (ql, frag) = path.split_once('/').ok_or_else(shape)?;
    let bitrate = ql
        .strip_prefix("QualityLevels(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(shape)?;
    let inner = frag
        .strip_prefix("Fragments(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(shape)?;
    let (name, time) = inner.split_once('=').ok_or_else(shape)?;
    if name.is_empty() {
        return Err(shape());
    }
    let number = |what: &'static str, s: &str| FragmentUrlError::Number {
        what,
        found: s.chars().take(40).collect(),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(bitrate) {
        return Err(number("bitrate", bitrate));
    }
    if !digits(time) {
        return Err(number("start time", time));
    }
    Ok(FragmentRequest {
        bitrate: bitrate.parse().map_err(|_| number("bitrate", bitrate))?,
        name: name.to_owned(),
        time: time.parse().map_err(|_| number("start time", time))?,
    })
}

/// XML attribute text: validated values need none of this, but nothing
/// reaches the document unescaped.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// `x` units of `from` per second, in units of `to`.
fn rescale(x: u64, from: u64, to: u64) -> u64 {
    let v = u128::from(x) * u128::from(to) / u128::from(from.max(1));
    u64::try_from(v).unwrap_or(u64::MAX)
}

type Fragments = BTreeMap<u64, OutFragment>;
/// A stream index: its tracks, and the union of their times (time → duration).
type StreamTimeline<'a, 'b> = (&'b [(&'a Track, &'a Fragments)], BTreeMap<u64, u64>);

/// The client manifest for these tracks and their output, or `None` while
/// no track has a fragment.
pub(crate) fn write<'a>(
    tracks: impl Iterator<Item = (&'a Track, &'a Fragments)>,
    live: bool,
    dvr_window: Duration,
    s: &ManifestSettings,
) -> Option<String> {
    let mut streams: BTreeMap<(TrackKind, &str), Vec<(&Track, &Fragments)>> = BTreeMap::new();
    for (t, f) in tracks {
        streams.entry((t.kind(), &t.name)).or_default().push((t, f));
    }
    // Each stream index's timeline: the union of its tracks' times.
    let timelines: Vec<StreamTimeline> = streams
        .values()
        .map(|tracks| {
            let mut times = BTreeMap::new();
            for (_, frags) in tracks {
                for f in frags.values() {
                    times.entry(f.time).or_insert(f.duration);
                }
            }
            (tracks.as_slice(), times)
        })
        .filter(|(_, times)| !times.is_empty())
        .collect();
    if timelines.is_empty() {
        return None;
    }
    let duration = if live {
        0
    } else {
        timelines
            .iter()
            .filter_map(|(tracks, times)| {
                let timescale = tracks.first()?.0.timescale;
                let first = *times.keys().next()?;
                let (t, d) = times.iter().next_back()?;
                Some(rescale(t.saturating_add(*d) - first, timescale, TIMESCALE))
            })
            .max()
            .unwrap_or(0)
    };
    let minor = match s.minor_version {
        MinorVersion::V0 => 0,
        MinorVersion::V2 => 2,
    };
    let mut x = String::with_capacity(4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = write!(
        x,
        "<SmoothStreamingMedia MajorVersion=\"2\" MinorVersion=\"{minor}\" TimeScale=\"{TIMESCALE}\" Duration=\"{duration}\""
    );
    if live {
        let dvr = u64::try_from(dvr_window.as_nanos() / 100).unwrap_or(u64::MAX);
        let _ = write!(
            x,
            " IsLive=\"TRUE\" LookAheadFragmentCount=\"{}\" DVRWindowLength=\"{dvr}\"",
            s.look_ahead_fragment_count
        );
    } else {
        x.push_str(" IsLive=\"FALSE\"");
    }
    x.push_str(">\n");
    for (tracks, times) in &timelines {
        write_stream(&mut x, tracks, times, s.minor_version);
    }
    x.push_str("</SmoothStreamingMedia>\n");
    Some(x)
}

fn write_stream(
    x: &mut String,
    tracks: &[(&Track, &Fragments)],
    times: &BTreeMap<u64, u64>,
    minor: MinorVersion,
) {
    let mut levels: Vec<&Track> = tracks.iter().map(|(t, _)| *t).collect();
    levels.sort_by_key(|t| std::cmp::Reverse(t.bitrate));
    let Some(first) = levels.first() else { return };
    let name = esc(&first.name);
    let kind = first.kind();
    let _ = write!(x, "  <StreamIndex Type=\"{kind}\" Name=\"{name}\"");
    if let TrackMedia::Text { subtype } = &first.media {
        let _ = write!(x, " Subtype=\"{}\"", esc(subtype));
    }
    let _ = write!(
        x,
        " Chunks=\"{}\" QualityLevels=\"{}\" Url=\"QualityLevels({{bitrate}})/Fragments({name}={{start time}})\" TimeScale=\"{}\"",
        times.len(),
        levels.len(),
        first.timescale
    );
    if let Some(lang) = levels.iter().find_map(|t| t.language.as_deref()) {
        let _ = write!(x, " Language=\"{}\"", esc(lang));
    }
    if kind == TrackKind::Video {
        let (mut w, mut h, mut dw, mut dh) = (0, 0, 0, 0);
        for t in &levels {
            if let TrackMedia::Video {
                max_width,
                max_height,
                display_width,
                display_height,
                ..
            } = t.media
            {
                w = w.max(max_width);
                h = h.max(max_height);
                dw = dw.max(display_width.unwrap_or(max_width));
                dh = dh.max(display_height.unwrap_or(max_height));
            }
        }
        let _ = write!(
            x,
            " MaxWidth=\"{w}\" MaxHeight=\"{h}\" DisplayWidth=\"{dw}\" DisplayHeight=\"{dh}\""
        );
    }
    x.push_str(">\n");
    for (index, t) in levels.iter().enumerate() {
        let _ = write!(
            x,
            "    <QualityLevel Index=\"{index}\" Bitrate=\"{}\" FourCC=\"{}\" CodecPrivateData=\"{}\"",
            t.bitrate,
            esc(&t.four_cc),
            esc(&t.codec_private_data)
        );
        match &t.media {
            TrackMedia::Video {
                max_width,
                max_height,
                nal_unit_length_field,
                ..
            } => {
                let _ = write!(x, " MaxWidth=\"{max_width}\" MaxHeight=\"{max_height}\"");
                if let Some(n) = nal_unit_length_field {
                    let _ = write!(x, " NALUnitLengthField=\"{n}\"");
                }
            }
            TrackMedia::Audio {
                sampling_rate,
                channels,
                bits_per_sample,
                packet_size,
                audio_tag,
            } => {
                let _ = write!(
                    x,
                    " SamplingRate=\"{sampling_rate}\" Channels=\"{channels}\" BitsPerSample=\"{bits_per_sample}\" PacketSize=\"{packet_size}\" AudioTag=\"{audio_tag}\""
                );
            }
            TrackMedia::Text { .. } => {}
        }
        x.push_str("/>\n");
    }
    for run in runs(times, minor) {
        x.push_str("    <c");
        if let Some(t) = run.t {
            let _ = write!(x, " t=\"{t}\"");
        }
        let _ = write!(x, " d=\"{}\"", run.d);
        if run.r > 1 {
            let _ = write!(x, " r=\"{}\"", run.r);
        }
        x.push_str("/>\n");
    }
    x.push_str("  </StreamIndex>\n");
}

/// One `c` element: `t` when it does not follow on from the one before,
/// `d`, and `r` fragments of that duration back to back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    t: Option<u64>,
    start: u64,
    d: u64,
    r: u64,
}

impl Run {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.d.saturating_mul(self.r))
    }
}

fn runs(times: &BTreeMap<u64, u64>, minor: MinorVersion) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for (&t, &d) in times {
        if let Some(last) = out.last_mut() {
            let follows = last.end() == t;
            if follows && last.d == d && minor == MinorVersion::V2 {
                last.r += 1;
                continue;
            }
            out.push(Run {
                t: (!follows).then_some(t),
                start: t,
                d,
                r: 1,
            });
        } else {
            out.push(Run {
                t: Some(t),
                start: t,
                d,
                r: 1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_urls_parse_into_bitrate_name_and_time() {
        assert_eq!(
            parse_fragment_url("QualityLevels(2962000)/Fragments(video=1585232182000000)"),
            Ok(FragmentRequest {
                bitrate: 2_962_000,
                name: "video".into(),
                time: 1_585_232_182_000_000
            })
        );
        for bad in [
            "QualityLevels(1)/Fragments(video)",
            "QualityLevels(1)/Fragments(=5)",
            "QualityLevels()/Fragments(v=5)",
            "QualityLevels(-1)/Fragments(v=5)",
            "QualityLevels(1)/Fragments(v=+5)",
            "QualityLevels(1)/Fragments(v=99999999999999999999999)",
            "Fragments(v=5)",
            "QualityLevels(1)/Manifest",
        ] {
            assert!(parse_fragment_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn equal_durations_collapse_into_r_and_jumps_carry_t() {
        let times: BTreeMap<u64, u64> = [(0, 2), (2, 2), (4, 2), (6, 1), (10, 2), (12, 2)].into();
        let r = runs(&times, MinorVersion::V2);
        let got: Vec<_> = r.iter().map(|r| (r.t, r.d, r.r)).collect();
        assert_eq!(got, [(Some(0), 2, 3), (None, 1, 1), (Some(10), 2, 2)]);
        let v0 = runs(&times, MinorVersion::V0);
        assert_eq!(v0.len(), 6);
        assert!(v0.iter().all(|r| r.r == 1));
        assert_eq!(v0[4].t, Some(10));
        assert_eq!(v0[1].t, None);
    }
}
