//! A UDP flow's definition: what `tandem udp create` and
//! `POST /api/v1/udp` take, validated once, stored as JSON.
//!
//! Legs are written `[SOURCE@]ADDR:PORT` (`239.1.1.1:5000`,
//! `10.0.0.5@232.1.1.1:5000`, `0.0.0.0:5000`); targets
//! `udp://HOST:PORT` (raw TS) or `rtp://HOST:PORT`. Addresses are IP
//! literals: a broadcast plant is addressed by IP, and a name that resolves
//! differently tomorrow is no definition.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a flow's two legs become one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Two RTP legs with the same sequence numbers, merged hitlessly
    /// (SMPTE ST 2022-7), with 2022-1 FEC on ports + 2 and + 4.
    #[serde(rename = "rtp-2022-7")]
    Rtp2022_7,
    /// Two plain MPEG-TS-over-UDP legs, switched on silence or continuity
    /// errors.
    #[serde(rename = "udp-switch")]
    UdpSwitch,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rtp2022_7 => "rtp-2022-7",
            Self::UdpSwitch => "udp-switch",
        }
    }
}

impl FromStr for Mode {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "rtp-2022-7" => Ok(Self::Rtp2022_7),
            "udp-switch" => Ok(Self::UdpSwitch),
            _ => Err(SpecError::BadMode(s.to_owned())),
        }
    }
}

/// Why a flow definition was refused. Each message names the value and
/// what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("udp flow id {0:?} is invalid: use 1 to 64 characters of a-z, 0-9, '_' and '-'")]
    BadId(String),
    #[error("mode {0:?} is unknown: use rtp-2022-7 or udp-switch")]
    BadMode(String),
    #[error(
        "leg {0:?} is not [SOURCE@]ADDR:PORT with IP addresses (e.g. 239.1.1.1:5000 or 10.0.0.5@232.1.1.1:5000)"
    )]
    BadLeg(String),
    #[error("leg {0}: port 0 is not a port to receive on")]
    ZeroPort(String),
    #[error("leg {leg}: FEC arrives on port {port} + 4, past 65535; use a port of at most 65531")]
    FecPortTooHigh { leg: String, port: u16 },
    #[error("leg {leg}: the source {sender} and the address are of different IP versions")]
    SourceFamily { leg: String, sender: IpAddr },
    #[error("leg {0}: source-specific multicast is supported for IPv4 groups only")]
    SsmV6(String),
    #[error("both legs are {0}: a flow needs two different legs")]
    SameLeg(String),
    #[error(
        "legs {leg0} and {leg1} share port {port} (media on one, FEC on + 2 or + 4 of the other); space the ports at least 6 apart"
    )]
    PortOverlap {
        leg0: String,
        leg1: String,
        port: u16,
    },
    #[error("target {0:?} is not udp://HOST:PORT or rtp://HOST:PORT with an IP address")]
    BadTarget(String),
    #[error("target {0}: port 0 cannot be sent to")]
    TargetZeroPort(String),
    #[error("target {0} is one of the flow's own legs: it would receive its own output")]
    TargetIsLeg(String),
    #[error("a flow needs at least one --forward target (udp://HOST:PORT or rtp://HOST:PORT)")]
    NoTarget,
    #[error("at most {max} forward targets per flow; {found} given")]
    TooManyTargets { max: usize, found: usize },
    #[error("target {0} is given twice")]
    DuplicateTarget(String),
    #[error(
        "skew window of {0} ms is out of range: use 1 to 1000 ms (SMPTE ST 2022-7 classes: 10, 50, 150, 450)"
    )]
    BadSkew(u64),
    #[error(
        "--skew-ms applies to rtp-2022-7 flows; udp-switch legs carry no sequence numbers to wait for"
    )]
    SkewWithoutRtp,
    #[error(
        "a rollover of {0} s is out of range: use 1 to 3600 s (a recorded file is published once whole)"
    )]
    BadRollover(u64),
    #[error("--record-rollover applies to flows that record (--record)")]
    RolloverWithoutRecord,
    #[error("forward targets mix IPv4 and IPv6 ({0}); a flow sends from one socket")]
    MixedTargets(String),
    #[error(
        "interface {0} is not an IPv4 address (multicast groups are joined on an interface named by its IPv4 address)"
    )]
    BadInterface(String),
}

