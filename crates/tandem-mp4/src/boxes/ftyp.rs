//! `ftyp`, the file type box (ISO/IEC 14496-12 §4.3): the first box of a
//! Smooth push, with major brand `isml` from ffmpeg and IIS-era encoders,
//! `piff` or `iso6`/`cmfc` from others.

use super::children::Fields;
use super::{BoxError, BoxHeader, FourCc};

/// A parsed `ftyp` box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ftyp {
    pub major_brand: FourCc,
    pub minor_version: u32,
    pub compatible_brands: Vec<FourCc>,
}

impl Ftyp {
    /// Reads an `ftyp` payload. A trailing partial brand (fewer than four
    /// bytes) is refused.
    pub fn parse(header: BoxHeader, payload: &[u8]) -> Result<Self, BoxError> {
        let mut f = Fields::new(header, payload);
        let major_brand = FourCc(f.array("major_brand")?);
        let minor_version = f.u32("minor_version")?;
        let mut compatible_brands = Vec::with_capacity(f.remaining() / 4);
        while f.remaining() > 0 {
            compatible_brands.push(FourCc(f.array("compatible_brands")?));
        }
        Ok(Self {
            major_brand,
            minor_version,
            compatible_brands,
        })
    }
}
