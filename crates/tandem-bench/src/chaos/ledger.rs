//! What the campaign sent, and what may be found after a crash (no IO).
//!
//! Every upload is entered before its first byte goes out and settled
//! when its answer arrives. A key then allows a set of states: after a
//! `2xx`, exactly the state that upload produced; an upload that was not
//! answered `2xx` (the server was killed, or it refused) adds its state to
//! what the key may hold, since a whole body may have been published just
//! before the kill. Anything else found at a key is a violation: of
//! [`Invariant::Acknowledged`] when an answered upload's bytes are gone or
//! changed, of [`Invariant::OnlyWhole`] when bytes appear that no upload
//! sent whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sha2::{Digest, Sha256};

/// The promises checked after every restart, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// Every object whose upload was answered 2xx is present, byte-exact.
    Acknowledged,
    /// No object is visible unless some upload sent exactly its bytes.
    OnlyWhole,
    /// `staging/` holds nothing older than the restart.
    Staging,
    /// Channels and archive pairs keep their definitions and credentials.
    Definitions,
    /// Output playlists parse, never go back, and name readable segments.
    Output,
    /// The server comes back after a kill.
    Restart,
}

impl Invariant {
    pub const ALL: [Invariant; 6] = [
        Self::Acknowledged,
        Self::OnlyWhole,
        Self::Staging,
        Self::Definitions,
        Self::Output,
        Self::Restart,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Acknowledged => "acknowledged objects present with exactly their bytes",
            Self::OnlyWhole => "no object visible unless whole",
            Self::Staging => "staging/ holds nothing older than the restart",
            Self::Definitions => {
                "channels and archive pairs keep their definitions and credentials"
            }
            Self::Output => "output playlists parse, never go back, name readable segments",
            Self::Restart => "the server restarts",
        }
    }
}

/// An object's content, by length and SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct Body {
    pub len: u64,
    pub sha256: [u8; 32],
}

impl Body {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            len: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes sha256 ", self.len)?;
        for b in &self.sha256[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// What a key holds: nothing, or an object.
pub type State = Option<Body>;

fn describe(s: &State) -> String {
    match s {
        None => "absent".into(),
        Some(b) => format!("{b:?}"),
    }
}

/// What was found at a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    State(State),
    /// Only the size is known (a check on disk).
    Size(Option<u64>),
    /// The read failed (an HTTP status other than 200 or 404).
    Unreadable(String),
}

/// One broken promise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: Invariant,
    pub point: usize,
    pub detail: String,
}

#[derive(Debug, Clone)]
struct KeyState {
    /// What the key may hold; after a 2xx answer, or once seen after a
    /// restart, exactly one state.
    allowed: Vec<State>,
}

impl Default for KeyState {
    fn default() -> Self {
        Self {
            allowed: vec![None],
        }
    }
}

/// Every key the campaign wrote, and the uploads not yet answered.
#[derive(Debug, Default)]
pub struct Ledger {
    keys: BTreeMap<String, KeyState>,
    pending: HashMap<u64, Vec<(String, State)>>,
    next: u64,
    touched: BTreeSet<String>,
}

impl Ledger {
    /// Enters an operation that sets each key to its state (a PUT: one
    /// key; a MOVE: the source absent and the destination). Returns its id.
    pub fn begin(&mut self, changes: Vec<(String, State)>) -> u64 {
        self.next += 1;
        for (k, _) in &changes {
            self.keys.entry(k.clone()).or_default();
            self.touched.insert(k.clone());
        }
        self.pending.insert(self.next, changes);
        self.next
    }

    /// Settles an operation: answered 2xx (`acked`) or not.
    pub fn finish(&mut self, id: u64, acked: bool) {
        let Some(changes) = self.pending.remove(&id) else {
            return;
        };
        for (k, state) in changes {
            let ks = self.keys.entry(k).or_default();
            if acked {
                ks.allowed = vec![state];
            } else if !ks.allowed.contains(&state) {
                ks.allowed.push(state);
            }
        }
    }

    /// At a kill: every operation still waiting for its answer may or may
    /// not have taken effect.
    pub fn abandon_all(&mut self) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.finish(id, false);
        }
    }

    /// Every key the campaign ever wrote.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key may hold some object.
    pub fn may_exist(&self, key: &str) -> bool {
        self.keys
            .get(key)
            .is_some_and(|k| k.allowed.iter().any(Option::is_some))
    }

    /// The keys written since the last call (the ones to read back whole).
    pub fn take_touched(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.touched)
    }

    /// Judges what was found at `key`; a found state becomes the only one
    /// allowed from now on (a published object must stay as it is).
    pub fn check(&mut self, key: &str, found: &Observed, point: usize) -> Option<Violation> {
        let ks = self.keys.entry(key.to_owned()).or_default();
        let ok = match found {
            Observed::State(s) => ks.allowed.contains(s),
            Observed::Size(n) => ks.allowed.iter().any(|a| a.as_ref().map(|b| b.len) == *n),
            Observed::Unreadable(_) => false,
        };
        let violation = (!ok).then(|| {
            let expected = ks
                .allowed
                .iter()
                .map(describe)
                .collect::<Vec<_>>()
                .join(" or ");
            let found_text = match found {
                Observed::State(s) => describe(s),
                Observed::Size(Some(n)) => format!("{n} bytes on disk"),
                Observed::Size(None) => "absent on disk".into(),
                Observed::Unreadable(why) => format!("unreadable ({why})"),
            };
            // Bytes where nothing was promised (the key may be absent) are
            // bytes no upload sent whole; anything else breaks a promise.
            let invariant = match found {
                Observed::State(Some(_)) | Observed::Size(Some(_))
                    if ks.allowed.contains(&None) =>
                {
                    Invariant::OnlyWhole
                }
                _ => Invariant::Acknowledged,
            };
            Violation {
                invariant,
                point,
                detail: format!("{key}: expected {expected}, found {found_text}"),
            }
        });
        if let Observed::State(s) = found {
            ks.allowed = vec![s.clone()];
        }
        violation
    }
}