/// One leg: where it is received, and for source-specific multicast from
/// which sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegAddr {
    /// The sender: for a multicast group, joined source-specific (RFC
    /// 4607); for any leg, datagrams from another address are dropped.
    pub source: Option<IpAddr>,
    /// The group (multicast) or local address (unicast) and port.
    pub addr: SocketAddr,
}

impl LegAddr {
    pub fn is_multicast(&self) -> bool {
        self.addr.ip().is_multicast()
    }

    /// The same address at `port + offset` (FEC ports).
    pub fn at_offset(&self, offset: u16) -> Option<Self> {
        let port = self.addr.port().checked_add(offset)?;
        Some(Self {
            source: self.source,
            addr: SocketAddr::new(self.addr.ip(), port),
        })
    }
}

impl fmt::Display for LegAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.source {
            write!(f, "{s}@")?;
        }
        write!(f, "{}", self.addr)
    }
}

impl FromStr for LegAddr {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::BadLeg(s.to_owned());
        let (source, addr) = match s.split_once('@') {
            Some((src, addr)) => (Some(src.parse::<IpAddr>().map_err(|_| bad())?), addr),
            None => (None, s),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| bad())?;
        let leg = Self { source, addr };
        if addr.port() == 0 {
            return Err(SpecError::ZeroPort(leg.to_string()));
        }
        if let Some(src) = source {
            if src.is_ipv4() != addr.is_ipv4() {
                return Err(SpecError::SourceFamily {
                    leg: leg.to_string(),
                    sender: src,
                });
            }
            if addr.is_ipv6() && addr.ip().is_multicast() {
                return Err(SpecError::SsmV6(leg.to_string()));
            }
        }
        Ok(leg)
    }
}

impl Serialize for LegAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LegAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How the merged output is sent to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// Raw MPEG-TS: the transport packets of each datagram (7 × 188 bytes
    /// from ffmpeg and MediaLive), no RTP header.
    Udp,
    /// RTP: in a 2022-7 flow the datagrams exactly as received; in a
    /// switch flow the TS datagrams in a new RTP stream (payload type 33).
    Rtp,
}

/// A forward target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub kind: TargetKind,
    pub addr: SocketAddr,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            TargetKind::Udp => "udp",
            TargetKind::Rtp => "rtp",
        };
        write!(f, "{scheme}://{}", self.addr)
    }
}

impl FromStr for Target {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::BadTarget(s.to_owned());
        let (kind, rest) = if let Some(r) = s.strip_prefix("udp://") {
            (TargetKind::Udp, r)
        } else if let Some(r) = s.strip_prefix("rtp://") {
            (TargetKind::Rtp, r)
        } else {
            return Err(bad());
        };
        let addr: SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| bad())?;
        let t = Self { kind, addr };
        if addr.port() == 0 {
            return Err(SpecError::TargetZeroPort(t.to_string()));
        }
        Ok(t)
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Most targets a flow forwards to: each is one more send of every packet.
pub const MAX_TARGETS: usize = 16;
/// Default length of a recorded file, as MediaLive's archive output.
pub const DEFAULT_RECORD_ROLLOVER_SECS: u64 = 300;
/// Longest recorded file: a file is published only once it is whole.
pub const MAX_RECORD_ROLLOVER_SECS: u64 = 3600;
/// Default skew window, SMPTE ST 2022-7 class B (see
/// `tandem_udp::MergeConfig::skew_window`).
pub const DEFAULT_SKEW_MS: u64 = 50;

