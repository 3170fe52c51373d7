//! A publishing point's tracks: what a client manifest's `StreamIndex` and
//! `QualityLevel` elements say about each one ([MS-SSTR] §2.2.2.3, §2.2.2.5).
//!
//! The encoder declares its tracks in the Live Server Manifest at the start
//! of each push; the ingest turns them into [`Track`]s. A track is known by
//! its stream name and bitrate ([`TrackKey`]), because that is how a client
//! asks for a fragment: `QualityLevels({bitrate})/Fragments({name}={time})`.
//! Names and attribute values are validated here once, so the manifest
//! writer can put them into XML attributes and URLs as they are.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::SmoothError;

/// A `StreamIndex` `Type` ([MS-SSTR] §2.2.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackKind {
    Video,
    Audio,
    Text,
}

impl TrackKind {
    /// The `Type` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Text => "text",
        }
    }
}

impl fmt::Display for TrackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client names a track: the `StreamIndex` `Name` and the
/// `QualityLevel` `Bitrate`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrackKey {
    pub name: String,
    pub bitrate: u32,
}

impl TrackKey {
    pub fn new(name: impl Into<String>, bitrate: u32) -> Self {
        Self {
            name: name.into(),
            bitrate,
        }
    }
}

impl fmt::Display for TrackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.bitrate)
    }
}

/// The kind-specific `QualityLevel` (and `StreamIndex`) attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackMedia {
    Video {
        /// `MaxWidth`/`MaxHeight`: the coded picture size, in pixels.
        max_width: u32,
        max_height: u32,
        /// `DisplayWidth`/`DisplayHeight` of the stream, when they differ
        /// from the coded size (anamorphic video).
        display_width: Option<u32>,
        display_height: Option<u32>,
        /// `NALUnitLengthField`: bytes in each NAL unit's length prefix
        /// (H.264/HEVC), when not the default 4.
        nal_unit_length_field: Option<u8>,
    },
    Audio {
        /// `SamplingRate`, in Hz.
        sampling_rate: u32,
        /// `Channels`.
        channels: u16,
        /// `BitsPerSample`.
        bits_per_sample: u16,
        /// `PacketSize`: the block alignment, in bytes.
        packet_size: u32,
        /// `AudioTag`: the WAVEFORMATEX format tag (255 for AAC).
        audio_tag: u32,
    },
    Text {
        /// `Subtype`: a four-character code such as `SCMD`, `CHAP`, `SUBT`
        /// or `DATA` (SCTE-35 sparse tracks).
        subtype: String,
    },
}

/// One track of a publishing point: everything its `QualityLevel` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The `StreamIndex` `Name` (`video`, `audio`, `audio_eng` …): tracks of
    /// one name are the bitrates of one stream and share its timeline.
    pub name: String,
    /// `Bitrate`, in bits per second.
    pub bitrate: u32,
    /// Units of `t` and `d` per second (`StreamIndex` `TimeScale`); the
    /// `tfxd` times of the track's fragments are in these units.
    pub timescale: u64,
    /// `FourCC`: `H264`, `AVC1`, `AACL`, `EC-3`, `TTML` …
    pub four_cc: String,
    /// `CodecPrivateData`, as hex (for H.264: SPS and PPS with start codes).
    pub codec_private_data: String,
    /// `Language`: an ISO 639-2/T code, when the encoder gives one.
    pub language: Option<String>,
    pub media: TrackMedia,
}

/// Longest stream name accepted: it is part of every fragment URL.
const MAX_NAME: usize = 64;
/// Longest codec private data accepted, in hex digits (an SPS and PPS
/// with room for HEVC's VPS; 16 KiB of codec data is not a header).
const MAX_CODEC_HEX: usize = 32 * 1024;

impl Track {
    pub fn key(&self) -> TrackKey {
        TrackKey::new(self.name.clone(), self.bitrate)
    }

    pub fn kind(&self) -> TrackKind {
        match self.media {
            TrackMedia::Video { .. } => TrackKind::Video,
            TrackMedia::Audio { .. } => TrackKind::Audio,
            TrackMedia::Text { .. } => TrackKind::Text,
        }
    }

    /// Checks every value that reaches a URL or an XML attribute.
    pub fn validate(&self) -> Result<(), SmoothError> {
        let bad = |field: &'static str, expected: &'static str, found: String| {
            Err(SmoothError::BadTrack {
                track: self.key().to_string(),
                field,
                expected,
                found,
            })
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok {
            return bad(
                "name",
                "1 to 64 letters, digits, '_', '-' or '.'",
                self.name.clone(),
            );
        }
        if self.bitrate == 0 {
            return bad("bitrate", "a bitrate above 0", self.bitrate.to_string());
        }
        if self.timescale == 0 {
            return bad(
                "timescale",
                "a timescale above 0",
                self.timescale.to_string(),
            );
        }
        let four_cc_ok = (1..=8).contains(&self.four_cc.len())
            && self
                .four_cc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !four_cc_ok {
            return bad(
                "FourCC",
                "1 to 8 letters, digits or '-'",
                self.four_cc.clone(),
            );
        }
        let hex_ok = self.codec_private_data.len() <= MAX_CODEC_HEX
            && self.codec_private_data.len().is_multiple_of(2)
            && self
                .codec_private_data
                .bytes()
                .all(|b| b.is_ascii_hexdigit());
        if !hex_ok {
            return bad(
                "CodecPrivateData",
                "an even number of hex digits, at most 32768",
                self.codec_private_data.chars().take(40).collect(),
            );
        }
        if let Some(lang) = &self.language {
            let ok = (1..=16).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return bad("Language", "an ISO 639 code such as 'eng'", lang.clone());
            }
        }
        if let TrackMedia::Text { subtype } = &self.media {
            let ok = (1..=8).contains(&subtype.len())
                && subtype.bytes().all(|b| b.is_ascii_alphanumeric());
            if !ok {
                return bad(
                    "Subtype",
                    "a four-character code such as 'SCMD'",
                    subtype.clone(),
                );
            }
        }
        if let TrackMedia::Audio { sampling_rate, .. } = self.media
            && sampling_rate == 0
        {
            return bad(
                "SamplingRate",
                "a sampling rate above 0",
                sampling_rate.to_string(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(name: &str) -> Track {
        Track {
            name: name.into(),
            bitrate: 1_000_000,
            timescale: 10_000_000,
            four_cc: "H264".into(),
            codec_private_data: "000000016742".into(),
            language: None,
            media: TrackMedia::Video {
                max_width: 640,
                max_height: 360,
                display_width: None,
                display_height: None,
                nal_unit_length_field: None,
            },
        }
    }

    #[test]
    fn names_that_would_break_a_fragment_url_are_refused() {
        for name in ["", "video=1", "a/b", "v)", "v id", "x\"y"] {
            assert!(
                matches!(
                    video(name).validate(),
                    Err(SmoothError::BadTrack { field: "name", .. })
                ),
                "{name:?} accepted"
            );
        }
        assert_eq!(video("video_1.hd-2").validate(), Ok(()));
    }

    #[test]
    fn codec_private_data_must_be_hex() {
        let mut t = video("video");
        t.codec_private_data = "0001g0".into();
        assert!(matches!(
            t.validate(),
            Err(SmoothError::BadTrack {
                field: "CodecPrivateData",
                ..
            })
        ));
        t.codec_private_data = "000".into();
        assert!(t.validate().is_err());
    }
}
