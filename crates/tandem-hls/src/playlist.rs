//! HLS media playlists (RFC 8216 §4.3, and its successor draft), parsed into
//! typed values without losing a line.
//!
//! Written here because the crates at hand (m3u8-rs, hls_m3u8) do not round
//! trip: they reorder and rewrite attribute values, drop comments, and
//! m3u8-rs drops every tag after the last segment. The merge engine must
//! forward encoder tags (SCTE-35 cues, DATERANGE, KEY, MAP, unknown ones)
//! byte-exact, so each segment keeps the raw lines that preceded its URI and
//! the playlist keeps its raw header and trailer; the typed fields are views
//! parsed from those lines.

use std::fmt::Write;

/// Why a playlist was refused. Lines are 1-based.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaylistError {
    #[error("line {line}: missing #EXTM3U header; is this an HLS playlist?")]
    NotHls { line: usize },
    #[error("line {line}: {tag} expects {expected}, found {found:?}")]
    BadValue {
        line: usize,
        tag: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("line {line}: segment URI {uri:?} has no #EXTINF")]
    MissingExtinf { line: usize, uri: String },
    #[error(
        "line {line}: segment URI {uri:?} starts with '#' once its white space is trimmed; \
         such a URI names the playlist itself, and a line starting with '#' is a tag or comment (RFC 8216 §4.1)"
    )]
    UriIsFragment { line: usize, uri: String },
    #[error("line {line}: tags after the last segment's #EXTINF lack its URI")]
    DanglingExtinf { line: usize },
    #[error("no #EXT-X-TARGETDURATION: a media playlist needs one")]
    MissingTargetDuration,
    #[error("this is a multivariant playlist, not a media playlist")]
    Multivariant,
    #[error("the playlist is not UTF-8")]
    NotUtf8,
}

/// One media segment: its URI, the typed facts about it, and the raw tag
/// lines that preceded its URI, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    /// Seconds, from `#EXTINF`.
    pub duration: f64,
    /// `#EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
    /// Milliseconds since the Unix epoch, from `#EXT-X-PROGRAM-DATE-TIME`:
    /// on this segment, or carried from an earlier one by adding durations
    /// (RFC 8216 §4.3.2.6).
    pub program_date_time: Option<i64>,
    /// Every line before the URI (tags, comments), byte-exact, except
    /// `#EXT-X-DISCONTINUITY`, which the serializer writes from the flag.
    pub tags: Vec<String>,
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    /// Seconds.
    pub target_duration: u64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub endlist: bool,
    /// Header lines other than `#EXTM3U`, `#EXT-X-TARGETDURATION`,
    /// `#EXT-X-MEDIA-SEQUENCE`, `#EXT-X-DISCONTINUITY-SEQUENCE` (written from
    /// the typed fields): `#EXT-X-VERSION`, `#EXT-X-INDEPENDENT-SEGMENTS`,
    /// unknown tags, in order.
    pub header: Vec<String>,
    pub segments: Vec<Segment>,
    /// Lines after the last segment other than `#EXT-X-ENDLIST` (LL-HLS
    /// preload hints, rendition reports), in order.
    pub trailer: Vec<String>,
}

impl MediaPlaylist {
    /// The media sequence number of `segments[i]`.
    pub fn msn_of(&self, i: usize) -> u64 {
        self.media_sequence + i as u64
    }

