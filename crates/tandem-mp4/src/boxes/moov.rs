//! `moov` (ISO/IEC 14496-12 §8.2): the tracks of a push, enough to map a
//! fragment's track id to its timescale, handler and defaults.
//!
//! Reads `mvhd` (movie timescale), each `trak`'s `tkhd` (track id),
//! `mdia`/`mdhd` (media timescale, the unit of every `tfxd` and `trun`
//! value) and `mdia`/`hdlr` (handler: `vide`, `soun`, `text`, `sbtl`,
//! `meta`), and `mvex`/`trex` (defaults a `trun` falls back to). Sample
//! tables are left alone: a fragmented push carries its samples in `moof`.

use super::children::{Fields, children};
use super::{BoxError, BoxHeader, BoxType, FourCc};

/// The parts of `moov` a fragmented push needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movie {
    /// `mvhd` timescale, if `mvhd` is present.
    pub timescale: Option<u32>,
    pub tracks: Vec<MovieTrack>,
}

/// One `trak`, with its `trex` defaults when `mvex` has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovieTrack {
    /// `tkhd` track_ID.
    pub track_id: u32,
    /// `mdhd` timescale: units per second of this track's times.
    pub timescale: u32,
    /// `hdlr` handler_type, if `hdlr` is present.
    pub handler: Option<FourCc>,
    pub defaults: Option<TrackExtends>,
}

/// `trex` (ISO/IEC 14496-12 §8.8.3): per-track sample defaults for
/// fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackExtends {
    pub track_id: u32,
    pub default_sample_description_index: u32,
    pub default_sample_duration: u32,
    pub default_sample_size: u32,
    pub default_sample_flags: u32,
}

impl Movie {
    /// Reads a `moov` payload whose first byte is at `offset` in the body.
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, BoxError> {
        let start = header.offset + u64::from(header.header_len);
        let mut timescale = None;
        let mut tracks = Vec::new();
        let mut trexes = Vec::new();
        for child in children(payload, start) {
            let child = child?;
            match child.header.box_type {
                BoxType::FourCc(FourCc::MVHD) => {
                    let mut f = Fields::new(child.header, child.payload);
                    let (version, _) = f.version_0_or_1()?;
                    f.u32_or_u64(version, "creation_time")?;
                    f.u32_or_u64(version, "modification_time")?;
                    timescale = Some(f.u32("timescale")?);
                }
                BoxType::FourCc(FourCc::TRAK) => {
                    tracks.push(parse_trak(child.header, child.payload)?);
                }
                BoxType::FourCc(FourCc::MVEX) => {
                    let start = child.header.offset + u64::from(child.header.header_len);
                    for c in children(child.payload, start) {
                        let c = c?;
                        if c.header.box_type == BoxType::FourCc(FourCc::TREX) {
                            trexes.push(parse_trex(c.header, c.payload)?);
                        }
                    }
                }
                _ => {}
            }
        }
        for t in &mut tracks {
            t.defaults = trexes.iter().find(|x| x.track_id == t.track_id).copied();
        }
        Ok(Self { timescale, tracks })
    }

    /// The track with this `tkhd` track_ID.
    pub fn track(&self, track_id: u32) -> Option<&MovieTrack> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

fn parse_trak(header: BoxHeader, payload: &[u8]) -> Result<MovieTrack, BoxError> {
    let start = header.offset + u64::from(header.header_len);
    let mut track_id = None;
    let mut timescale = None;
    let mut handler = None;
    for child in children(payload, start) {
        let child = child?;
        match child.header.box_type {
            BoxType::FourCc(FourCc::TKHD) => {
                let mut f = Fields::new(child.header, child.payload);
                let (version, _) = f.version_0_or_1()?;
                f.u32_or_u64(version, "creation_time")?;
                f.u32_or_u64(version, "modification_time")?;
                track_id = Some(f.u32("track_ID")?);
            }
            BoxType::FourCc(FourCc::MDIA) => {
                let start = child.header.offset + u64::from(child.header.header_len);
                for c in children(child.payload, start) {
                    let c = c?;
                    match c.header.box_type {
                        BoxType::FourCc(FourCc::MDHD) => {
                            let mut f = Fields::new(c.header, c.payload);
                            let (version, _) = f.version_0_or_1()?;
                            f.u32_or_u64(version, "creation_time")?;
                            f.u32_or_u64(version, "modification_time")?;
                            timescale = Some(f.u32("timescale")?);
                        }
                        BoxType::FourCc(FourCc::HDLR) => {
                            let mut f = Fields::new(c.header, c.payload);
                            f.full_box()?;
                            f.skip(4, "pre_defined")?;
                            handler = Some(FourCc(f.array("handler_type")?));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let missing = |child| BoxError::MissingChild {
        offset: header.offset,
        parent: FourCc::TRAK,
        child,
    };
    Ok(MovieTrack {
        track_id: track_id.ok_or_else(|| missing(FourCc::TKHD))?,
        timescale: timescale.ok_or_else(|| missing(FourCc::MDHD))?,
        handler,
        defaults: None,
    })
}

fn parse_trex(header: BoxHeader, payload: &[u8]) -> Result<TrackExtends, BoxError> {
    let mut f = Fields::new(header, payload);
    f.full_box()?;
    Ok(TrackExtends {
        track_id: f.u32("track_ID")?,
        default_sample_description_index: f.u32("default_sample_description_index")?,
        default_sample_duration: f.u32("default_sample_duration")?,
        default_sample_size: f.u32("default_sample_size")?,
        default_sample_flags: f.u32("default_sample_flags")?,
    })
}
