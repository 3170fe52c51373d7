//! Archive file names → the file's index.
//!
//! MediaLive's archive output names each file `folders/` + base name + name
//! modifier + `.` + a six-digit counter from `000000` + `.m2ts` (or `.ts`),
//! e.g. `curling-20171012T033162.000000.m2ts`. The name modifier may hold date
//! variables, so two files of one archive need not share anything but the
//! counter; the counter is the index. ffmpeg's segment muxer writes the same
//! shape with `-segment_format mpegts name.%06d.ts`.
//!
//! A [`NamePattern`] is that shape with the variable parts marked: `*` is any
//! text (shortest first), `{index}` one or more ASCII digits (longest first),
//! everything else literal. It matches a key's last path segment only.

const INDEX_TOKEN: &str = "{index}";

/// A pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern has no `{index}`.
    #[error(
        "pattern {pattern:?} has no {{index}}; mark where the counter is, e.g. \"*.{{index}}.m2ts\""
    )]
    NoIndex {
        /// The pattern as given.
        pattern: String,
    },
    /// The pattern has more than one `{index}`.
    #[error("pattern {pattern:?} has {count} {{index}} placeholders; keep exactly one")]
    ManyIndexes {
        /// The pattern as given.
        pattern: String,
        /// How many `{index}` it has.
        count: usize,
    },
    /// The pattern contains `/`, which a file name never does.
    #[error(
        "pattern {pattern:?} contains '/'; patterns match a key's file name, so drop the folders"
    )]
    HasSlash {
        /// The pattern as given.
        pattern: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Any,
    Index,
}

/// A file name shape with one `{index}`, such as `*.{index}.m2ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    source: String,
    tokens: Vec<Token>,
}

impl NamePattern {
    /// Parses a pattern: `*` matches any text, `{index}` one or more digits
    /// (exactly one required), anything else itself.
    ///
    /// ```
    /// use tandem_ts::NamePattern;
    /// let p = NamePattern::parse("*.{index}.m2ts")?;
    /// assert_eq!(p.index_of("curling-20171012T033162.000007.m2ts"), Some(7));
    /// # Ok::<(), tandem_ts::PatternError>(())
    /// ```
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.contains('/') {
            return Err(PatternError::HasSlash {
                pattern: pattern.to_owned(),
            });
        }
        let count = pattern.matches(INDEX_TOKEN).count();
        match count {
            0 => {
                return Err(PatternError::NoIndex {
                    pattern: pattern.to_owned(),
                });
            }
            1 => {}
            _ => {
                return Err(PatternError::ManyIndexes {
                    pattern: pattern.to_owned(),
                    count,
                });
            }
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            let token = if let Some(after) = rest.strip_prefix(INDEX_TOKEN) {
                rest = after;
                Token::Index
            } else if let Some(after) = rest.strip_prefix('*') {
                rest = after;
                Token::Any
            } else {
                literal.push(c);
                rest = rest.get(c.len_utf8()..).unwrap_or_default();
                continue;
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            // `**` matches what `*` matches.
            if !(token == Token::Any && tokens.last() == Some(&Token::Any)) {
                tokens.push(token);
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
        })
    }

    /// MediaLive's archive names with either extension: `*.{index}.m2ts`
    /// (its default) and `*.{index}.ts`.
    pub fn default_patterns() -> Vec<Self> {
        ["*.{index}.m2ts", "*.{index}.ts"]
            .into_iter()
            .filter_map(|p| Self::parse(p).ok())
            .collect()
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The index in `file_name`, if it matches. Given a whole key, only the
    /// part after the last `/` is matched. Digit runs that overflow `u64` do
    /// not match.
    pub fn index_of(&self, file_name: &str) -> Option<u64> {
        match_tokens(&self.tokens, file_name_of(file_name).as_bytes(), None)
    }

    /// The index from the first of `patterns` that matches `key`.
    pub fn first_match(patterns: &[Self], key: &str) -> Option<u64> {
        patterns.iter().find_map(|p| p.index_of(key))
    }
}

impl std::fmt::Display for NamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for NamePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The last path segment of an object key: `a/b/c.ts` → `c.ts`.
pub fn file_name_of(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, name)| name)
}

/// Matches `tokens` against `name`. Each `*` tries every length, so a
/// pattern of many `*` would take exponential time by plain backtracking;
/// a (token, offset) pair that failed once fails again whatever `{index}`
/// held (the rest of the match does not depend on it), so each is tried
/// once: at most tokens × name length states.
fn match_tokens(tokens: &[Token], name: &[u8], index: Option<u64>) -> Option<u64> {
    Matcher {
        tokens,
        name,
        failed: Vec::new(),
    }
    .run(0, 0, index)
}

struct Matcher<'a> {
    tokens: &'a [Token],
    name: &'a [u8],
    /// One bit per (token, offset) pair that failed: a bitmap, allocated
    /// at the first failure (most names match or fail without one), since
    /// a hash set's hashing cost more than the match itself.
    failed: Vec<u64>,
}

