//! The Live Server Manifest box: a `uuid` box (a full box, then SMIL 2.0
//! XML) that a Smooth encoder sends after `ftyp` to describe the tracks of
//! its push (the Smooth ingest format as IIS Media Services defined it,
//! also documented in Azure Media Services' fragmented MP4 live ingest
//! specification).
//!
//! ```xml
//! <smil xmlns="http://www.w3.org/2001/SMIL20/Language">
//!   <head><meta name="creator" content="Lavf59.27.100" /></head>
//!   <body><switch>
//!     <video systemBitrate="300000">
//!       <param name="trackID" value="1" valuetype="data"/>
//!       <param name="CodecPrivateData" value="000000016742C0…" valuetype="data"/>
//!       …
//!     </video>
//!     <audio systemBitrate="64000">…</audio>
//!   </switch></body>
//! </smil>
//! ```
//!
//! Every child element of `switch` is a track; its kind is its element name
//! (`video`, `audio`, `textstream`). Parameter names are matched without
//! regard to case, since encoders disagree (`trackID`, `TrackID`). Every
//! attribute and parameter is also kept as sent, in order, for what this
//! module does not type.

use crate::boxes::{BoxError, BoxHeader, Uuid, children::Fields};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// `a5d40b30-e814-11dd-ba2f-0800200c9a66`.
pub const LIVE_SERVER_MANIFEST_UUID: Uuid = Uuid([
    0xa5, 0xd4, 0x0b, 0x30, 0xe8, 0x14, 0x11, 0xdd, 0xba, 0x2f, 0x08, 0x00, 0x20, 0x0c, 0x9a, 0x66,
]);

/// A parsed Live Server Manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveServerManifest {
    /// `<meta name=… content=…>` in `head`, in order (ffmpeg sends
    /// `creator`).
    pub meta: Vec<(String, String)>,
    pub tracks: Vec<ManifestTrack>,
}

/// What kind of track a `switch` child describes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
    /// `textstream` (captions, subtitles, sparse tracks such as SCTE-35).
    Text,
    /// Any other element name, as sent.
    Other(String),
}

/// One track of the Live Server Manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ManifestTrack {
    pub kind: TrackKind,
    /// `systemBitrate`, bits per second (attribute, else parameter).
    pub system_bitrate: u64,
    /// `trackID`: the `tkhd` track_ID of this track's fragments.
    pub track_id: Option<u32>,
    pub track_name: Option<String>,
    pub system_language: Option<String>,
    /// `FourCC`: `H264`, `AVC1`, `AACL`, `EC-3`, `TTML`, …
    pub fourcc: Option<String>,
    /// `CodecPrivateData`, hex-decoded.
    pub codec_private_data: Option<Vec<u8>>,
    pub max_width: Option<u32>,
    pub max_height: Option<u32>,
    pub display_width: Option<u32>,
    pub display_height: Option<u32>,
    pub sampling_rate: Option<u32>,
    pub channels: Option<u16>,
    pub bits_per_sample: Option<u16>,
    pub packet_size: Option<u32>,
    /// `AudioTag` (255 for AAC).
    pub audio_tag: Option<u32>,
    pub subtype: Option<String>,
    /// The element's attributes as sent.
    pub attributes: Vec<(String, String)>,
    /// The `<param name value>` pairs as sent.
    pub params: Vec<(String, String)>,
}

impl Default for TrackKind {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl ManifestTrack {
    /// `CodecPrivateData` as a client manifest writes it: upper-case hex.
    pub fn codec_private_data_hex(&self) -> Option<String> {
        self.codec_private_data.as_ref().map(|d| {
            d.iter()
                .fold(String::with_capacity(d.len() * 2), |mut s, b| {
                    s.push_str(&format!("{b:02X}"));
                    s
                })
        })
    }

    /// A parameter's value, by case-insensitive name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A Live Server Manifest that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error(
        "live server manifest at byte {offset} is not UTF-8 (bad byte at {position} of the XML)"
    )]
    NotUtf8 { offset: u64, position: usize },
    #[error(
        "live server manifest at byte {offset}: XML error near byte {position} of the XML: {message}"
    )]
    Xml {
        offset: u64,
        position: u64,
        message: String,
    },
    #[error("live server manifest at byte {offset}: root element is <{found}>, expected <smil>")]
    NotSmil { offset: u64, found: String },
    #[error("live server manifest at byte {offset}: {element} track {index} has no systemBitrate")]
    MissingBitrate {
        offset: u64,
        index: usize,
        element: String,
    },
    #[error(
        "live server manifest at byte {offset}: track {index} {name}={found:?} is not {expected}"
    )]
    BadValue {
        offset: u64,
        index: usize,
        name: String,
        expected: &'static str,
        found: String,
    },
}

impl LiveServerManifest {
    /// Reads the payload of the manifest `uuid` box (version and flags,
    /// then the XML).
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, ManifestError> {
        let mut f = Fields::new(header, payload);
        f.full_box()?;
        let xml = f.bytes(f.remaining(), "XML")?;
        Self::parse_xml(xml, header.offset)
    }