/// A UDP flow as stored and as the API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSpec {
    pub id: String,
    pub mode: Mode,
    /// Leg 0 and leg 1 (the encoder's pipelines 0 and 1).
    pub legs: [LegAddr; 2],
    pub forward: Vec<Target>,
    /// 2022-7 only: how long a missing packet is waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<u64>,
    /// Write the merged TS into the store as rollover files.
    #[serde(default)]
    pub record: bool,
    /// Seconds of stream per recorded file (default
    /// [`DEFAULT_RECORD_ROLLOVER_SECS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_rollover_secs: Option<u64>,
    /// The IPv4 address of the interface multicast groups are joined on
    /// (and multicast targets sent from); the system's choice when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<IpAddr>,
}

impl FlowSpec {
    /// Checks everything a flow can be refused for before any socket opens.
    pub fn validate(&self) -> Result<(), SpecError> {
        let ok_id = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !ok_id {
            return Err(SpecError::BadId(self.id.clone()));
        }
        let [l0, l1] = &self.legs;
        if l0.addr == l1.addr {
            return Err(SpecError::SameLeg(l0.addr.to_string()));
        }
        if self.mode == Mode::Rtp2022_7 {
            for l in &self.legs {
                if l.addr.port() > u16::MAX - 4 {
                    return Err(SpecError::FecPortTooHigh {
                        leg: l.to_string(),
                        port: l.addr.port(),
                    });
                }
            }
            let ports = |l: &LegAddr| [0u16, 2, 4].map(|o| l.addr.port().wrapping_add(o));
            // Same IP (or a wildcard): the ports must not collide.
            let may_share = l0.addr.ip() == l1.addr.ip()
                || l0.addr.ip().is_unspecified()
                || l1.addr.ip().is_unspecified();
            if may_share && let Some(p) = ports(l0).into_iter().find(|p| ports(l1).contains(p)) {
                return Err(SpecError::PortOverlap {
                    leg0: l0.to_string(),
                    leg1: l1.to_string(),
                    port: p,
                });
            }
        } else if self.skew_ms.is_some() {
            return Err(SpecError::SkewWithoutRtp);
        }
        if let Some(ms) = self.skew_ms
            && !(1..=1000).contains(&ms)
        {
            return Err(SpecError::BadSkew(ms));
        }
        match self.record_rollover_secs {
            Some(_) if !self.record => return Err(SpecError::RolloverWithoutRecord),
            Some(s) if !(1..=MAX_RECORD_ROLLOVER_SECS).contains(&s) => {
                return Err(SpecError::BadRollover(s));
            }
            _ => {}
        }
        if let Some(i) = self.interface
            && !i.is_ipv4()
        {
            return Err(SpecError::BadInterface(i.to_string()));
        }
        if self.forward.is_empty() {
            return Err(SpecError::NoTarget);
        }
        if self.forward.len() > MAX_TARGETS {
            return Err(SpecError::TooManyTargets {
                max: MAX_TARGETS,
                found: self.forward.len(),
            });
        }
        for (i, t) in self.forward.iter().enumerate() {
            if t.addr.is_ipv4() != self.forward[0].addr.is_ipv4() {
                return Err(SpecError::MixedTargets(t.to_string()));
            }
            if self.forward[..i].iter().any(|o| o.addr == t.addr) {
                return Err(SpecError::DuplicateTarget(t.to_string()));
            }
            if self.legs.iter().any(|l| l.addr == t.addr) {
                return Err(SpecError::TargetIsLeg(t.to_string()));
            }
        }
        Ok(())
    }

    /// How much stream each recorded file holds.
    pub fn record_rollover(&self) -> Duration {
        Duration::from_secs(
            self.record_rollover_secs
                .unwrap_or(DEFAULT_RECORD_ROLLOVER_SECS),
        )
    }

