//! The media initialization section and the keys in effect for a segment.
//!
//! `EXT-X-MAP` (RFC 8216 §4.3.2.5) and `EXT-X-KEY` (§4.3.2.4) are not
//! segment tags like `EXTINF`: each applies to every segment after it
//! until the next tag of its kind (a key, until the next key of the same
//! `KEYFORMAT`; `METHOD=NONE` ends encryption). The playlist model keeps
//! each tag on the segment it precedes, so an encoder that writes its MAP
//! once, above the first segment it lists, attaches it to that segment
//! only. A merged output that takes segments one at a time from two
//! playlists must therefore know, for each segment, which MAP and keys its
//! own playlist had in effect for it ([`InEffect::of_segments`]), and write
//! them again where its own window would otherwise lose them: above its
//! first segment, and wherever they change ([`InEffect::establish`]).

use std::collections::BTreeMap;

use crate::playlist::MediaPlaylist;

/// The `EXT-X-MAP` and `EXT-X-KEY` lines in effect for a segment, as the
/// encoder wrote them (byte-exact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InEffect {
    /// The last `EXT-X-MAP` line at or before the segment.
    pub map: Option<String>,
    /// The `EXT-X-KEY` lines in effect, one per `KEYFORMAT`, in the order
    /// they were written; empty when the segment is not encrypted.
    pub keys: Vec<String>,
}

const MAP: &str = "#EXT-X-MAP:";
const KEY: &str = "#EXT-X-KEY:";
/// What a playlist writes to end encryption (RFC 8216 §4.3.2.4).
pub const KEY_NONE: &str = "#EXT-X-KEY:METHOD=NONE";

impl InEffect {
    /// The state after `line` (any line; only MAP and KEY change it).
    pub fn apply(&mut self, line: &str) {
        if line.starts_with(MAP) {
            self.map = Some(line.to_owned());
        } else if let Some(attrs) = line.strip_prefix(KEY) {
            if attribute(attrs, "METHOD") == Some("NONE") {
                self.keys.clear();
            } else {
                let format = key_format(line);
                self.keys.retain(|k| key_format(k) != format);
                self.keys.push(line.to_owned());
            }
        }
    }

    /// The state after each of `lines`, in order.
    pub fn apply_all<'a>(&mut self, lines: impl IntoIterator<Item = &'a String>) {
        for l in lines {
            self.apply(l);
        }
    }

    /// What is in effect for each segment of `pl`, in order: the lines a
    /// reader of this playlist alone has seen at each segment's URI.
    pub fn of_segments(pl: &MediaPlaylist) -> Vec<InEffect> {
        let mut state = InEffect::default();
        pl.segments
            .iter()
            .map(|s| {
                state.apply_all(&s.tags);
                state.clone()
            })
            .collect()
    }

    fn key_set(&self) -> BTreeMap<&str, &str> {
        self.keys
            .iter()
            .map(|k| (key_format(k), k.as_str()))
            .collect()
    }

    /// The lines to write before a segment's own tags `own` so that a
    /// reader who had `self` in effect has `want` in effect at the
    /// segment's URI. Empty when `own` already establishes it (a segment
    /// that carries its own MAP gets no second one). A MAP cannot be
    /// taken back: a segment with no MAP in effect after one with a MAP
    /// gets nothing.
    pub fn establish(&self, own: &[String], want: &InEffect) -> Vec<String> {
        let mut lines = Vec::new();
        let own_map = own.iter().any(|l| l.starts_with(MAP));
        if !own_map && want.map.is_some() && self.map != want.map {
            lines.extend(want.map.clone());
        }
        // Keys the segment's own tags set are the segment's business; a
        // METHOD=NONE among them wipes whatever came before.
        let own_keys: Vec<&str> = own
            .iter()
            .filter(|l| l.starts_with(KEY))
            .map(|l| key_format(l))
            .collect();
        let own_none = own
            .iter()
            .any(|l| l.strip_prefix(KEY).and_then(|a| attribute(a, "METHOD")) == Some("NONE"));
        if !own_none {
            let (mut have, mut need) = (self.key_set(), want.key_set());
            have.retain(|f, _| !own_keys.contains(f));
            need.retain(|f, _| !own_keys.contains(f));
            if have != need {
                if have.keys().any(|f| !need.contains_key(f)) {
                    lines.push(KEY_NONE.to_owned());
                    lines.extend(need.values().map(|l| (*l).to_owned()));
                } else {
                    lines.extend(
                        need.iter()
                            .filter(|(f, l)| have.get(*f) != Some(*l))
                            .map(|(_, l)| (*l).to_owned()),
                    );
                }
            }
        }
        lines
    }
}