    /// The playlist as text, `#EXTM3U` first, one line per `\n`.
    pub fn serialize(&self) -> String {
        let mut out = String::with_capacity(64 + self.segments.len() * 96);
        out.push_str("#EXTM3U\n");
        let mut header = self.header.iter().peekable();
        // EXT-X-VERSION conventionally comes first; keep it there.
        if let Some(v) = header.peek().filter(|l| l.starts_with("#EXT-X-VERSION:")) {
            let _ = writeln!(out, "{v}");
            header.next();
        }
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for l in header {
            let _ = writeln!(out, "{l}");
        }
        let mut pdt_carried: Option<i64> = None;
        for s in &self.segments {
            if s.discontinuity {
                out.push_str(DISCONTINUITY);
                out.push('\n');
            }
            // A reader must be able to derive every segment's PDT: add the
            // tag where the segment lacks one and it does not follow from the
            // previous segment (first in the window, after a discontinuity).
            if let Some(pdt) = s.program_date_time {
                let has_tag = s
                    .tags
                    .iter()
                    .any(|t| t.starts_with("#EXT-X-PROGRAM-DATE-TIME:"));
                if !has_tag && (s.discontinuity || pdt_carried.is_none_or(|c| (c - pdt).abs() > 1))
                {
                    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", format_pdt(pdt));
                }
                pdt_carried = Some(pdt + (s.duration * 1000.0).round() as i64);
            } else {
                pdt_carried = None;
            }
            for t in &s.tags {
                let _ = writeln!(out, "{t}");
            }
            let _ = writeln!(out, "{}", s.uri);
        }
        for l in &self.trailer {
            let _ = writeln!(out, "{l}");
        }
        if self.endlist {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// Whether the text is a multivariant playlist (has `#EXT-X-STREAM-INF`).
pub fn is_multivariant(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("#EXT-X-STREAM-INF"))
}

/// The URIs a playlist's text refers to: every `URI="…"` attribute of a
/// tag (`EXT-X-MAP`, `EXT-X-KEY`, `EXT-X-MEDIA`, `EXT-X-I-FRAME-STREAM-INF`,
/// `EXT-X-SESSION-KEY` …) and, when `with_uri_lines`, every URI line (the
/// variants of a multivariant playlist). In order of appearance.
pub fn referenced_uris(text: &str, with_uri_lines: bool) -> Vec<&str> {
    let mut uris = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            if with_uri_lines {
                uris.push(line);
            }
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("URI=\"") {
            // An attribute name starts the list or follows a comma or colon.
            let starts_attr = at == 0 || matches!(rest.as_bytes().get(at - 1), Some(b',' | b':'));
            let after = &rest[at + 5..];
            let Some(end) = after.find('"') else { break };
            if starts_attr {
                uris.push(&after[..end]);
            }
            rest = &after[end + 1..];
        }
    }
    uris
}

fn tag_value<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.strip_prefix(tag)?.strip_prefix(':')
}

/// The tag whose presence a segment carries as its `discontinuity` flag.
const DISCONTINUITY: &str = "#EXT-X-DISCONTINUITY";

