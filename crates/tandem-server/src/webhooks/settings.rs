//! A webhook's settings, as the TOML file's `[[webhooks]]` tables give
//! them, and their validation.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::outbox::RetryPolicy;

/// The kinds sent when a webhook names none: what someone must act on.
/// Input lost and restored, a switch, a segment neither pipeline has, an
/// archive index whole in neither bucket, an output that ended or resumed,
/// a UDP leg lost.
pub const DEFAULT_KINDS: &[&str] = &[
    "input_lost",
    "input_restored",
    "switch",
    "segment_missing",
    "index_uncovered",
    "ended",
    "output_resumed",
    "udp_leg_lost",
];

/// Every kind a webhook may ask for (`"*"` asks for all). A kind raised by
/// a new event source is added here, so that a misspelt kind in a
/// configuration is refused instead of silently never matching.
pub const KNOWN_KINDS: &[&str] = &[
    "input_state",
    "input_lost",
    "input_restored",
    "input_restarted",
    "switch",
    "segment_missing",
    "segment_filled",
    "ended",
    "output_resumed",
    "index_uncovered",
    "udp_leg_lost",
    "udp_leg_restored",
    "udp_switch",
    "udp_output_lost",
    "udp_stream_restarted",
];

/// About half a megabyte of events per webhook (an event is a few hundred
/// bytes): a minute-long receiver outage during a bad minute of 50
/// channels.
pub const DEFAULT_QUEUE: usize = 1000;
/// With the default backoff, an event is tried for about two minutes
/// (1 + 2 + 4 + … + 60 s): a receiver that restarts loses nothing.
pub const DEFAULT_ATTEMPTS: u32 = 8;
/// A receiver that has not answered in 10 s is treated as down.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A value kept out of logs and debug output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One webhook.
///
/// ```toml
/// [[webhooks]]
/// url = "https://alerts.example.com/tandem"   # http or https; required
/// name = "pager"                # metrics label; default: the URL's host:port
/// kinds = ["input_lost", "switch"]             # default: DEFAULT_KINDS; "*" for all
/// bearer_token = "…"            # sent as Authorization: Bearer …
/// secret = "…"                  # X-Tandem-Signature-256: sha256=HMAC(secret, body)
/// queue = 1000                  # events held while the receiver is down
/// attempts = 8                  # per event, the first included
/// timeout_ms = 10000            # per request
/// backoff_initial_ms = 1000     # doubles after each failure …
/// backoff_max_ms = 60000        # … up to this
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub queue: Option<usize>,
    #[serde(default)]
    pub attempts: Option<u32>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub backoff_initial_ms: Option<u64>,
    #[serde(default)]
    pub backoff_max_ms: Option<u64>,
}

/// Why a webhook setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("webhook {url:?}: {reason}")]
    Invalid { url: String, reason: String },
    #[error(
        "two webhooks are named {name:?} (the default name is the URL's host:port): give each its own `name`"
    )]
    DuplicateName { name: String },
}

/// A webhook's settings, checked and with defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    pub name: String,
    /// `None`: every kind.
    pub kinds: Option<BTreeSet<String>>,
    pub bearer_token: Option<Secret>,
    pub secret: Option<Secret>,
    pub timeout: Duration,
    pub policy: RetryPolicy,
}

impl Webhook {
    /// Whether events of `kind` go to this webhook.
    pub fn wants(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(kind))
    }
}

