//! The boxes inside a complete container payload, and bounds-checked reads
//! of a box's fields.
//!
//! Both work on a payload that is already whole in memory (the streaming
//! reader only hands out complete top-level boxes), so "need more bytes"
//! cannot happen here: a child that claims more than its parent holds is
//! [`BoxError::OverflowsParent`], a field past the payload's end is
//! [`BoxError::ShortPayload`].

use super::{BoxError, BoxHeader, BoxType, HeaderParse, SizeField, parse_header};

/// One child box: its header and its payload.
#[derive(Clone, Copy, Debug)]
pub struct Child<'a> {
    pub header: BoxHeader,
    pub payload: &'a [u8],
}

/// The children of a container, in order. Stops after the first error.
pub struct Children<'a> {
    rest: &'a [u8],
    offset: u64,
    failed: bool,
}

/// The boxes in `payload`, whose first byte is at `offset` in the body.
pub fn children(payload: &[u8], offset: u64) -> Children<'_> {
    Children {
        rest: payload,
        offset,
        failed: false,
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<Child<'a>, BoxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let available = self.rest.len() as u64;
        let result = match parse_header(self.rest, self.offset) {
            Ok(HeaderParse::NeedMore(_)) => Err(BoxError::OverflowsParent {
                offset: self.offset,
                box_type: partial_type(self.rest),
                size: 8,
                available,
            }),
            Ok(HeaderParse::Header(mut h)) => {
                if h.size_field == SizeField::ToEnd {
                    h.size = available;
                }
                if h.size > available {
                    Err(BoxError::OverflowsParent {
                        offset: self.offset,
                        box_type: h.box_type,
                        size: h.size,
                        available,
                    })
                } else {
                    // h.size <= available <= usize::MAX, header_len <= size.
                    let size = h.size as usize;
                    let payload = self
                        .rest
                        .get(usize::from(h.header_len)..size)
                        .unwrap_or_default();
                    self.rest = self.rest.get(size..).unwrap_or_default();
                    self.offset += h.size;
                    Ok(Child { header: h, payload })
                }
            }
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

fn partial_type(rest: &[u8]) -> BoxType {
    let mut t = [0u8; 4];
    for (d, s) in t.iter_mut().zip(rest.iter().skip(4)) {
        *d = *s;
    }
    BoxType::FourCc(super::FourCc(t))
}

/// Sequential big-endian field reads over one box's payload; every read is
/// bounds-checked and names the field it wanted.
pub(crate) struct Fields<'a> {
    data: &'a [u8],
    pos: usize,
    header: BoxHeader,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(header: BoxHeader, payload: &'a [u8]) -> Self {
        Self {
            data: payload,
            pos: 0,
            header,
        }
    }

    /// The payload's bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Checks that `n` more bytes are there, without reading them.
    pub(crate) fn need(&self, n: u64, field: &'static str) -> Result<(), BoxError> {
        if n > self.remaining() as u64 {
            return Err(self.short(field, (self.pos as u64).saturating_add(n)));
        }
        Ok(())
    }

    pub(crate) fn short(&self, field: &'static str, needed: u64) -> BoxError {
        BoxError::ShortPayload {
            offset: self.header.offset,
            box_type: self.header.box_type,
            field,
            needed,
            len: self.data.len() as u64,
        }
    }

    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], BoxError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.data.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.short(field, self.pos as u64 + n as u64)),
        }
    }

    pub(crate) fn skip(&mut self, n: usize, field: &'static str) -> Result<(), BoxError> {
        self.bytes(n, field).map(|_| ())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, BoxError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, BoxError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, BoxError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], BoxError> {
        let s = self.bytes(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A full box's `version` and 24-bit `flags` (ISO/IEC 14496-12 §4.2).
    pub(crate) fn full_box(&mut self) -> Result<(u8, u32), BoxError> {
        let v = self.u32("version and flags")?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// A full box's version, refusing anything but 0 and 1.
    pub(crate) fn version_0_or_1(&mut self) -> Result<(u8, u32), BoxError> {
        let (version, flags) = self.full_box()?;
        if version > 1 {
            return Err(BoxError::UnsupportedVersion {
                offset: self.header.offset,
                box_type: self.header.box_type,
                version,
            });
        }
        Ok((version, flags))
    }

    /// A field that is 32 bits in version 0 and 64 bits in version 1.
    pub(crate) fn u32_or_u64(&mut self, version: u8, field: &'static str) -> Result<u64, BoxError> {
        if version == 1 {
            self.u64(field)
        } else {
            self.u32(field).map(u64::from)
        }
    }
}