    /// Reads the SMIL document; `offset` locates the box in errors.
    pub fn parse_xml(xml: &[u8], offset: u64) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(xml).map_err(|e| ManifestError::NotUtf8 {
            offset,
            position: e.valid_up_to(),
        })?;
        let mut reader = Reader::from_str(text);
        let mut manifest = Self {
            meta: Vec::new(),
            tracks: Vec::new(),
        };
        // Names of the open elements.
        let mut open: Vec<String> = Vec::new();
        let mut current: Option<ManifestTrack> = None;
        let mut root_seen = false;
        loop {
            let event = reader.read_event().map_err(|e| ManifestError::Xml {
                offset,
                position: reader.error_position(),
                message: e.to_string(),
            })?;
            let (start, empty) = match &event {
                Event::Start(s) => (Some(s), false),
                Event::Empty(s) => (Some(s), true),
                Event::End(_) => {
                    let closed = open.pop();
                    let in_switch = open.last().is_some_and(|p| p == "switch");
                    if in_switch
                        && closed.is_some()
                        && let Some(t) = current.take()
                    {
                        manifest.push_track(t, offset)?;
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let Some(start) = start else { continue };
            let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
            if open.is_empty() {
                if name != "smil" || root_seen {
                    return Err(ManifestError::NotSmil {
                        offset,
                        found: name,
                    });
                }
                root_seen = true;
            }
            let attrs = attributes(start, offset, reader.buffer_position())?;
            let parent = open.last().map(String::as_str);
            match (parent, name.as_str()) {
                (Some("switch"), _) => {
                    let track = ManifestTrack {
                        kind: match name.as_str() {
                            "video" => TrackKind::Video,
                            "audio" => TrackKind::Audio,
                            "textstream" => TrackKind::Text,
                            other => TrackKind::Other(other.to_owned()),
                        },
                        attributes: attrs,
                        ..ManifestTrack::default()
                    };
                    if empty {
                        manifest.push_track(track, offset)?;
                    } else {
                        current = Some(track);
                    }
                }
                (Some("head"), "meta") => {
                    let get = |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                    if let (Some(n), Some(c)) = (get("name"), get("content")) {
                        manifest.meta.push((n, c));
                    }
                }
                (_, "param") => {
                    if let Some(t) = current.as_mut() {
                        let get =
                            |k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
                        if let Some(n) = get("name") {
                            t.params.push((n, get("value").unwrap_or_default()));
                        }
                    }
                }
                _ => {}
            }
            if !empty {
                open.push(name);
            }
        }
        if !root_seen {
            return Err(ManifestError::NotSmil {
                offset,
                found: String::new(),
            });
        }
        Ok(manifest)
    }

    /// The track whose `trackID` is `track_id`.
    pub fn track(&self, track_id: u32) -> Option<&ManifestTrack> {
        self.tracks.iter().find(|t| t.track_id == Some(track_id))
    }

    fn push_track(&mut self, mut t: ManifestTrack, offset: u64) -> Result<(), ManifestError> {
        let index = self.tracks.len();
        let bad = |name: &str, expected, found: &str| ManifestError::BadValue {
            offset,
            index,
            name: name.to_owned(),
            expected,
            found: found.to_owned(),
        };
        let bitrate = t
            .attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("systemBitrate"))
            .map(|(_, v)| v.clone())
            .or_else(|| t.param("systemBitrate").map(str::to_owned));
        let Some(bitrate) = bitrate else {
            return Err(ManifestError::MissingBitrate {
                offset,
                index,
                element: kind_name(&t.kind).to_owned(),
            });
        };
        t.system_bitrate = bitrate.trim().parse().map_err(|_| {
            bad(
                "systemBitrate",
                "a whole number of bits per second",
                &bitrate,
            )
        })?;
        fn num<T: std::str::FromStr>(
            t: &ManifestTrack,
            name: &str,
            bad: &dyn Fn(&str, &'static str, &str) -> ManifestError,
        ) -> Result<Option<T>, ManifestError> {
            match t.param(name) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| bad(name, "a whole number", v)),
            }
        }
        t.track_id = num(&t, "trackID", &bad)?;
        t.max_width = num(&t, "MaxWidth", &bad)?;
        t.max_height = num(&t, "MaxHeight", &bad)?;
        t.display_width = num(&t, "DisplayWidth", &bad)?;
        t.display_height = num(&t, "DisplayHeight", &bad)?;
        t.sampling_rate = num(&t, "SamplingRate", &bad)?;
        t.channels = num(&t, "Channels", &bad)?;
        t.bits_per_sample = num(&t, "BitsPerSample", &bad)?;
        t.packet_size = num(&t, "PacketSize", &bad)?;
        t.audio_tag = num(&t, "AudioTag", &bad)?;
        t.track_name = t.param("trackName").map(str::to_owned);
        t.system_language = t.param("systemLanguage").map(str::to_owned);
        t.fourcc = t.param("FourCC").map(str::to_owned);
        t.subtype = t.param("Subtype").map(str::to_owned);
        t.codec_private_data = match t.param("CodecPrivateData") {
            None => None,
            Some(hex) => Some(
                decode_hex(hex.trim())
                    .ok_or_else(|| bad("CodecPrivateData", "hexadecimal", hex))?,
            ),
        };
        self.tracks.push(t);
        Ok(())
    }
}

fn kind_name(kind: &TrackKind) -> &str {
    match kind {
        TrackKind::Video => "video",
        TrackKind::Audio => "audio",
        TrackKind::Text => "textstream",
        TrackKind::Other(s) => s,
    }
}

fn attributes(
    start: &BytesStart<'_>,
    offset: u64,
    position: u64,
) -> Result<Vec<(String, String)>, ManifestError> {
    let mut out = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| ManifestError::Xml {
            offset,
            position,
            message: e.to_string(),
        })?;
        let value = a.unescape_value().map_err(|e| ManifestError::Xml {
            offset,
            position,
            message: e.to_string(),
        })?;
        out.push((
            String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(out)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}