/// Definitions (channels, archive pairs) the campaign created, patched or
/// deleted, with the same allowed-states rule as objects: the state is the
/// canonical text of the definition's credentials and settings.
#[derive(Debug, Default)]
pub struct Definitions {
    defs: BTreeMap<String, DefState>,
}

#[derive(Debug, Clone)]
struct DefState {
    allowed: Vec<Option<String>>,
    /// A create whose answer was lost: it may exist with credentials the
    /// campaign never saw.
    unknown: bool,
}

impl Definitions {
    /// An operation answered 2xx: the definition is now `state`.
    pub fn acked(&mut self, id: &str, state: Option<String>) {
        self.defs.insert(
            id.to_owned(),
            DefState {
                allowed: vec![state],
                unknown: false,
            },
        );
    }

    /// An operation not answered 2xx: it may have taken effect. `None` as
    /// `state` with `created_unknown` is a create whose credentials are
    /// unknown.
    pub fn maybe(&mut self, id: &str, state: Option<String>, created_unknown: bool) {
        let d = self.defs.entry(id.to_owned()).or_insert(DefState {
            allowed: vec![None],
            unknown: false,
        });
        if created_unknown {
            d.unknown = true;
        } else if !d.allowed.contains(&state) {
            d.allowed.push(state);
        }
    }

    pub fn ids(&self) -> Vec<String> {
        self.defs.keys().cloned().collect()
    }

    /// The state the definition must have, when only one is allowed.
    pub fn expected(&self, id: &str) -> Option<&Option<String>> {
        let d = self.defs.get(id)?;
        (d.allowed.len() == 1 && !d.unknown).then(|| &d.allowed[0])
    }

    /// Judges what the control API shows for `id`; what it shows becomes
    /// the definition's only allowed state.
    pub fn check(&mut self, id: &str, found: Option<String>, point: usize) -> Option<Violation> {
        let d = self.defs.get_mut(id)?;
        let ok = d.allowed.contains(&found) || (d.unknown && found.is_some());
        let expected = d
            .allowed
            .iter()
            .map(|s| s.as_deref().unwrap_or("absent").to_owned())
            .collect::<Vec<_>>()
            .join(" or ");
        d.allowed = vec![found.clone()];
        d.unknown = false;
        (!ok).then(|| Violation {
            invariant: Invariant::Definitions,
            point,
            detail: format!(
                "{id}: expected {expected}, found {}",
                found.as_deref().unwrap_or("absent")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> State {
        Some(Body::of(s.as_bytes()))
    }

    #[test]
    fn an_answered_upload_must_be_found_whole_and_an_unanswered_one_may_be() {
        let mut l = Ledger::default();
        let id = l.begin(vec![("k".into(), b("v1"))]);
        l.finish(id, true);
        assert_eq!(l.check("k", &Observed::State(b("v1")), 1), None);
        // v2 sent, the server killed before it answered: v1 or v2.
        l.begin(vec![("k".into(), b("v2"))]);
        l.abandon_all();
        assert_eq!(l.check("k", &Observed::State(b("v2")), 2), None);
        // Once seen after a restart, v2 must stay.
        let v = l.check("k", &Observed::State(b("v1")), 3).unwrap();
        assert_eq!(v.invariant, Invariant::Acknowledged);
        let v = l.check("k", &Observed::State(None), 4).unwrap();
        assert_eq!(v.invariant, Invariant::Acknowledged);
    }

    #[test]
    fn bytes_nobody_sent_whole_are_only_whole_violations() {
        let mut l = Ledger::default();
        l.begin(vec![("k".into(), b("whole"))]);
        l.abandon_all();
        let v = l.check("k", &Observed::State(b("who")), 1).unwrap();
        assert_eq!(v.invariant, Invariant::OnlyWhole, "{v:?}");
        // A truncated acknowledged object is a broken acknowledgement.
        let id = l.begin(vec![("j".into(), b("answered"))]);
        l.finish(id, true);
        let v = l.check("j", &Observed::State(b("answere")), 1).unwrap();
        assert_eq!(v.invariant, Invariant::Acknowledged, "{v:?}");
        assert_eq!(
            l.check("j", &Observed::Size(Some(7)), 2)
                .map(|v| v.invariant),
            None,
            "the truncated state was seen and is now the key's state"
        );
    }

    #[test]
    fn a_move_empties_its_source() {
        let mut l = Ledger::default();
        let id = l.begin(vec![("a.part".into(), b("x"))]);
        l.finish(id, true);
        let id = l.begin(vec![("a.part".into(), None), ("a".into(), b("x"))]);
        l.finish(id, true);
        assert!(l.check("a.part", &Observed::State(None), 1).is_none());
        assert!(l.check("a", &Observed::Size(Some(1)), 1).is_none());
        assert!(!l.may_exist("a.part"));
    }

    #[test]
    fn definitions_keep_their_credentials() {
        let mut d = Definitions::default();
        d.acked("c1", Some("u:p".into()));
        assert!(d.check("c1", Some("u:p".into()), 1).is_none());
        assert!(d.check("c1", Some("u:q".into()), 2).is_some());
        d.maybe("c2", None, true);
        assert!(d.check("c2", Some("anything".into()), 3).is_none());
        d.acked("c3", None);
        assert!(d.check("c3", Some("back".into()), 3).is_some());
    }
}