/// Parses a media playlist (RFC 8216 §4.3.3, §4.3.2).
pub fn parse_media(text: &str) -> Result<MediaPlaylist, PlaylistError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .enumerate()
        .map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, l)) if l.trim_end() == "#EXTM3U" => {}
        Some((line, _)) => return Err(PlaylistError::NotHls { line }),
        None => return Err(PlaylistError::NotHls { line: 1 }),
    }
    let mut pl = MediaPlaylist {
        target_duration: 0,
        media_sequence: 0,
        discontinuity_sequence: 0,
        endlist: false,
        header: Vec::new(),
        segments: Vec::new(),
        trailer: Vec::new(),
    };
    let mut have_target = false;
    let mut pending: Vec<String> = Vec::new();
    let mut extinf: Option<(usize, f64)> = None;
    let mut discontinuity = false;
    let mut pdt: Option<i64> = None;
    let mut next_pdt: Option<i64> = None;
    let mut seen_segment_tag = false;
    // A discontinuity stays among the pending tags where it was, so that
    // one with no segment after it stays in the trailer in place (the text
    // round-trips); a segment takes it as its flag.
    for (n, raw) in lines {
        let line = raw.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(v) = tag_value(line, "#EXT-X-TARGETDURATION") {
            pl.target_duration = parse_bounded(v, n, "#EXT-X-TARGETDURATION", MAX_DURATION_SECS)?;
            have_target = true;
        } else if let Some(v) = tag_value(line, "#EXT-X-MEDIA-SEQUENCE") {
            pl.media_sequence = parse_bounded(v, n, "#EXT-X-MEDIA-SEQUENCE", MAX_SEQUENCE)?;
        } else if let Some(v) = tag_value(line, "#EXT-X-DISCONTINUITY-SEQUENCE") {
            pl.discontinuity_sequence =
                parse_bounded(v, n, "#EXT-X-DISCONTINUITY-SEQUENCE", MAX_SEQUENCE)?;
        } else if line == "#EXT-X-ENDLIST" {
            pl.endlist = true;
        } else if line.starts_with("#EXT-X-STREAM-INF")
            || line.starts_with("#EXT-X-I-FRAME-STREAM-INF")
        {
            return Err(PlaylistError::Multivariant);
        } else if line == DISCONTINUITY {
            discontinuity = true;
            pending.push(line.to_owned());
            seen_segment_tag = true;
        } else if let Some(v) = tag_value(line, "#EXT-X-PROGRAM-DATE-TIME") {
            pdt = Some(parse_pdt(v).ok_or_else(|| PlaylistError::BadValue {
                line: n,
                tag: "#EXT-X-PROGRAM-DATE-TIME",
                expected: "an ISO 8601 date-time with time zone",
                found: v.to_owned(),
            })?);
            pending.push(line.to_owned());
            seen_segment_tag = true;
        } else if let Some(v) = tag_value(line, "#EXTINF") {
            let d = v.split(',').next().unwrap_or_default().trim();
            let dur: f64 = d
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite() && *x >= 0.0 && *x <= MAX_DURATION_SECS as f64)
                .ok_or_else(|| PlaylistError::BadValue {
                    line: n,
                    tag: "#EXTINF",
                    expected: "a duration in seconds, at most a day",
                    found: d.to_owned(),
                })?;
            extinf = Some((n, dur));
            pending.push(line.to_owned());
            seen_segment_tag = true;
        } else if line.starts_with('#') {
            if !seen_segment_tag && pl.segments.is_empty() && is_header_tag(line) {
                pl.header.push(line.to_owned());
            } else {
                pending.push(line.to_owned());
                if is_segment_tag(line) {
                    seen_segment_tag = true;
                }
            }
        } else {
            let uri = line.trim().to_owned();
            if uri.starts_with('#') {
                return Err(PlaylistError::UriIsFragment { line: n, uri });
            }
            let Some((_, duration)) = extinf.take() else {
                return Err(PlaylistError::MissingExtinf { line: n, uri });
            };
            let this_pdt = pdt.take().or(next_pdt.filter(|_| !discontinuity));
            next_pdt = this_pdt.map(|p| p + (duration * 1000.0).round() as i64);
            pl.segments.push(Segment {
                uri,
                duration,
                discontinuity,
                program_date_time: this_pdt,
                tags: std::mem::take(&mut pending)
                    .into_iter()
                    .filter(|t| t != DISCONTINUITY)
                    .collect(),
            });
            discontinuity = false;
            seen_segment_tag = false;
        }
    }
    if let Some((line, _)) = extinf {
        return Err(PlaylistError::DanglingExtinf { line });
    }
    if !have_target {
        return Err(PlaylistError::MissingTargetDuration);
    }
    pl.trailer = pending;
    Ok(pl)
}

/// Tags that describe the whole playlist (RFC 8216 §4.3.1, §4.3.3, §4.3.5).
fn is_header_tag(line: &str) -> bool {
    const HEADER: [&str; 6] = [
        "#EXT-X-VERSION",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-PLAYLIST-TYPE",
        "#EXT-X-I-FRAMES-ONLY",
        "#EXT-X-START",
        "#EXT-X-SERVER-CONTROL",
    ];
    HEADER.iter().any(|t| line.starts_with(t))
        || line.starts_with("#EXT-X-PART-INF")
        || !line.starts_with("#EXT")
}

/// Tags that belong to the next segment (RFC 8216 §4.3.2).
fn is_segment_tag(line: &str) -> bool {
    const SEGMENT: [&str; 6] = [
        "#EXT-X-BYTERANGE",
        "#EXT-X-KEY",
        "#EXT-X-MAP",
        "#EXT-X-DATERANGE",
        "#EXT-X-CUE",
        "#EXT-OATCLS",
    ];
    SEGMENT.iter().any(|t| line.starts_with(t))
}

