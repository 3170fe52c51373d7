//! What retention knows of each input object and the rule that decides
//! whether it may go. No IO and no clock: every input carries `now`, which
//! must not decrease from one call to the next.
//!
//! An object is *named* while a current input playlist or the output
//! window names it. The rule, in order:
//! 1. A playlist (`.m3u8`, `.m3u`) is never removed: it is what names the
//!    rest, and the encoder replaces it in place.
//! 2. A named object is kept.
//! 3. An object that was named once is removed when it has been named by
//!    nothing for `after_window` (by default the output's grace period:
//!    the same promise the output gives its own segments).
//! 4. An object that nothing ever named is removed once it is `unnamed`
//!    old; where `unnamed` is `None` (containers and buckets bound to a
//!    channel, which may also hold archive files) it is never removed.
//! 5. With a channel's `keep_for`, nothing goes before it is that old.
//!
//! Ages count from when the object was published (its notice), else from
//! when a sweep first found it; the first sweep after a start has only the
//! file's modification time, turned into the same monotonic scale by the
//! caller.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use tandem_core::ObjectPath;

/// How long objects stay; see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// After an object left every window.
    pub after_window: Duration,
    /// Age of an object nothing ever named; `None`: kept.
    pub unnamed: Option<Duration>,
    /// Nothing goes before it is this old (a channel's input history).
    pub keep_for: Option<Duration>,
}

/// The fate of one object at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Remove,
    /// A playlist.
    KeepPlaylist,
    /// An input playlist or the output window names it.
    KeepNamed,
    /// Not yet due; may go at the given instant (if nothing names it by
    /// then), or never (`None`).
    KeepUntil(Option<Instant>),
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// Published, or first found.
    first: Instant,
    /// Since when nothing names it; `None` while never named.
    left: Option<Instant>,
    /// The sweep pass that last found it (or that it arrived in).
    pass: u64,
    /// Its modification time as a listing showed it: which object of that
    /// name this record is about. `None` until a listing showed it.
    modified: Option<SystemTime>,
}

/// What a listing says about the object a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The object the record has been about.
    Same,
    /// First listed now: recorded; it may go from the next walk on.
    FirstListed,
    /// Another object under the same name (an encoder reused it): a new
    /// record, as if just published.
    Replaced,
}

/// Every input object of a channel that retention has seen.
#[derive(Debug, Default)]
pub struct Ledger {
    objects: HashMap<ObjectPath, Seen>,
    named: HashSet<ObjectPath>,
    pass: u64,
}

/// Whether `key` names a playlist.
pub fn is_playlist(key: &ObjectPath) -> bool {
    key.file_name().is_some_and(|n| {
        let n = n.to_ascii_lowercase();
        n.ends_with(".m3u8") || n.ends_with(".m3u")
    })
}

impl Ledger {
    /// An object was published whole at `key`: a new object, whatever an
    /// earlier one of that name went through (encoders reuse names after
    /// a restart).
    pub fn on_published(&mut self, now: Instant, key: ObjectPath) {
        let left = self.named.contains(&key).then_some(now);
        self.objects.insert(
            key,
            Seen {
                first: now,
                left,
                pass: self.pass,
                modified: None,
            },
        );
    }

    /// What the input playlists and the output window name now. Objects no
    /// longer named start their `after_window` time now.
    pub fn on_named(&mut self, now: Instant, named: HashSet<ObjectPath>) {
        let pass = self.pass;
        for gone in self.named.difference(&named) {
            if let Some(s) = self.objects.get_mut(gone) {
                s.left = Some(now);
            } else {
                self.objects.insert(
                    gone.clone(),
                    Seen {
                        first: now,
                        left: Some(now),
                        pass,
                        modified: None,
                    },
                );
            }
        }
        for k in named.difference(&self.named) {
            let s = self.objects.entry(k.clone()).or_insert(Seen {
                first: now,
                left: None,
                pass,
                modified: None,
            });
            // Marks it named once: when it leaves, `after_window` counts
            // from then, whatever its age.
            s.left = Some(now);
        }
        self.named = named;
    }

    /// Judges the object at `key`, found by a sweep; `found` is its age's
    /// start if the ledger has not seen it before.
    pub fn judge(&mut self, now: Instant, key: &ObjectPath, found: Instant, r: &Rules) -> Verdict {
        let pass = self.pass;
        let s = self.objects.entry(key.clone()).or_insert(Seen {
            first: found.min(now),
            left: None,
            pass,
            modified: None,
        });
        s.pass = pass;
        if is_playlist(key) {
            return Verdict::KeepPlaylist;
        }
        if self.named.contains(key) {
            return Verdict::KeepNamed;
        }
        let due = match s.left {
            Some(left) => Some(left + r.after_window),
            None => r.unnamed.map(|u| s.first + u),
        };
        let due = due.map(|d| match r.keep_for {
            Some(k) => d.max(s.first + k),
            None => d,
        });
        match due {
            Some(d) if now >= d => Verdict::Remove,
            other => Verdict::KeepUntil(other),
        }
    }

