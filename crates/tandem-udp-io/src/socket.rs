//! Receive and send sockets, set up through socket2 before tokio takes them.
//!
//! A receive socket asks for a large kernel buffer ([`RECV_BUFFER`]): at
//! 100 Mbit/s a 10 ms stall of the flow task is 125 kB of datagrams, and
//! the kernel drops, silently, what does not fit. Linux caps the request at
//! `net.core.rmem_max` (212,992 bytes on a stock Debian) and doubles it;
//! a process with `CAP_NET_ADMIN` may exceed the cap (`SO_RCVBUFFORCE`),
//! which is tried when the plain request was capped, as GStreamer's
//! `udpsrc` does. The size actually granted is read back, logged and shown
//! in the flow's status, so a capped buffer is seen.
//!
//! A multicast leg binds the group address (so that another group on the
//! same port is not delivered here) and joins it on the configured
//! interface: any-source (`IP_ADD_MEMBERSHIP`) or, with a source,
//! source-specific (`IP_ADD_SOURCE_MEMBERSHIP`, RFC 4607).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use std::net::UdpSocket;

use crate::spec::{LegAddr, Target};

/// Requested receive buffer: 16 MiB, which the kernel doubles for its
/// bookkeeping; about 100 ms of a 1 Gbit/s stream, seconds of a
/// contribution feed.
pub const RECV_BUFFER: usize = 16 << 20;
/// Requested send buffer: 4 MiB, a burst of 3000 full datagrams.
pub const SEND_BUFFER: usize = 4 << 20;
/// Multicast TTL of forwarded packets: 16 crosses a plant's routers, not
/// the internet.
pub const MULTICAST_TTL: u32 = 16;

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    #[error("cannot open a UDP socket for {addr}: {source}")]
    Open { addr: SocketAddr, source: io::Error },
    #[error("cannot bind {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: io::Error,
        hint: &'static str,
    },
    #[error("cannot join multicast group {group} on interface {interface}{ssm}: {source}")]
    Join {
        group: IpAddr,
        interface: Ipv4Addr,
        ssm: String,
        source: io::Error,
    },
    #[error("cannot set up the sending socket: {0}")]
    Send(io::Error),
}

/// A bound receive socket and the buffer the kernel granted.
#[derive(Debug)]
pub struct Receiver {
    pub socket: UdpSocket,
    pub recv_buffer: usize,
}

/// Asks for a receive buffer of `want` bytes, past `net.core.rmem_max`
/// where the process may (`SO_RCVBUFFORCE`), and returns the size the
/// kernel reports (twice what it grants for data).
pub fn grow_recv_buffer(s: &Socket, want: usize) -> usize {
    let _ = s.set_recv_buffer_size(want);
    let granted = s.recv_buffer_size().unwrap_or(0);
    if granted < want
        && nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RcvBufForce, &want).is_ok()
    {
        return s.recv_buffer_size().unwrap_or(granted);
    }
    granted
}

