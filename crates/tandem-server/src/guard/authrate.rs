//! Failed authentications per source address: a token bucket per address
//! (sans-IO: time is passed in). Each failure takes a token; tokens come
//! back at `limit` per `window`. An address with no token left is answered
//! 429 with `Retry-After` until one comes back, without its credentials
//! being checked: a password guesser is slowed to `limit` guesses per
//! window while every other address, the real encoder's among them, goes
//! on as before.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Addresses remembered at most; beyond it the ones whose bucket is full
/// again are forgotten (they are as good as new), then the oldest.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The failure budget of every source address.
#[derive(Debug)]
pub struct AuthLimiter {
    limit: u32,
    window: Duration,
    buckets: HashMap<IpAddr, Bucket>,
}

impl AuthLimiter {
    /// `limit` failures per `window`; a limit of 0 turns the check off.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            buckets: HashMap::new(),
        }
    }

    fn per_sec(&self) -> f64 {
        f64::from(self.limit) / self.window.as_secs_f64().max(0.001)
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let dt = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + dt * self.per_sec()).min(f64::from(self.limit));
        b.updated = now;
    }

    /// `Some(wait)` when `ip` has used its failures up: how long until it
    /// may try again.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let mut b = *self.buckets.get(&ip)?;
        self.refill(&mut b, now);
        self.buckets.insert(ip, b);
        if b.tokens >= 1.0 {
            return None;
        }
        let secs = (1.0 - b.tokens) / self.per_sec();
        Some(Duration::from_secs_f64(secs.max(0.001)))
    }

    /// Records one failed authentication from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&ip) {
            self.forget(now);
        }
        let full = f64::from(self.limit);
        let mut b = self.buckets.get(&ip).copied().unwrap_or(Bucket {
            tokens: full,
            updated: now,
        });
        self.refill(&mut b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        self.buckets.insert(ip, b);
    }

    fn forget(&mut self, now: Instant) {
        let full = f64::from(self.limit);
        let rate = self.per_sec();
        self.buckets.retain(|_, b| {
            let dt = now.saturating_duration_since(b.updated).as_secs_f64();
            b.tokens + dt * rate < full
        });
        if self.buckets.len() >= MAX_TRACKED {
            // Everyone is still paying: drop the least recently seen.
            let mut by_age: Vec<(IpAddr, Instant)> = self
                .buckets
                .iter()
                .map(|(ip, b)| (*ip, b.updated))
                .collect();
            by_age.sort_by_key(|(_, t)| *t);
            for (ip, _) in by_age.into_iter().take(MAX_TRACKED / 10) {
                self.buckets.remove(&ip);
            }
        }
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guesser_is_blocked_after_its_budget_and_others_are_not() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(3, Duration::from_secs(60));
        let guesser: IpAddr = "127.0.0.2".parse().unwrap();
        let encoder: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(l.blocked(guesser, t0), None);
            l.failed(guesser, t0);
        }
        // Three failures per minute: one comes back every 20 s.
        let wait = l.blocked(guesser, t0).unwrap();
        assert!((19.9..=20.1).contains(&wait.as_secs_f64()), "{wait:?}");
        assert_eq!(l.blocked(encoder, t0), None);
        assert!(l.blocked(guesser, t0 + Duration::from_secs(10)).is_some());
        assert_eq!(l.blocked(guesser, t0 + Duration::from_secs(20)), None);
        l.failed(guesser, t0 + Duration::from_secs(20));
        assert!(l.blocked(guesser, t0 + Duration::from_secs(20)).is_some());
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Instant::now();
        let mut l = AuthLimiter::new(0, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..100 {
            l.failed(ip, t0);
        }
        assert_eq!(l.blocked(ip, t0), None);
        assert_eq!(l.tracked(), 0);
    }
}
