//! Names that come from URLs: channel ids, pipelines and object paths.
//!
//! Ingest paths are percent-decoded exactly once and then validated, so
//! `%2e%2e` is as much a traversal as `..` and `%2F` can never smuggle a
//! separator into a segment. A validated [`ObjectPath`] is safe to join to a
//! storage root: relative, no empty, `.` or `..` segments, no control
//! characters, no backslashes, valid UTF-8.

use std::fmt;

/// Why a name from a request was refused. Each message names the offending
/// part so the encoder's operator can fix the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("channel id {0:?} is invalid: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    BadChannelId(String),
    #[error("pipeline {0:?} does not exist: use 0 or 1")]
    BadPipeline(String),
    #[error("path segment {segment:?} is not allowed: {why}")]
    BadSegment { segment: String, why: &'static str },
    #[error("path is not valid percent-encoded UTF-8")]
    NotUtf8,
    #[error("path is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
}

/// A channel id: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(String);

impl ChannelId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::BadChannelId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One of a channel's two inputs, named as in the ingest URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pipeline {
    P0,
    P1,
}

impl Pipeline {
    pub const BOTH: [Pipeline; 2] = [Pipeline::P0, Pipeline::P1];

    pub fn parse(s: &str) -> Result<Self, NameError> {
        match s {
            "0" => Ok(Self::P0),
            "1" => Ok(Self::P1),
            _ => Err(NameError::BadPipeline(s.to_owned())),
        }
    }

    /// 0 or 1, as in the URL.
    pub fn index(self) -> usize {
        match self {
            Self::P0 => 0,
            Self::P1 => 1,
        }
    }

    /// This pipeline's element of a per-pipeline pair (index = pipeline).
    pub fn of<T>(self, pair: &[T; 2]) -> &T {
        let [p0, p1] = pair;
        match self {
            Self::P0 => p0,
            Self::P1 => p1,
        }
    }

    /// This pipeline's element of a per-pipeline pair, to change it.
    pub fn of_mut<T>(self, pair: &mut [T; 2]) -> &mut T {
        let [p0, p1] = pair;
        match self {
            Self::P0 => p0,
            Self::P1 => p1,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Self::P0 => Self::P1,
            Self::P1 => Self::P0,
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.index())
    }
}

/// A validated relative path of one or more segments, such as
/// `news/0/live/channel-00001.ts`. The empty path is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectPath {
    segments: Vec<String>,
}

/// Prefix reserved for Tandem's own bookkeeping files inside storage.
pub const RESERVED_PREFIX: &str = ".tandem";

impl ObjectPath {
    /// Longest accepted path, in bytes after decoding.
    pub const MAX_LEN: usize = 1024;
    /// Longest accepted segment, in bytes after decoding (a common file
    /// system limit).
    pub const MAX_SEGMENT: usize = 255;

    /// The root: no segments.
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses the percent-encoded remainder of a URL path, after the prefix
    /// that selected the input. A trailing `/` (a collection URL) is
    /// accepted and ignored; any other empty segment (`a//b`, a leading `/`)
    /// is refused as an absolute or ambiguous path.
    pub fn from_url_path(raw: &str) -> Result<Self, NameError> {
        if raw.is_empty() {
            return Ok(Self::root());
        }
        let trimmed = raw.strip_suffix('/').unwrap_or(raw);
        let mut segments = Vec::new();
        for enc in trimmed.split('/') {
            let bytes = percent_decode(enc).ok_or(NameError::NotUtf8)?;
            let seg = String::from_utf8(bytes).map_err(|_| NameError::NotUtf8)?;
            segments.push(seg);
        }
        Self::from_segments(segments)
    }

    /// Builds a path from already-decoded segments, validating each.
    pub fn from_segments<I, S>(segments: I) -> Result<Self, NameError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        for s in &segments {
            validate_segment(s)?;
        }
        let len = segments.iter().map(|s| s.len() + 1).sum::<usize>();
        if len > Self::MAX_LEN {
            return Err(NameError::TooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self { segments })
    }

    /// Appends one validated segment.
    pub fn join(&self, segment: &str) -> Result<Self, NameError> {
        let mut segments = self.segments.clone();
        segments.push(segment.to_owned());
        Self::from_segments(segments)
    }