/// A key's `KEYFORMAT`; absent means `identity` (RFC 8216 §4.3.2.4).
fn key_format(line: &str) -> &str {
    line.strip_prefix(KEY)
        .and_then(|a| attribute(a, "KEYFORMAT"))
        .unwrap_or("identity")
}

/// The value of attribute `name` in an attribute list (RFC 8216 §4.2),
/// without quotes.
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let (key, after) = (rest[..eq].trim(), &rest[eq + 1..]);
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            let tail = &quoted[end + 1..];
            (
                &quoted[..end],
                tail.find(',').map_or("", |c| &tail[c + 1..]),
            )
        } else {
            match after.find(',') {
                Some(c) => (&after[..c], &after[c + 1..]),
                None => (after, ""),
            }
        };
        if key == name {
            return Some(value.trim());
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_media;

    fn s(l: &str) -> String {
        l.to_owned()
    }

    #[test]
    fn a_map_written_once_is_in_effect_for_every_later_segment() {
        let pl = parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\na.m4s\n#EXTINF:2,\nb.m4s\n#EXT-X-MAP:URI=\"init2.mp4\"\n#EXTINF:2,\nc.m4s\n").unwrap();
        let maps: Vec<_> = InEffect::of_segments(&pl)
            .into_iter()
            .map(|e| e.map)
            .collect();
        assert_eq!(
            maps,
            [
                Some(s("#EXT-X-MAP:URI=\"init.mp4\"")),
                Some(s("#EXT-X-MAP:URI=\"init.mp4\"")),
                Some(s("#EXT-X-MAP:URI=\"init2.mp4\""))
            ]
        );
    }

    #[test]
    fn keys_are_replaced_per_keyformat_and_ended_by_method_none() {
        let mut e = InEffect::default();
        let fairplay = "#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://a\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"";
        e.apply("#EXT-X-KEY:METHOD=AES-128,URI=\"k1.key\"");
        e.apply(fairplay);
        e.apply("#EXT-X-KEY:METHOD=AES-128,URI=\"k2.key\",IV=0x1");
        assert_eq!(
            e.keys,
            [
                s(fairplay),
                s("#EXT-X-KEY:METHOD=AES-128,URI=\"k2.key\",IV=0x1")
            ]
        );
        e.apply(KEY_NONE);
        assert!(e.keys.is_empty());
    }

    #[test]
    fn establishing_writes_only_what_differs_and_nothing_the_segment_carries() {
        let map = s("#EXT-X-MAP:URI=\"init.mp4\"");
        let k1 = s("#EXT-X-KEY:METHOD=AES-128,URI=\"k1.key\"");
        let want = InEffect {
            map: Some(map.clone()),
            keys: vec![k1.clone()],
        };
        let extinf = s("#EXTINF:2,");
        assert_eq!(
            InEffect::default().establish(std::slice::from_ref(&extinf), &want),
            [map.clone(), k1.clone()]
        );
        assert!(
            InEffect::default()
                .establish(&[map.clone(), k1.clone(), extinf.clone()], &want)
                .is_empty(),
            "the segment's own tags already carry them"
        );
        assert!(
            want.establish(std::slice::from_ref(&extinf), &want)
                .is_empty()
        );
        // From an encrypted pipeline to a clear one: encryption ends.
        let clear = InEffect {
            map: Some(map.clone()),
            keys: vec![],
        };
        assert_eq!(
            want.establish(std::slice::from_ref(&extinf), &clear),
            [s(KEY_NONE)]
        );
    }

    #[test]
    fn attributes_are_read_with_quoted_commas() {
        let l = "METHOD=SAMPLE-AES,URI=\"a,KEYFORMAT=x\",KEYFORMAT=\"y\"";
        assert_eq!(attribute(l, "KEYFORMAT"), Some("y"));
        assert_eq!(attribute(l, "METHOD"), Some("SAMPLE-AES"));
        assert_eq!(attribute(l, "IV"), None);
        // After an unquoted value, and after a quoted one ending in a comma.
        let l = "METHOD=AES-128,IV=0x1,KEYFORMAT=\"y\"";
        assert_eq!(attribute(l, "IV"), Some("0x1"));
        assert_eq!(
            attribute("URI=\"k,\",KEYFORMAT=\"y\"", "KEYFORMAT"),
            Some("y")
        );
    }
}
