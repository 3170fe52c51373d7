//! PAT and PMT sections, reassembled from packet payloads.
//!
//! mpeg2ts-reader parses section headers and the PAT and PMT bodies, but its
//! section reassembly asserts on malformed input; this module reassembles
//! sections itself (ISO/IEC 13818-1 §2.4.4: a `pointer_field` at the start of
//! a unit, then sections back to back, `0xFF` stuffing after the last) and
//! hands only complete, length-checked sections to the library's parsers.

use mpeg2ts_reader::mpegts_crc;
use mpeg2ts_reader::psi::pat::{PatSection, ProgramDescriptor};
use mpeg2ts_reader::psi::pmt::PmtSection;
use mpeg2ts_reader::psi::{SectionCommonHeader, TableSyntaxHeader};

/// `table_id` of a program_association_section (Table 2-31).
pub(super) const PAT_TABLE_ID: u8 = 0x00;
/// `table_id` of a TS_program_map_section (Table 2-31).
pub(super) const PMT_TABLE_ID: u8 = 0x02;

/// Longest section a PID may carry: `section_length` is 12 bits.
const MAX_SECTION_LEN: usize = SectionCommonHeader::SIZE + 0x0fff;
const CRC_LEN: usize = 4;

/// Collects one PID's payloads into whole sections.
#[derive(Debug, Default)]
pub(super) struct SectionAssembler {
    buf: Vec<u8>,
    collecting: bool,
}

impl SectionAssembler {
    /// Feeds one packet's payload; returns the sections it completed.
    pub(super) fn push(&mut self, payload: &[u8], unit_start: bool) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        if !unit_start {
            if self.collecting {
                self.buf.extend_from_slice(payload);
                self.drain(&mut done);
            }
            return done;
        }
        let (Some(&pointer), Some(rest)) = (payload.first(), payload.get(1..)) else {
            return done;
        };
        let pointer = usize::from(pointer);
        let (Some(tail), Some(head)) = (rest.get(..pointer), rest.get(pointer..)) else {
            self.reset();
            return done;
        };
        if self.collecting {
            self.buf.extend_from_slice(tail);
            self.drain(&mut done);
        }
        self.buf.clear();
        self.buf.extend_from_slice(head);
        self.collecting = true;
        self.drain(&mut done);
        done
    }

    fn drain(&mut self, done: &mut Vec<Vec<u8>>) {
        loop {
            match self.buf.first() {
                None | Some(0xff) => return self.reset(),
                Some(_) => {}
            }
            let Some(header) = self.buf.get(..SectionCommonHeader::SIZE) else {
                return;
            };
            let len = SectionCommonHeader::SIZE + SectionCommonHeader::new(header).section_length;
            if self.buf.len() < len {
                if self.buf.len() > MAX_SECTION_LEN {
                    self.reset();
                }
                return;
            }
            let rest = self.buf.split_off(len);
            done.push(std::mem::replace(&mut self.buf, rest));
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.collecting = false;
    }
}

/// A complete section, as far as the check needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Table {
    /// A PAT section and the PIDs of the PMTs it names (NIT entries left out).
    Pat { pmt_pids: Vec<u16> },
    /// A PMT section and its elementary PIDs.
    Pmt { elementary_pids: Vec<u16> },
    /// Any other section, or one too short to hold the section syntax.
    Other,
}

/// A section failed its CRC_32 (ISO/IEC 13818-1 Annex A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CrcMismatch {
    pub(super) table_id: u8,
}

/// Parses one complete section as returned by [`SectionAssembler::push`].
pub(super) fn parse_section(section: &[u8]) -> Result<Table, CrcMismatch> {
    let Some(common) = section.get(..SectionCommonHeader::SIZE) else {
        return Ok(Table::Other);
    };
    let common = SectionCommonHeader::new(common);
    let body_start = SectionCommonHeader::SIZE + TableSyntaxHeader::SIZE;
    if !common.section_syntax_indicator || section.len() < body_start + CRC_LEN {
        return Ok(Table::Other);
    }
    if mpegts_crc::sum32(section) != 0 {
        return Err(CrcMismatch {
            table_id: common.table_id,
        });
    }
    let Some(body) = section.get(body_start..section.len() - CRC_LEN) else {
        return Ok(Table::Other);
    };
    Ok(match common.table_id {
        PAT_TABLE_ID => Table::Pat {
            pmt_pids: PatSection::new(body)
                .programs()
                .filter_map(|p| match p {
                    ProgramDescriptor::Program { pid, .. } => Some(u16::from(pid)),
                    ProgramDescriptor::Network { .. } => None,
                })
                .collect(),
        },
        PMT_TABLE_ID => match PmtSection::from_bytes(body) {
            Ok(pmt) => Table::Pmt {
                elementary_pids: pmt
                    .streams()
                    .map(|s| u16::from(s.elementary_pid()))
                    .collect(),
            },
            Err(_) => Table::Other,
        },
        _ => Table::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::{SectionAssembler, Table, parse_section};

    /// PAT naming program 1 on PMT PID 0x1000, as ffmpeg writes it.
    const PAT: [u8; 16] = [
        0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04,
        0xb2,
    ];

    #[test]
    fn pat_names_its_pmt_pid() {
        assert_eq!(
            parse_section(&PAT),
            Ok(Table::Pat {
                pmt_pids: vec![0x1000]
            })
        );
    }

    #[test]
    fn section_split_over_two_payloads_is_reassembled() {
        let mut a = SectionAssembler::default();
        let mut first = vec![0u8];
        first.extend_from_slice(&PAT[..5]);
        assert!(a.push(&first, true).is_empty());
        let mut second = PAT[5..].to_vec();
        second.extend_from_slice(&[0xff; 8]);
        assert_eq!(a.push(&second, false), vec![PAT.to_vec()]);
    }

    #[test]
    fn flipped_bit_fails_the_crc() {
        let mut bad = PAT;
        bad[9] ^= 0x01;
        assert!(parse_section(&bad).is_err());
    }

    #[test]
    fn pointer_past_the_payload_is_dropped() {
        let mut a = SectionAssembler::default();
        assert!(a.push(&[200, 0, 0], true).is_empty());
    }
}