impl WebhookSettings {
    /// A webhook at `url` with every other setting at its default.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            kinds: None,
            bearer_token: None,
            secret: None,
            queue: None,
            attempts: None,
            timeout_ms: None,
            backoff_initial_ms: None,
            backoff_max_ms: None,
        }
    }

    /// Checks the settings and fills in the defaults.
    pub fn check(&self) -> Result<Webhook, WebhookError> {
        let bad = |reason: String| WebhookError::Invalid {
            url: self.url.clone(),
            reason,
        };
        if !self.url.contains("://") {
            return Err(bad("no scheme; expected http://… or https://…".into()));
        }
        let uri: http::Uri = self.url.parse().map_err(|e| {
            bad(format!(
                "not a URL ({e}); expected http://host[:port]/path or https://…"
            ))
        })?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            Some(other) => return Err(bad(format!("scheme {other:?} is not http or https"))),
            None => return Err(bad("no scheme; expected http://… or https://…".into())),
        }
        let Some(authority) = uri.authority() else {
            return Err(bad("no host".into()));
        };
        if authority.host().is_empty() {
            return Err(bad("no host".into()));
        }
        if authority.as_str().contains('@') {
            return Err(bad(
                "credentials in the URL would be logged; use bearer_token or secret".into(),
            ));
        }
        let kinds = match &self.kinds {
            None => Some(DEFAULT_KINDS.iter().map(|k| (*k).to_owned()).collect()),
            Some(list) if list.iter().any(|k| k == "*") => None,
            Some(list) if list.is_empty() => {
                return Err(bad("kinds is empty: no event would be sent".into()));
            }
            Some(list) => {
                if let Some(k) = list.iter().find(|k| !KNOWN_KINDS.contains(&k.as_str())) {
                    return Err(bad(format!(
                        "unknown event kind {k:?}; known kinds: {}, or \"*\" for all",
                        KNOWN_KINDS.join(", ")
                    )));
                }
                Some(list.iter().cloned().collect())
            }
        };
        let name = match &self.name {
            Some(n) if n.is_empty() || n.chars().any(char::is_control) => {
                return Err(bad(format!(
                    "name {n:?} is empty or has control characters"
                )));
            }
            Some(n) => n.clone(),
            None => authority.as_str().to_owned(),
        };
        let ms = Duration::from_millis;
        let policy = RetryPolicy {
            queue: self.queue.unwrap_or(DEFAULT_QUEUE),
            attempts: self.attempts.unwrap_or(DEFAULT_ATTEMPTS),
            backoff_initial: self.backoff_initial_ms.map_or(DEFAULT_BACKOFF_INITIAL, ms),
            backoff_max: self.backoff_max_ms.map_or(DEFAULT_BACKOFF_MAX, ms),
        };
        let timeout = self.timeout_ms.map_or(DEFAULT_TIMEOUT, ms);
        if policy.queue == 0 {
            return Err(bad("queue must hold at least 1 event".into()));
        }
        if policy.attempts == 0 {
            return Err(bad("attempts must be at least 1".into()));
        }
        if timeout.is_zero() {
            return Err(bad("timeout_ms must be more than 0".into()));
        }
        if policy.backoff_initial.is_zero() {
            return Err(bad("backoff_initial_ms must be more than 0".into()));
        }
        if policy.backoff_max < policy.backoff_initial {
            return Err(bad(format!(
                "backoff_max_ms {} is less than backoff_initial_ms {}",
                policy.backoff_max.as_millis(),
                policy.backoff_initial.as_millis()
            )));
        }
        for (what, s) in [
            ("bearer_token", &self.bearer_token),
            ("secret", &self.secret),
        ] {
            if let Some(Secret(v)) = s
                && (v.is_empty() || v.chars().any(char::is_control))
            {
                return Err(bad(format!("{what} is empty or has control characters")));
            }
        }
        Ok(Webhook {
            url: self.url.clone(),
            name,
            kinds,
            bearer_token: self.bearer_token.clone(),
            secret: self.secret.clone(),
            timeout,
            policy,
        })
    }
}

/// Checks every webhook, and that their names differ.
pub fn check_all(list: &[WebhookSettings]) -> Result<Vec<Webhook>, WebhookError> {
    let hooks = list
        .iter()
        .map(WebhookSettings::check)
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for h in &hooks {
        if !names.insert(h.name.as_str()) {
            return Err(WebhookError::DuplicateName {
                name: h.name.clone(),
            });
        }
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: WebhookSettings) -> String {
        s.check().unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in_and_the_name_is_the_host() {
        let h = WebhookSettings::url("https://alerts.example.com:8443/tandem")
            .check()
            .unwrap();
        assert_eq!(h.name, "alerts.example.com:8443");
        assert!(h.wants("input_lost") && h.wants("switch") && h.wants("index_uncovered"));
        assert!(!h.wants("input_state") && !h.wants("segment_filled"));
        assert_eq!(h.policy.queue, DEFAULT_QUEUE);
        assert_eq!(h.timeout, DEFAULT_TIMEOUT);
        let all = WebhookSettings {
            kinds: Some(vec!["*".into()]),
            ..WebhookSettings::url("http://127.0.0.1:9/")
        };
        assert!(all.check().unwrap().wants("input_state"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_fix() {
        assert_eq!(
            refused(WebhookSettings::url("ftp://x/")),
            "webhook \"ftp://x/\": scheme \"ftp\" is not http or https"
        );
        assert!(refused(WebhookSettings::url("alerts.example.com/x")).contains("no scheme"));
        assert!(refused(WebhookSettings::url("http://")).contains("not a URL"));
        assert!(refused(WebhookSettings::url("https://user:pw@x/")).contains("use bearer_token"));
        let typo = WebhookSettings {
            kinds: Some(vec!["input_lsot".into()]),
            ..WebhookSettings::url("http://x/")
        };
        assert!(
            refused(typo).contains("unknown event kind \"input_lsot\"; known kinds: input_state")
        );
        let backoff = WebhookSettings {
            backoff_initial_ms: Some(500),
            backoff_max_ms: Some(100),
            ..WebhookSettings::url("http://x/")
        };
        assert!(
            refused(backoff).contains("backoff_max_ms 100 is less than backoff_initial_ms 500")
        );
        let queue = WebhookSettings {
            queue: Some(0),
            ..WebhookSettings::url("http://x/")
        };
        assert!(refused(queue).contains("queue must hold at least 1"));
        assert_eq!(
            check_all(&[
                WebhookSettings::url("http://x/a"),
                WebhookSettings::url("http://x/b")
            ]),
            Err(WebhookError::DuplicateName { name: "x".into() })
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = WebhookSettings {
            bearer_token: Some(Secret("tok-123".into())),
            secret: Some(Secret("sec-456".into())),
            ..WebhookSettings::url("http://x/")
        };
        let text = format!("{s:?} {:?}", s.check().unwrap());
        assert!(
            !text.contains("tok-123") && !text.contains("sec-456"),
            "{text}"
        );
    }
}