    /// Appends every segment of `rest`.
    pub fn join_path(&self, rest: &ObjectPath) -> Self {
        let mut segments = self.segments.clone();
        segments.extend(rest.segments.iter().cloned());
        Self { segments }
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The last segment, if any.
    pub fn file_name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The path without its last segment, or `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, head) = self.segments.split_last()?;
        Some(Self {
            segments: head.to_vec(),
        })
    }

    /// Whether `self` equals `prefix` or lies below it.
    pub fn starts_with(&self, prefix: &ObjectPath) -> bool {
        self.segments.starts_with(&prefix.segments)
    }

    /// The part of `self` below `prefix`, if `self` lies below it.
    pub fn strip_prefix(&self, prefix: &ObjectPath) -> Option<Self> {
        let rest = self.segments.strip_prefix(prefix.segments.as_slice())?;
        Some(Self {
            segments: rest.to_vec(),
        })
    }

    /// The path percent-encoded for use in a URL (no leading slash).
    pub fn to_url_path(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            percent_encode_into(s, &mut out);
        }
        out
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

fn validate_segment(s: &str) -> Result<(), NameError> {
    let bad = |why| {
        Err(NameError::BadSegment {
            segment: s.to_owned(),
            why,
        })
    };
    if s.is_empty() {
        return bad("empty segments (// or a leading /) would make the path absolute or ambiguous");
    }
    if s == "." || s == ".." {
        return bad("relative segments are refused");
    }
    if s.len() > ObjectPath::MAX_SEGMENT {
        return bad("longer than 255 bytes");
    }
    if s.contains('/') {
        return bad("an encoded '/' may not hide a separator");
    }
    if s.contains('\\') {
        return bad("backslashes are refused");
    }
    if s.chars().any(char::is_control) {
        return bad("control characters are refused");
    }
    if s.starts_with(RESERVED_PREFIX) {
        return bad("names starting with .tandem are reserved");
    }
    Ok(())
}

/// Decodes `%XX` escapes once. `None` when an escape is malformed.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        if unreserved {
            out.push(char::from(c));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ObjectPath, NameError> {
        ObjectPath::from_url_path(s)
    }

    #[test]
    fn channel_ids_follow_the_documented_alphabet() {
        assert!(ChannelId::parse("news_1-hd").is_ok());
        assert!(ChannelId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "News", "a b", "a/b", "é", &"a".repeat(65)] {
            assert_eq!(
                ChannelId::parse(bad),
                Err(NameError::BadChannelId(bad.to_owned()))
            );
        }
    }

    #[test]
    fn pipelines_are_zero_and_one_only() {
        assert_eq!(Pipeline::parse("0"), Ok(Pipeline::P0));
        assert_eq!(Pipeline::parse("1"), Ok(Pipeline::P1));
        assert!(Pipeline::parse("2").is_err());
        assert!(Pipeline::parse("00").is_err());
    }

    #[test]
    fn encoded_traversal_is_refused_like_plain_traversal() {
        for bad in ["..", "a/../b", "%2e%2e/x", "%2E%2E", "a/%2e", "./a"] {
            assert!(matches!(p(bad), Err(NameError::BadSegment { .. })), "{bad}");
        }
    }

    #[test]
    fn encoded_slashes_backslashes_and_absolute_paths_are_refused() {
        for bad in ["a%2Fb", "a%2fb", "/etc/passwd", "a//b", "a%5Cb", "a\\b"] {
            assert!(matches!(p(bad), Err(NameError::BadSegment { .. })), "{bad}");
        }
    }

    #[test]
    fn control_characters_and_bad_escapes_are_refused() {
        assert!(matches!(p("a%00b"), Err(NameError::BadSegment { .. })));
        assert!(matches!(p("a%0Ab"), Err(NameError::BadSegment { .. })));
        assert_eq!(p("a%zz"), Err(NameError::NotUtf8));
        assert_eq!(p("a%ff"), Err(NameError::NotUtf8));
        assert_eq!(p("a%4"), Err(NameError::NotUtf8));
    }

    #[test]
    fn reserved_names_are_refused() {
        assert!(p("x/.tandem-collection").is_err());
    }

    #[test]
    fn decoding_happens_exactly_once() {
        let path = p("live/a%2541.ts").ok();
        assert_eq!(
            path.as_ref().map(ToString::to_string).as_deref(),
            Some("live/a%41.ts")
        );
        assert_eq!(
            path.map(|x| x.to_url_path()).as_deref(),
            Some("live/a%2541.ts")
        );
    }

    #[test]
    fn trailing_slash_names_the_collection() {
        assert_eq!(p("live/"), p("live"));
        assert_eq!(p(""), Ok(ObjectPath::root()));
        assert_eq!(
            p("live/").ok().and_then(|x| x.parent()),
            Some(ObjectPath::root())
        );
    }

    #[test]
    fn utf8_segments_round_trip_through_urls() {
        let path = p("r%C3%A9sum%C3%A9.txt").ok();
        assert_eq!(
            path.as_ref().map(ToString::to_string).as_deref(),
            Some("résumé.txt")
        );
        assert_eq!(
            path.map(|x| x.to_url_path()).as_deref(),
            Some("r%C3%A9sum%C3%A9.txt")
        );
    }
}