    /// The skew window the merge runs with.
    pub fn skew_window(&self) -> Duration {
        Duration::from_millis(self.skew_ms.unwrap_or(DEFAULT_SKEW_MS))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(l0: &str, l1: &str, fwd: &[&str]) -> FlowSpec {
        FlowSpec {
            id: "f1".into(),
            mode: Mode::Rtp2022_7,
            legs: [l0.parse().unwrap(), l1.parse().unwrap()],
            forward: fwd.iter().map(|t| t.parse().unwrap()).collect(),
            skew_ms: None,
            record: false,
            record_rollover_secs: None,
            interface: None,
        }
    }

    #[test]
    fn legs_parse_with_and_without_source_and_print_back() {
        let l: LegAddr = "10.0.0.5@232.1.1.1:5000".parse().unwrap();
        assert_eq!(l.source, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(l.to_string(), "10.0.0.5@232.1.1.1:5000");
        let l: LegAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(l.to_string(), "[::1]:5000");
    }

    #[test]
    fn bad_legs_and_targets_are_refused_with_the_reason() {
        assert_eq!(
            "239.1.1.1".parse::<LegAddr>(),
            Err(SpecError::BadLeg("239.1.1.1".into()))
        );
        assert_eq!(
            "127.0.0.1:0".parse::<LegAddr>(),
            Err(SpecError::ZeroPort("127.0.0.1:0".into()))
        );
        assert!(matches!(
            "::1@127.0.0.1:5000".parse::<LegAddr>(),
            Err(SpecError::SourceFamily { .. })
        ));
        assert_eq!(
            "http://1.2.3.4:5".parse::<Target>(),
            Err(SpecError::BadTarget("http://1.2.3.4:5".into()))
        );
        assert_eq!(
            "udp://example.com:5".parse::<Target>(),
            Err(SpecError::BadTarget("udp://example.com:5".into()))
        );
    }

    #[test]
    fn the_same_leg_twice_and_colliding_fec_ports_are_refused() {
        let s = spec(
            "127.0.0.1:5000",
            "127.0.0.1:5000",
            &["udp://127.0.0.1:6000"],
        );
        assert_eq!(
            s.validate(),
            Err(SpecError::SameLeg("127.0.0.1:5000".into()))
        );
        let s = spec(
            "127.0.0.1:5000",
            "127.0.0.1:5002",
            &["udp://127.0.0.1:6000"],
        );
        assert!(matches!(
            s.validate(),
            Err(SpecError::PortOverlap { port: 5002, .. })
        ));
        let s = spec(
            "127.0.0.1:5000",
            "127.0.0.1:5010",
            &["udp://127.0.0.1:6000"],
        );
        assert_eq!(s.validate(), Ok(()));
        let mut sw = s.clone();
        sw.mode = Mode::UdpSwitch;
        sw.legs[1] = "127.0.0.1:5002".parse().unwrap();
        assert_eq!(sw.validate(), Ok(()), "no FEC ports without RTP");
    }

    #[test]
    fn targets_must_exist_differ_and_not_loop_back() {
        let s = spec("127.0.0.1:5000", "127.0.0.1:5010", &[]);
        assert_eq!(s.validate(), Err(SpecError::NoTarget));
        let s = spec(
            "127.0.0.1:5000",
            "127.0.0.1:5010",
            &["udp://127.0.0.1:6000", "rtp://127.0.0.1:6000"],
        );
        assert!(matches!(s.validate(), Err(SpecError::DuplicateTarget(_))));
        let s = spec(
            "127.0.0.1:5000",
            "127.0.0.1:5010",
            &["udp://127.0.0.1:5010"],
        );
        assert!(matches!(s.validate(), Err(SpecError::TargetIsLeg(_))));
    }

    #[test]
    fn spec_round_trips_through_json_in_the_api_shape() {
        let mut s = spec(
            "10.0.0.5@232.1.1.1:5000",
            "239.1.1.2:5000",
            &["rtp://127.0.0.1:6000"],
        );
        s.skew_ms = Some(150);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"id": "f1", "mode": "rtp-2022-7",
                "legs": ["10.0.0.5@232.1.1.1:5000", "239.1.1.2:5000"],
                "forward": ["rtp://127.0.0.1:6000"], "skew_ms": 150, "record": false})
        );
        assert_eq!(serde_json::from_value::<FlowSpec>(j).unwrap(), s);
    }
}
