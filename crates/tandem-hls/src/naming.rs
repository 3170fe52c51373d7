//! Segment counters in encoder file names.
//!
//! AWS Elemental MediaLive names segments base name + name modifier + a
//! zero-padded counter (`channel-high-00001.ts`); its documentation shows
//! `_` as the separator and its examples `-`, and ffmpeg writes
//! `channel0.ts`. So the counter is the run of digits just before the
//! extension, whatever precedes it.

/// The counter at the end of a file name's stem, if there is one:
/// `channel-high-00001.ts` → 1, `channel7.ts` → 7, `channel.m3u8` → None.
pub fn segment_counter(file_name: &str) -> Option<u64> {
    let stem = file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem);
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let tail = stem.get(stem.len() - digits..)?;
    if tail.is_empty() {
        return None;
    }
    tail.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::segment_counter;

    #[test]
    fn counter_is_the_trailing_digit_run_whatever_the_separator() {
        assert_eq!(segment_counter("channel-high-00001.ts"), Some(1));
        assert_eq!(segment_counter("channel_high_00042.ts"), Some(42));
        assert_eq!(segment_counter("channel7.ts"), Some(7));
        assert_eq!(segment_counter("channel.m3u8"), None);
        assert_eq!(segment_counter("12345"), Some(12345));
        assert_eq!(segment_counter("x99999999999999999999999.ts"), None);
    }
}
