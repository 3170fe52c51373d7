//! Open connections per source address, with a limit per address and one
//! for the whole listener.
//!
//! Beyond the per-address limit a new connection is refused. At the
//! global limit, room is made by closing an idle connection (one with no
//! request in progress: idle between requests, or still sending its
//! request head) of the address that holds the most connections; only
//! when there is none is the new connection refused. Thousands of idle or
//! slowloris connections from a few addresses therefore cannot keep an
//! honest client from connecting, nor cut off an upload in progress.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// What the listener knows about one connection while it is open.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Bytes read from the client so far.
    pub read: AtomicU64,
    /// `read` when the last request was answered in full.
    pub answered_at: AtomicU64,
    /// Requests being handled (0 or 1 on HTTP/1.1).
    pub in_flight: AtomicU32,
    /// Told to close to make room.
    pub evict: Notify,
}

impl ConnState {
    /// Whether bytes of a request head arrived that no answer followed.
    pub fn partial_head(&self) -> bool {
        self.read.load(Ordering::Relaxed) > self.answered_at.load(Ordering::Relaxed)
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address holds its limit already.
    PerAddress,
    /// The listener is full and no idle connection could be closed.
    Global,
}

#[derive(Debug, Default)]
struct Table {
    by_ip: HashMap<IpAddr, Vec<(u64, Arc<ConnState>)>>,
    total: usize,
    next_id: u64,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct Conns {
    max_total: usize,
    max_per_ip: usize,
    table: Arc<Mutex<Table>>,
}

/// An admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Ticket {
    ip: IpAddr,
    id: u64,
    pub state: Arc<ConnState>,
    table: Arc<Mutex<Table>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut empty = false;
        if let Some(v) = t.by_ip.get_mut(&self.ip) {
            let before = v.len();
            v.retain(|(id, _)| *id != self.id);
            let removed = before - v.len();
            empty = v.is_empty();
            t.total = t.total.saturating_sub(removed);
        }
        if empty {
            t.by_ip.remove(&self.ip);
        }
    }
}

/// What admitting a connection did.
#[derive(Debug)]
pub struct Admitted {
    pub ticket: Ticket,
    /// An idle connection of this address was told to close to make room.
    pub evicted: Option<IpAddr>,
}

impl Conns {
    /// Zero for either limit means no limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total: if max_total == 0 {
                usize::MAX
            } else {
                max_total
            },
            max_per_ip: if max_per_ip == 0 {
                usize::MAX
            } else {
                max_per_ip
            },
            table: Arc::default(),
        }
    }

    /// Admits a connection from `ip`, or says why not.
    pub fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.by_ip.get(&ip).map_or(0, Vec::len) >= self.max_per_ip {
            return Err(Refusal::PerAddress);
        }
        let mut evicted = None;
        if t.total >= self.max_total {
            evicted = Some(Self::evict_one(&mut t).ok_or(Refusal::Global)?);
        }
        let id = t.next_id;
        t.next_id += 1;
        let state = Arc::new(ConnState::default());
        t.by_ip.entry(ip).or_default().push((id, state.clone()));
        t.total += 1;
        Ok(Admitted {
            ticket: Ticket {
                ip,
                id,
                state,
                table: self.table.clone(),
            },
            evicted,
        })
    }

    /// Tells an idle connection of the busiest address to close, and takes
    /// it off the table at once (its task closes it when it next runs).
    fn evict_one(t: &mut Table) -> Option<IpAddr> {
        let mut order: Vec<(usize, IpAddr)> =
            t.by_ip.iter().map(|(ip, v)| (v.len(), *ip)).collect();
        order.sort_unstable_by_key(|o| std::cmp::Reverse(o.0));
        for (_, ip) in order {
            let Some(v) = t.by_ip.get_mut(&ip) else {
                continue;
            };
            let Some(pos) = v
                .iter()
                .position(|(_, s)| s.in_flight.load(Ordering::Relaxed) == 0)
            else {
                continue;
            };
            let (_, state) = v.swap_remove(pos);
            if v.is_empty() {
                t.by_ip.remove(&ip);
            }
            t.total = t.total.saturating_sub(1);
            state.evict.notify_one();
            return Some(ip);
        }
        None
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_limit_refuses_and_a_full_listener_evicts_the_busiest_idle() {
        let conns = Conns::new(4, 3);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let honest: IpAddr = "127.0.0.1".parse().unwrap();
        let mut held: Vec<Ticket> = (0..3).map(|_| conns.admit(a).unwrap().ticket).collect();
        assert_eq!(conns.admit(a).unwrap_err(), Refusal::PerAddress);
        let busy = conns.admit(honest).unwrap().ticket;
        busy.state.in_flight.store(1, Ordering::Relaxed);
        assert_eq!(conns.open(), 4);
        // Full: the attacker's idle connection makes room, not the upload.
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let got = conns.admit(b).unwrap();
        assert_eq!(got.evicted, Some(a));
        assert_eq!(conns.open(), 4);
        // Nothing idle left but the newcomer's: with it busy, refusal.
        for t in &held {
            t.state.in_flight.store(1, Ordering::Relaxed);
        }
        got.ticket.state.in_flight.store(1, Ordering::Relaxed);
        assert_eq!(conns.admit(honest).unwrap_err(), Refusal::Global);
        held.clear();
        drop(got);
        assert_eq!(conns.open(), 1);
        drop(busy);
        assert_eq!(conns.open(), 0);
    }
}