/// Opens the receive socket of `leg` (non-blocking, for the flow's
/// runtime to take), joined to its group if multicast.
pub fn open_receiver(leg: &LegAddr, interface: Option<Ipv4Addr>) -> Result<Receiver, SocketError> {
    let addr = leg.addr;
    let open = |source| SocketError::Open { addr, source };
    let domain = Domain::for_address(addr);
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(open)?;
    // Several flows may receive one group on one port (each binds the
    // group address). A unicast port is never shared: the kernel would
    // split its datagrams between the sockets.
    if addr.ip().is_multicast() {
        s.set_reuse_address(true).map_err(open)?;
    }
    let recv_buffer = grow_recv_buffer(&s, RECV_BUFFER);
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(open)?;
    }
    s.set_nonblocking(true).map_err(open)?;
    s.bind(&addr.into()).map_err(|source| SocketError::Bind {
        addr,
        hint: match source.kind() {
            io::ErrorKind::AddrInUse => " (another flow or program receives on it)",
            io::ErrorKind::AddrNotAvailable => {
                " (a unicast leg must be an address of this machine, or 0.0.0.0)"
            }
            _ => "",
        },
        source,
    })?;
    if let IpAddr::V4(group) = addr.ip()
        && group.is_multicast()
    {
        let interface = interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let joined = match leg.source {
            Some(IpAddr::V4(src)) => s.join_ssm_v4(&src, &group, &interface),
            _ => s.join_multicast_v4(&group, &interface),
        };
        joined.map_err(|source| SocketError::Join {
            group: addr.ip(),
            interface,
            ssm: leg
                .source
                .map(|s| format!(" from source {s}"))
                .unwrap_or_default(),
            source,
        })?;
    } else if let IpAddr::V6(group) = addr.ip()
        && group.is_multicast()
    {
        s.join_multicast_v6(&group, 0)
            .map_err(|source| SocketError::Join {
                group: addr.ip(),
                interface: Ipv4Addr::UNSPECIFIED,
                ssm: String::new(),
                source,
            })?;
    }
    if recv_buffer < RECV_BUFFER {
        tracing::warn!(
            leg = %leg,
            requested = RECV_BUFFER,
            granted = recv_buffer,
            "the kernel granted a smaller receive buffer than requested; raise net.core.rmem_max (or run with CAP_NET_ADMIN) to absorb longer stalls"
        );
    } else {
        tracing::info!(leg = %leg, granted = recv_buffer, "receive buffer");
    }
    let socket: UdpSocket = s.into();
    Ok(Receiver {
        socket,
        recv_buffer,
    })
}

/// Opens the socket a flow sends from: unbound (an ephemeral port), with
/// multicast TTL and interface set for multicast targets.
pub fn open_sender(
    targets: &[Target],
    interface: Option<Ipv4Addr>,
) -> Result<UdpSocket, SocketError> {
    let v6 = targets.first().is_some_and(|t| t.addr.is_ipv6());
    let (domain, any): (Domain, SocketAddr) = if v6 {
        (Domain::IPV6, (std::net::Ipv6Addr::UNSPECIFIED, 0).into())
    } else {
        (Domain::IPV4, (Ipv4Addr::UNSPECIFIED, 0).into())
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(SocketError::Send)?;
    if let Err(e) = s.set_send_buffer_size(SEND_BUFFER) {
        tracing::warn!(error = %e, "cannot set the send buffer size");
    }
    if !v6 {
        s.set_multicast_ttl_v4(MULTICAST_TTL)
            .map_err(SocketError::Send)?;
        if let Some(i) = interface {
            s.set_multicast_if_v4(&i).map_err(SocketError::Send)?;
        }
    }
    s.set_nonblocking(true).map_err(SocketError::Send)?;
    s.bind(&any.into()).map_err(SocketError::Send)?;
    Ok(s.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Whether this process may pass `net.core.rmem_max`: a probe socket
    /// asks with `SO_RCVBUFFORCE` (a capability in a user namespace is
    /// not enough, so the capability bits alone would mislead).
    fn net_admin() -> bool {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &RECV_BUFFER)
            .is_ok()
            && s.recv_buffer_size().unwrap() >= 2 * RECV_BUFFER
    }

    fn rmem_max() -> usize {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The whole buffer asked for, past `net.core.rmem_max`, when the
    /// process may override it; else what the cap allows.
    #[test]
    fn a_leg_gets_its_whole_receive_buffer_past_the_cap_when_allowed() {
        let leg = LegAddr {
            source: None,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let r = open_receiver(&leg, None).unwrap();
        if net_admin() {
            assert_eq!(r.recv_buffer, 2 * RECV_BUFFER, "forced past the cap");
        } else {
            assert_eq!(
                r.recv_buffer,
                2 * RECV_BUFFER.min(rmem_max()),
                "capped at net.core.rmem_max"
            );
        }
    }
}