/// The largest media or discontinuity sequence number taken: 2^62, far
/// beyond any encoder's (time-based ones are near 2^31 in seconds, 2^41 in
/// milliseconds), so that counting on from it cannot overflow.
pub const MAX_SEQUENCE: u64 = 1 << 62;
/// The longest target or segment duration taken: a day.
pub const MAX_DURATION_SECS: u64 = 86_400;

fn parse_bounded(v: &str, line: usize, tag: &'static str, max: u64) -> Result<u64, PlaylistError> {
    v.trim()
        .parse()
        .ok()
        .filter(|x| *x <= max)
        .ok_or_else(|| PlaylistError::BadValue {
            line,
            tag,
            expected: if max == MAX_SEQUENCE {
                "a decimal integer up to 2^62"
            } else {
                "a decimal integer up to 86400"
            },
            found: v.to_owned(),
        })
}

/// Parses `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)` into epoch milliseconds.
pub fn parse_pdt(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't'])?;
    let mut d = date.split('-');
    let (y, mo, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    // Years 0000–9999, as ISO 8601 writes them without an expansion:
    // every field in range, so the arithmetic below cannot overflow.
    if d.next().is_some()
        || !(0..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&day)
    {
        return None;
    }
    let tz_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time, tz) = rest.split_at(tz_at);
    let mut t = time.split(':');
    let (h, mi): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec_text = t.next().unwrap_or("0");
    if t.next().is_some() || !(0..=23).contains(&h) || !(0..=59).contains(&mi) {
        return None;
    }
    let (sec, frac) = sec_text.split_once('.').unwrap_or((sec_text, ""));
    let sec: i64 = sec.parse().ok()?;
    // 60: a leap second.
    if !(0..=60).contains(&sec) {
        return None;
    }
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{:0<3}", &frac[..frac.len().min(3)]).parse().ok()?
    };
    let offset_min: i64 = match tz {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            let digits: String = tz[1..].chars().filter(char::is_ascii_digit).collect();
            if digits.len() != 4 {
                return None;
            }
            let (hh, mm): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
            if hh > 23 || mm > 59 {
                return None;
            }
            sign * (hh * 60 + mm)
        }
    };
    let days = days_from_civil(y, mo, day);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60) * 1000) + ms)
}