impl Matcher<'_> {
    /// The bit of (`t`, `at`): `t` ≤ tokens, `at` ≤ name length.
    fn bit(&self, t: usize, at: usize) -> usize {
        t * (self.name.len() + 1) + at
    }

    fn run(&mut self, t: usize, at: usize, index: Option<u64>) -> Option<u64> {
        let bit = self.bit(t, at);
        if self
            .failed
            .get(bit / 64)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        {
            return None;
        }
        let found = self.step(t, at, index);
        if found.is_none() {
            if self.failed.is_empty() {
                let bits = (self.tokens.len() + 1) * (self.name.len() + 1);
                self.failed = vec![0; bits.div_ceil(64)];
            }
            if let Some(w) = self.failed.get_mut(bit / 64) {
                *w |= 1 << (bit % 64);
            }
        }
        found
    }

    fn step(&mut self, t: usize, at: usize, index: Option<u64>) -> Option<u64> {
        let name = self.name.get(at..)?;
        let Some(token) = self.tokens.get(t) else {
            return if name.is_empty() { index } else { None };
        };
        match token {
            Token::Literal(lit) => {
                if name.starts_with(lit.as_bytes()) {
                    self.run(t + 1, at + lit.len(), index)
                } else {
                    None
                }
            }
            Token::Any => (at..=self.name.len()).find_map(|from| self.run(t + 1, from, index)),
            Token::Index => {
                let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
                (1..=digits).rev().find_map(|len| {
                    let value = parse_digits(name.get(..len)?)?;
                    self.run(t + 1, at + len, Some(value))
                })
            }
        }
    }
}

fn parse_digits(run: &[u8]) -> Option<u64> {
    run.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?
            .checked_add(u64::from(b.checked_sub(b'0')?))
    })
}

#[cfg(test)]
mod tests {
    use super::{NamePattern, PatternError, file_name_of};

    fn pattern(p: &str) -> NamePattern {
        NamePattern::parse(p).unwrap()
    }

    /// Found by the `names` fuzz target as a slow unit: a pattern of many
    /// `*` backtracked exponentially. Each (token, offset) is now tried
    /// once; this would not finish in any test's time by backtracking.
    #[test]
    fn a_pattern_of_many_stars_matches_in_polynomial_time() {
        let p = pattern(&format!("{}{{index}}.ts", "*x".repeat(40)));
        let name = format!("{}7.tsx", "x".repeat(200));
        assert_eq!(p.index_of(&name), None);
        assert_eq!(p.index_of(&format!("{}7.ts", "x".repeat(200))), Some(7));
    }

    #[test]
    fn medialive_default_name_gives_its_counter() {
        let p = pattern("*.{index}.m2ts");
        assert_eq!(p.index_of("curling-20171012T033162.000000.m2ts"), Some(0));
        assert_eq!(p.index_of("curling-20171012T033162.000123.m2ts"), Some(123));
        assert_eq!(
            p.index_of("archive/curling/curling-20171012T040000.000124.m2ts"),
            Some(124)
        );
    }

    #[test]
    fn name_modifier_with_dots_and_digits_does_not_confuse_the_index() {
        let p = pattern("*.{index}.m2ts");
        assert_eq!(p.index_of("ch.2017.10.12.000042.m2ts"), Some(42));
    }

    #[test]
    fn default_patterns_cover_m2ts_and_ts() {
        let ps = NamePattern::default_patterns();
        assert_eq!(NamePattern::first_match(&ps, "x/a.000003.m2ts"), Some(3));
        assert_eq!(
            NamePattern::first_match(&ps, "ffmpeg_segment_2s.000003.ts"),
            Some(3)
        );
        assert_eq!(NamePattern::first_match(&ps, "a.000003.mp4"), None);
        assert_eq!(NamePattern::first_match(&ps, "a.m2ts"), None);
        assert_eq!(NamePattern::first_match(&ps, "a..m2ts"), None);
        assert_eq!(NamePattern::first_match(&ps, "a.000003.m2ts/"), None);
    }

    #[test]
    fn index_takes_the_whole_digit_run() {
        assert_eq!(pattern("*{index}.ts").index_of("chan12345.ts"), Some(12345));
        assert_eq!(
            pattern("chan{index}*").index_of("chan12345-x.ts"),
            Some(12345)
        );
    }

    #[test]
    fn index_beyond_u64_does_not_match() {
        assert_eq!(
            pattern("*.{index}.ts").index_of("a.99999999999999999999999.ts"),
            None
        );
    }

    #[test]
    fn pattern_needs_exactly_one_index_and_no_slash() {
        assert_eq!(
            NamePattern::parse("*.m2ts"),
            Err(PatternError::NoIndex {
                pattern: "*.m2ts".into()
            })
        );
        assert_eq!(
            NamePattern::parse("{index}.{index}.ts"),
            Err(PatternError::ManyIndexes {
                pattern: "{index}.{index}.ts".into(),
                count: 2
            })
        );
        assert!(matches!(
            NamePattern::parse("a/*.{index}.ts"),
            Err(PatternError::HasSlash { .. })
        ));
    }

    #[test]
    fn braces_other_than_index_are_literal() {
        let p = pattern("{x}*.{index}.ts");
        assert_eq!(p.index_of("{x}a.7.ts"), Some(7));
        assert_eq!(p.index_of("xa.7.ts"), None);
    }

    #[test]
    fn non_ascii_names_match_without_panicking() {
        let p = pattern("*.{index}.ts");
        assert_eq!(p.index_of("é🎥.000001.ts"), Some(1));
        assert_eq!(pattern("é*{index}.ts").index_of("é9.ts"), Some(9));
    }

    #[test]
    fn file_name_is_the_last_segment() {
        assert_eq!(file_name_of("a/b/c.ts"), "c.ts");
        assert_eq!(file_name_of("c.ts"), "c.ts");
        assert_eq!(file_name_of("a/"), "");
    }
}