    /// Checks a listed object against its record. An object committed,
    /// then listed by a walk, before its upload notice arrived would
    /// otherwise be judged on the record of an older object of the same
    /// name; comparing modification times tells them apart.
    pub fn identify(&mut self, now: Instant, key: &ObjectPath, modified: SystemTime) -> Identity {
        let Some(s) = self.objects.get_mut(key) else {
            return Identity::FirstListed;
        };
        match s.modified {
            Some(m) if m == modified => Identity::Same,
            Some(_) => {
                self.on_published(now, key.clone());
                if let Some(s) = self.objects.get_mut(key) {
                    s.modified = Some(modified);
                }
                Identity::Replaced
            }
            None => {
                s.modified = Some(modified);
                Identity::FirstListed
            }
        }
    }

    /// The object at `key` is gone.
    pub fn forget(&mut self, key: &ObjectPath) {
        self.objects.remove(key);
    }

    /// A sweep has looked at every object: what it did not find is gone.
    pub fn end_pass(&mut self) {
        let pass = self.pass;
        self.objects.retain(|_, s| s.pass == pass);
        self.pass += 1;
    }

    /// Objects the ledger holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the ledger holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ObjectPath {
        ObjectPath::from_url_path(s).unwrap_or_default()
    }

    const RULES: Rules = Rules {
        after_window: Duration::from_secs(60),
        unnamed: Some(Duration::from_secs(600)),
        keep_for: None,
    };

    #[test]
    fn a_segment_goes_exactly_after_window_after_nothing_names_it() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut l = Ledger::default();
        let seg = key("news/0/live/a1.ts");
        l.on_published(t0, seg.clone());
        l.on_named(s(1), HashSet::from([seg.clone()]));
        assert_eq!(l.judge(s(30), &seg, s(30), &RULES), Verdict::KeepNamed);
        l.on_named(s(40), HashSet::new());
        assert_eq!(
            l.judge(s(99), &seg, s(99), &RULES),
            Verdict::KeepUntil(Some(s(100)))
        );
        assert_eq!(l.judge(s(100), &seg, s(100), &RULES), Verdict::Remove);
    }

    #[test]
    fn playlists_are_never_removed_and_unnamed_objects_go_when_old() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut l = Ledger::default();
        let pl = key("news/0/live/channel.m3u8");
        assert_eq!(l.judge(s(9999), &pl, t0, &RULES), Verdict::KeepPlaylist);
        let stray = key("news/0/thumb.jpg");
        l.on_published(s(10), stray.clone());
        assert_eq!(
            l.judge(s(609), &stray, s(609), &RULES),
            Verdict::KeepUntil(Some(s(610)))
        );
        assert_eq!(l.judge(s(610), &stray, s(610), &RULES), Verdict::Remove);
        let bound = Rules {
            unnamed: None,
            ..RULES
        };
        assert_eq!(
            l.judge(s(5000), &stray, s(5000), &bound),
            Verdict::KeepUntil(None)
        );
    }

    #[test]
    fn a_channel_s_history_is_kept_for_its_keep_for_from_arrival() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut l = Ledger::default();
        let seg = key("news/0/a.ts");
        l.on_published(t0, seg.clone());
        l.on_named(s(2), HashSet::from([seg.clone()]));
        l.on_named(s(20), HashSet::new());
        let dvr = Rules {
            keep_for: Some(Duration::from_secs(3600)),
            ..RULES
        };
        assert_eq!(
            l.judge(s(3599), &seg, s(3599), &dvr),
            Verdict::KeepUntil(Some(s(3600)))
        );
        assert_eq!(l.judge(s(3600), &seg, s(3600), &dvr), Verdict::Remove);
    }

    #[test]
    fn a_republished_name_is_a_new_object() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut l = Ledger::default();
        let seg = key("news/0/a0.ts");
        l.on_named(s(1), HashSet::from([seg.clone()]));
        l.on_named(s(2), HashSet::new());
        // The encoder restarted and uploads a0.ts again, not yet named.
        l.on_published(s(500), seg.clone());
        assert_eq!(
            l.judge(s(501), &seg, s(501), &RULES),
            Verdict::KeepUntil(Some(s(1100)))
        );
    }

    #[test]
    fn a_pass_forgets_what_it_did_not_find() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.on_published(t0, key("a/0/x.ts"));
        l.end_pass();
        assert_eq!(l.len(), 1, "arrived during the pass");
        l.end_pass();
        assert_eq!(l.len(), 0, "not found by a whole pass");
    }

    #[test]
    fn a_reused_name_listed_before_its_notice_is_not_judged_on_the_old_record() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let w = |n: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n);
        let mut l = Ledger::default();
        let seg = key("news/0/a0.ts");
        l.on_named(s(1), HashSet::from([seg.clone()]));
        assert_eq!(l.identify(s(1), &seg, w(1)), Identity::FirstListed);
        assert_eq!(l.identify(s(6), &seg, w(1)), Identity::Same);
        l.on_named(s(2), HashSet::new());
        assert_eq!(l.judge(s(3600), &seg, s(3600), &RULES), Verdict::Remove);
        // An hour later the encoder uploads a0.ts again; a walk lists it
        // before the upload's notice arrives: another object.
        assert_eq!(l.identify(s(3600), &seg, w(3600)), Identity::Replaced);
        assert_eq!(
            l.judge(s(3600), &seg, s(3600), &RULES),
            Verdict::KeepUntil(Some(s(4200)))
        );
        assert_eq!(l.identify(s(3605), &seg, w(3600)), Identity::Same);
    }
}