/// Formats epoch milliseconds as `YYYY-MM-DDThh:mm:ss.fffZ`.
pub fn format_pdt(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn referenced_uris_are_the_uri_attributes_and_optionally_the_uri_lines() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"10@0\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k/1.key\",IV=0x1\n#EXT-X-FOO:XURI=\"no\"\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"s\",NAME=\"en\",URI=\"subs/en.m3u8\"\nv1/index.m3u8\n";
        assert_eq!(
            super::referenced_uris(text, false),
            ["init.mp4", "k/1.key", "subs/en.m3u8"]
        );
        assert_eq!(
            super::referenced_uris(text, true),
            ["init.mp4", "k/1.key", "subs/en.m3u8", "v1/index.m3u8"]
        );
    }

    use super::*;
    use proptest::prelude::*;

    const FFMPEG: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-PROGRAM-DATE-TIME:2026-11-25T04:00:00.000+0000\n#EXTINF:2.000000,\nchannel4.ts\n#EXTINF:2.000000,\nchannel5.ts\n";

    #[test]
    fn ffmpeg_media_playlist_parses_with_carried_program_date_times() {
        let pl = parse_media(FFMPEG).unwrap();
        assert_eq!(
            (pl.target_duration, pl.media_sequence, pl.segments.len()),
            (2, 4, 2)
        );
        assert_eq!(
            pl.segments[0].program_date_time,
            parse_pdt("2026-11-25T04:00:00Z")
        );
        assert_eq!(
            pl.segments[1].program_date_time,
            parse_pdt("2026-11-25T04:00:02Z")
        );
        assert_eq!(pl.segments[1].tags, ["#EXTINF:2.000000,"]);
        assert_eq!(pl.serialize(), FFMPEG, "ffmpeg's own PDT format is kept");
        assert_eq!(pl.header, ["#EXT-X-VERSION:3"]);
    }

    #[test]
    fn unknown_tags_cues_and_trailer_survive_byte_exact() {
        let text = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-CUE-OUT:30.000\n#EXT-X-DATERANGE:ID=\"a\",START-DATE=\"2026-01-01T00:00:00Z\"\n#EXTINF:6.006,title\n#EXT-X-BYTERANGE:100@0\nseg10.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.006Z\n#EXT-X-FOO:bar\n#EXTINF:6.006,\nseg11.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg12.m4s\"\n#EXT-X-ENDLIST\n";
        let pl = parse_media(text).unwrap();
        assert_eq!(pl.serialize(), text);
        assert!(pl.segments[1].discontinuity);
        assert_eq!(
            pl.trailer,
            ["#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg12.m4s\""]
        );
    }

    #[test]
    fn malformed_playlists_give_typed_errors_with_line_numbers() {
        assert_eq!(parse_media("hello"), Err(PlaylistError::NotHls { line: 1 }));
        assert_eq!(
            parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:x\n"),
            Err(PlaylistError::BadValue {
                line: 2,
                tag: "#EXT-X-TARGETDURATION",
                expected: "a decimal integer up to 86400",
                found: "x".into()
            })
        );
        assert_eq!(
            parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\nseg.ts\n"),
            Err(PlaylistError::MissingExtinf {
                line: 3,
                uri: "seg.ts".into()
            })
        );
        assert_eq!(
            parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n"),
            Err(PlaylistError::DanglingExtinf { line: 3 })
        );
        assert_eq!(
            parse_media("#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Err(PlaylistError::MissingTargetDuration)
        );
        assert!(matches!(
            parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:nan,\na.ts\n"),
            Err(PlaylistError::BadValue { line: 3, .. })
        ));
        assert_eq!(
            parse_media("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na.m3u8\n"),
            Err(PlaylistError::Multivariant)
        );
    }

    #[test]
    fn a_date_time_is_written_where_it_does_not_follow_from_the_segment_before() {
        let seg = |uri: &str, pdt: i64| Segment {
            uri: uri.to_owned(),
            duration: 2.0,
            discontinuity: false,
            program_date_time: Some(pdt),
            tags: vec!["#EXTINF:2.000,".to_owned()],
        };
        let pl = |second: i64| MediaPlaylist {
            target_duration: 2,
            media_sequence: 0,
            discontinuity_sequence: 0,
            endlist: false,
            header: vec![],
            segments: vec![seg("a.ts", 1_000_000), seg("b.ts", second)],
            trailer: vec![],
        };
        let tags = |t: &str| t.matches("#EXT-X-PROGRAM-DATE-TIME:").count();
        // A millisecond of rounding follows; two do not.
        assert_eq!(tags(&pl(1_002_000).serialize()), 1);
        assert_eq!(tags(&pl(1_002_001).serialize()), 1);
        assert_eq!(tags(&pl(1_002_002).serialize()), 2);
    }

    #[test]
    fn a_multivariant_playlist_is_told_from_a_media_playlist() {
        let mv = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow.m3u8\n";
        assert!(is_multivariant(mv));
        assert!(is_multivariant(
            "#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"i.m3u8\"\n  #EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"
        ));
        assert!(!is_multivariant(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n"
        ));
    }

    /// Found by the `hls_playlist` fuzz target: a discontinuity with no
    /// segment after it was dropped, so header tags after it moved into
    /// the header on the next parse and the text did not round-trip.
    #[test]
    fn a_discontinuity_with_no_segment_after_it_round_trips_in_place() {
        for text in [
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-DISCONTINUITY\n#EXT-X-FOO:1\n#EXT-X-VERSION:6\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-BAR\n#EXT-X-DISCONTINUITY\n#EXT-X-VERSION:6\n",
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"b\"\n",
            // Found by the campaign: two of them, tags between and after.
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-DISCONTINUITY\n#EXT-X-A:1\n#EXT-X-VERSION:6\n#EXT-X-DISCONTINUITY\n#EXT-X-B:2\n",
        ] {
            let pl = parse_media(text).unwrap();
            assert_eq!(
                pl.trailer
                    .iter()
                    .filter(|l| *l == "#EXT-X-DISCONTINUITY")
                    .count(),
                text.matches("#EXT-X-DISCONTINUITY").count(),
                "{:?}",
                pl.trailer
            );
            let out = pl.serialize();
            let again = parse_media(&out).unwrap();
            assert_eq!(again, pl, "{out}");
            assert_eq!(again.serialize(), out);
        }
    }

    /// Found by the `hls_playlist` fuzz target: a URI line with white space
    /// before a '#' was trimmed into a URI that serialized as a comment, so
    /// the written playlist no longer parsed. Such a URI names the playlist
    /// itself, never a segment, and is refused with its line.
    #[test]
    fn a_uri_line_that_trims_to_a_fragment_is_refused() {
        for (text, uri) in [
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n # 000,channel5.ts \n",
                "# 000,channel5.ts",
            ),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n\t#EXTINF:2,\na.ts\n",
                "#EXTINF:2,",
            ),
        ] {
            match parse_media(text) {
                Err(PlaylistError::UriIsFragment { line: 4, uri: u }) => assert_eq!(u, uri),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // White space around an ordinary URI is still trimmed.
        let pl = parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n  a.ts \n").unwrap();
        assert_eq!(pl.segments[0].uri, "a.ts");
        let again = parse_media(&pl.serialize()).unwrap();
        assert_eq!(again, pl);
    }

    #[test]
    fn program_date_times_parse_in_every_zone_form() {
        let z = parse_pdt("2026-11-25T04:00:00.5Z").unwrap();
        assert_eq!(parse_pdt("2026-11-25T05:00:00.500+01:00"), Some(z));
        assert_eq!(parse_pdt("2026-11-25T03:00:00.500-0100"), Some(z));
        assert_eq!(format_pdt(z), "2026-11-25T04:00:00.500Z");
        assert_eq!(parse_pdt("2026-13-01T00:00:00Z"), None);
        // Found by fuzzing (hls_playlist): fields out of range once
        // overflowed the arithmetic.
        assert_eq!(parse_pdt("2026-11-25T04:00:4444444441444444444Z"), None);
        assert_eq!(parse_pdt("2026-11-25T04:00:61Z"), None);
        assert_eq!(parse_pdt("99999999999999-11-25T04:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25T04:00:00+9999"), None);
        assert!(parse_pdt("2016-12-31T23:59:60Z").is_some(), "a leap second");
        assert!(parse_pdt("9999-12-31T23:59:59.999Z").is_some());
        // The last day of a 400-year cycle and other leap days format back.
        for d in [
            "2000-02-29T12:00:00.000Z",
            "2400-02-29T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z",
            "2100-03-01T00:00:00.000Z",
        ] {
            assert_eq!(parse_pdt(d).map(format_pdt).as_deref(), Some(d));
        }
        assert_eq!(parse_pdt("yesterday"), None);
        // Each field is checked on its own.
        assert_eq!(parse_pdt("2026-00-01T00:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-32T00:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25-01T00:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25T24:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25T04:60:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25T04:00:00:00Z"), None);
        assert_eq!(parse_pdt("2026-11-25T04:00:00+24:00"), None);
        assert_eq!(parse_pdt("2026-11-25T04:00:00+05:60"), None);
        // The edges of the zone offset are valid.
        assert_eq!(
            parse_pdt("2026-11-25T04:00:00.5-23:59"),
            Some(z + (23 * 60 + 59) * 60_000)
        );
        assert_eq!(
            parse_pdt("2026-11-25T04:00:00.5+00:59"),
            Some(z - 59 * 60_000)
        );
    }

    #[test]
    fn header_tags_stay_in_the_header_and_segment_tags_stay_with_their_segment() {
        let pl = parse_media(
            "#EXTM3U\n# made by an encoder\n#EXT-X-PART-INF:PART-TARGET=1.0\n#EXT-X-FOO:1\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-KEY:METHOD=NONE\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2,\na.ts\n",
        )
        .unwrap();
        // An unknown tag is no segment tag: a header tag after it is still
        // the header's. After a segment tag (KEY), everything up to the
        // URI is the segment's, in order.
        assert_eq!(
            pl.header,
            [
                "# made by an encoder",
                "#EXT-X-PART-INF:PART-TARGET=1.0",
                "#EXT-X-VERSION:3"
            ]
        );
        assert_eq!(
            pl.segments[0].tags,
            [
                "#EXT-X-FOO:1",
                "#EXT-X-KEY:METHOD=NONE",
                "#EXT-X-PLAYLIST-TYPE:EVENT",
                "#EXTINF:2,"
            ]
        );
    }

    #[test]
    fn uris_are_found_in_attributes_only_where_an_attribute_starts() {
        let text = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.key\"\n#EXT-X-FOO:XURI=\"not.me\"\n#EXTINF:2,\na.ts\n";
        assert_eq!(referenced_uris(text, false), ["init.mp4", "k.key"]);
        assert_eq!(referenced_uris(text, true), ["init.mp4", "k.key", "a.ts"]);
    }

    fn segment() -> impl Strategy<Value = Segment> {
        (
            0u32..100_000,
            any::<bool>(),
            proptest::option::of(0i64..4_000_000_000_000),
            proptest::collection::vec("#EXT-X-[A-Z]{1,8}:[a-z0-9=,]{0,10}", 0..3),
            "[a-z0-9]{1,8}\\.ts",
        )
            .prop_map(|(ms, disc, pdt, extra, uri)| {
                let duration = f64::from(ms) / 1000.0;
                let mut tags = vec![format!("#EXTINF:{duration:.3},")];
                tags.extend(extra.into_iter().filter(|t| {
                    !t.starts_with("#EXT-X-ENDLIST")
                        && !t.starts_with("#EXT-X-DISCONTINUITY")
                        && !t.starts_with("#EXT-X-PROGRAM-DATE-TIME")
                        && !t.starts_with("#EXT-X-TARGETDURATION")
                        && !t.starts_with("#EXT-X-MEDIA-SEQUENCE")
                        && !t.starts_with("#EXT-X-STREAM-INF")
                        && !t.starts_with("#EXT-X-I-FRAME")
                }));
                Segment {
                    uri,
                    duration,
                    discontinuity: disc,
                    program_date_time: pdt,
                    tags,
                }
            })
    }

    proptest! {
        #[test]
        fn parse_of_serialize_is_identity(target in 1u64..20, msn in 0u64..1_000_000, dsn in 0u64..100, endlist in any::<bool>(), segs in proptest::collection::vec(segment(), 0..8)) {
            let mut pl = MediaPlaylist { target_duration: target, media_sequence: msn, discontinuity_sequence: dsn, endlist, header: vec!["#EXT-X-VERSION:3".into()], segments: segs, trailer: vec![] };
            // A carried PDT is what the parser infers; make the model agree.
            let mut carried: Option<i64> = None;
            for s in &mut pl.segments {
                if s.program_date_time.is_none() && !s.discontinuity {
                    s.program_date_time = carried;
                }
                carried = s.program_date_time.map(|p| p + (s.duration * 1000.0).round() as i64);
            }
            let text = pl.serialize();
            let back = parse_media(&text).unwrap();
            prop_assert_eq!(back.serialize(), text);
            let facts = |p: &MediaPlaylist| p.segments.iter().map(|s| (s.uri.clone(), s.duration, s.discontinuity, s.program_date_time)).collect::<Vec<_>>();
            prop_assert_eq!(facts(&back), facts(&pl));
            prop_assert_eq!((back.target_duration, back.media_sequence, back.discontinuity_sequence, back.endlist), (target, msn, dsn, endlist));
        }
    }
}
