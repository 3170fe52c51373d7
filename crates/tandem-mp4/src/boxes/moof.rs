//! `moof` (ISO/IEC 14496-12 §8.8.4): one fragment's `mfhd` sequence number
//! and, per `traf`, its `tfhd`, `trun`s and the Smooth `tfxd`/`tfrf` boxes.
//!
//! `trun` sample tables are walked only to add up sample durations, and
//! only after checking that the declared sample count fits in the box:
//! nothing is allocated per sample.

use super::children::{Fields, children};
use super::{BoxError, BoxHeader, BoxType, FourCc, TrackExtends};
use crate::smooth::{TFRF_UUID, TFXD_UUID, Tfrf, Tfxd};

/// A parsed `moof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovieFragment {
    /// `mfhd` sequence_number.
    pub sequence_number: u32,
    pub track_fragments: Vec<TrackFragment>,
}

/// One `traf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFragment {
    pub header: TrackFragmentHeader,
    pub runs: Vec<TrackRun>,
    /// The Smooth fragment's absolute time and duration, if present.
    pub tfxd: Option<Tfxd>,
    /// Times of the fragments that follow, if present.
    pub tfrf: Option<Tfrf>,
}

/// `tfhd` (ISO/IEC 14496-12 §8.8.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackFragmentHeader {
    pub track_id: u32,
    /// tf_flags (24 bits).
    pub flags: u32,
    pub base_data_offset: Option<u64>,
    pub sample_description_index: Option<u32>,
    pub default_sample_duration: Option<u32>,
    pub default_sample_size: Option<u32>,
    pub default_sample_flags: Option<u32>,
}

/// `trun` (ISO/IEC 14496-12 §8.8.8), summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackRun {
    /// tr_flags (24 bits).
    pub flags: u32,
    pub sample_count: u32,
    pub data_offset: Option<i32>,
    /// The sum of the per-sample durations, when the run carries them
    /// (flag 0x000100).
    pub duration_sum: Option<u64>,
}

impl MovieFragment {
    /// Reads a `moof` payload.
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, BoxError> {
        let start = header.offset + u64::from(header.header_len);
        let mut sequence_number = None;
        let mut track_fragments = Vec::new();
        for child in children(payload, start) {
            let child = child?;
            match child.header.box_type {
                BoxType::FourCc(FourCc::MFHD) => {
                    let mut f = Fields::new(child.header, child.payload);
                    f.full_box()?;
                    sequence_number = Some(f.u32("sequence_number")?);
                }
                BoxType::FourCc(FourCc::TRAF) => {
                    track_fragments.push(parse_traf(child.header, child.payload)?);
                }
                _ => {}
            }
        }
        Ok(Self {
            sequence_number: sequence_number.ok_or(BoxError::MissingChild {
                offset: header.offset,
                parent: FourCc::MOOF,
                child: FourCc::MFHD,
            })?,
            track_fragments,
        })
    }
}

impl TrackFragment {
    /// Samples in all runs.
    pub fn sample_count(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.sample_count)).sum()
    }

    /// The fragment's duration from its runs, in the track's timescale:
    /// per-sample durations where present, else the `tfhd` default, else
    /// the `trex` default. `None` when a run has no duration from any
    /// source, or the sum overflows.
    pub fn run_duration(&self, defaults: Option<&TrackExtends>) -> Option<u64> {
        let default = self
            .header
            .default_sample_duration
            .or(defaults.map(|d| d.default_sample_duration));
        self.runs.iter().try_fold(0u64, |acc, run| {
            let d = match run.duration_sum {
                Some(d) => d,
                None => u64::from(default?).checked_mul(u64::from(run.sample_count))?,
            };
            acc.checked_add(d)
        })
    }
}

fn parse_traf(header: BoxHeader, payload: &[u8]) -> Result<TrackFragment, BoxError> {
    let start = header.offset + u64::from(header.header_len);
    let mut tfhd = None;
    let mut runs = Vec::new();
    let mut tfxd = None;
    let mut tfrf = None;
    for child in children(payload, start) {
        let child = child?;
        match child.header.box_type {
            BoxType::FourCc(FourCc::TFHD) => tfhd = Some(parse_tfhd(child.header, child.payload)?),
            BoxType::FourCc(FourCc::TRUN) => runs.push(parse_trun(child.header, child.payload)?),
            BoxType::Uuid(TFXD_UUID) => tfxd = Some(Tfxd::parse(child.header, child.payload)?),
            BoxType::Uuid(TFRF_UUID) => tfrf = Some(Tfrf::parse(child.header, child.payload)?),
            _ => {}
        }
    }
    Ok(TrackFragment {
        header: tfhd.ok_or(BoxError::MissingChild {
            offset: header.offset,
            parent: FourCc::TRAF,
            child: FourCc::TFHD,
        })?,
        runs,
        tfxd,
        tfrf,
    })
}

fn parse_tfhd(header: BoxHeader, payload: &[u8]) -> Result<TrackFragmentHeader, BoxError> {
    let mut f = Fields::new(header, payload);
    let (_, flags) = f.full_box()?;
    let track_id = f.u32("track_ID")?;
    let base_data_offset = if flags & 0x01 != 0 {
        Some(f.u64("base_data_offset")?)
    } else {
        None
    };
    let mut opt = |bit: u32, field| -> Result<Option<u32>, BoxError> {
        if flags & bit != 0 {
            f.u32(field).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(TrackFragmentHeader {
        track_id,
        flags,
        base_data_offset,
        sample_description_index: opt(0x02, "sample_description_index")?,
        default_sample_duration: opt(0x08, "default_sample_duration")?,
        default_sample_size: opt(0x10, "default_sample_size")?,
        default_sample_flags: opt(0x20, "default_sample_flags")?,
    })
}

fn parse_trun(header: BoxHeader, payload: &[u8]) -> Result<TrackRun, BoxError> {
    let mut f = Fields::new(header, payload);
    let (_, flags) = f.full_box()?;
    let sample_count = f.u32("sample_count")?;
    let data_offset = if flags & 0x01 != 0 {
        Some(i32::from_be_bytes(f.array("data_offset")?))
    } else {
        None
    };
    if flags & 0x04 != 0 {
        f.skip(4, "first_sample_flags")?;
    }
    // duration 0x100, size 0x200, flags 0x400, composition offset 0x800.
    let per_sample = 4 * (flags & 0xf00).count_ones() as usize;
    let table = (per_sample as u64).saturating_mul(u64::from(sample_count));
    f.need(table, "sample table")?;
    let duration_sum = if flags & 0x100 != 0 {
        let mut sum = 0u64;
        for _ in 0..sample_count {
            let entry = f.bytes(per_sample, "sample table")?;
            let mut d = [0u8; 4];
            d.copy_from_slice(entry.get(..4).unwrap_or(&[0; 4]));
            sum += u64::from(u32::from_be_bytes(d));
        }
        Some(sum)
    } else {
        None
    };
    Ok(TrackRun {
        flags,
        sample_count,
        data_offset,
        duration_sum,
    })
}
