//! One webhook's queue and retry schedule, without IO.
//!
//! Events wait in a bounded queue, oldest first, and are delivered one at a
//! time and in order. A failed attempt (no connection, a timeout, a `5xx`,
//! `408` or `429`) puts the whole receiver on hold: the next attempt, of
//! the same event, waits `initial × 2^(failures − 1)`, capped at `max`, and
//! the hold lasts until a delivery succeeds — a receiver that is down is
//! not hammered once per queued event. An event that failed `attempts`
//! times is given up; an answer that refuses it for good (any other `4xx`,
//! a redirect) gives it up at once, and counts as the receiver answering.
//! When the queue is full the oldest event is dropped to make room, even
//! the one being retried: the newest events are the ones an operator acts
//! on.
//!
//! Time comes in as `now` on every call and must not go backwards.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Events held at most (waiting and being retried).
    pub queue: usize,
    /// Attempts per event, the first included.
    pub attempts: u32,
    /// Wait after the first failure.
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The wait after `failures` failures in a row (at least one).
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// One event to deliver: its bus id, kind and the exact JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: u64,
    pub kind: String,
    pub body: bytes::Bytes,
}

#[derive(Debug)]
struct Held {
    item: Item,
    /// Attempts made so far.
    attempts: u32,
}

/// An attempt to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub item: Item,
    /// 1 for the first attempt.
    pub number: u32,
}

/// How an attempt ended, as the receiver's answer tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A `2xx`.
    Accepted,
    /// Worth trying again: no answer, a timeout, `5xx`, `408`, `429`.
    Retryable,
    /// Refused for good: another `4xx`, or a redirect.
    Refused,
}

impl Answer {
    /// Classifies an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Accepted,
            408 | 429 | 500..=599 => Self::Retryable,
            _ => Self::Refused,
        }
    }
}

/// What became of an attempt's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Tried again after the given wait.
    WillRetry(Duration),
    /// Given up after the last attempt failed.
    Failed,
    /// The receiver refused it.
    Rejected,
    /// The event was dropped from the queue while its attempt ran.
    Gone,
}

/// The queue and the receiver's hold.
#[derive(Debug)]
pub struct Outbox {
    policy: RetryPolicy,
    queue: VecDeque<Held>,
    /// The id of the event whose attempt is running.
    in_flight: Option<u64>,
    /// Failed attempts in a row, of any event.
    failures: u32,
    /// No attempt before this.
    hold_until: Option<Instant>,
}

impl Outbox {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            queue: VecDeque::new(),
            in_flight: None,
            failures: 0,
            hold_until: None,
        }
    }

    /// Queues an event; returns the event dropped to make room, if any.
    pub fn push(&mut self, item: Item) -> Option<Item> {
        let dropped = if self.queue.len() >= self.policy.queue.max(1) {
            self.queue.pop_front().map(|h| h.item)
        } else {
            None
        };
        self.queue.push_back(Held { item, attempts: 0 });
        dropped
    }

    /// The attempt to start now, if one is due and none is running.
    pub fn poll_attempt(&mut self, now: Instant) -> Option<Attempt> {
        if self.in_flight.is_some() || self.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        let head = self.queue.front_mut()?;
        head.attempts += 1;
        self.in_flight = Some(head.item.id);
        Some(Attempt {
            item: head.item.clone(),
            number: head.attempts,
        })
    }

    /// The running attempt ended with `answer`.
    pub fn on_answer(&mut self, now: Instant, answer: Answer) -> Outcome {
        let Some(id) = self.in_flight.take() else {
            return Outcome::Gone;
        };
        match answer {
            Answer::Accepted | Answer::Refused => {
                self.failures = 0;
                self.hold_until = None;
            }
            Answer::Retryable => {
                self.failures = self.failures.saturating_add(1);
                self.hold_until = Some(now + self.policy.backoff(self.failures));
            }
        }
        let Some(head) = self.queue.front().filter(|h| h.item.id == id) else {
            return Outcome::Gone;
        };
        let outcome = match answer {
            Answer::Accepted => Outcome::Delivered,
            Answer::Refused => Outcome::Rejected,
            Answer::Retryable if head.attempts >= self.policy.attempts => Outcome::Failed,
            Answer::Retryable => return Outcome::WillRetry(self.policy.backoff(self.failures)),
        };
        self.queue.pop_front();
        outcome
    }

    /// When [`poll_attempt`](Self::poll_attempt) next has something to
    /// start, if time alone decides it.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return None;
        }
        self.hold_until
    }

    /// Events held, the one being attempted included.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether an attempt is running.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Failed attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When the hold on the receiver ends, if it is on hold.
    pub fn hold_until(&self) -> Option<Instant> {
        self.hold_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u64) -> Item {
        Item {
            id,
            kind: "input_lost".into(),
            body: bytes::Bytes::from(format!("{{\"id\":{id}}}")),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            queue: 3,
            attempts: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = policy();
        let waits: Vec<u128> = (1..=5).map(|f| p.backoff(f).as_millis()).collect();
        assert_eq!(waits, [100, 200, 250, 250, 250]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_millis(250));
    }

    #[test]
    fn a_failing_event_is_retried_on_schedule_then_given_up() {
        let t0 = Instant::now();
        let mut o = Outbox::new(policy());
        assert_eq!(o.push(item(1)), None);
        let a = o.poll_attempt(t0).unwrap();
        assert_eq!((a.item.id, a.number), (1, 1));
        // One attempt at a time.
        assert_eq!(o.poll_attempt(t0), None);
        assert_eq!(
            o.on_answer(t0, Answer::Retryable),
            Outcome::WillRetry(Duration::from_millis(100))
        );
        assert_eq!(o.next_deadline(), Some(t0 + Duration::from_millis(100)));
        assert_eq!(o.poll_attempt(t0 + Duration::from_millis(99)), None);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(o.poll_attempt(t1).unwrap().number, 2);
        assert_eq!(
            o.on_answer(t1, Answer::Retryable),
            Outcome::WillRetry(Duration::from_millis(200))
        );
        let t2 = t1 + Duration::from_millis(200);
        assert_eq!(o.poll_attempt(t2).unwrap().number, 3);
        assert_eq!(o.on_answer(t2, Answer::Retryable), Outcome::Failed);
        assert!(o.is_empty());
        assert_eq!(o.next_deadline(), None);
        // The receiver stays on hold for the next event.
        o.push(item(2));
        assert_eq!(o.next_deadline(), Some(t2 + Duration::from_millis(250)));
        assert_eq!(o.poll_attempt(t2), None);
        let t3 = t2 + Duration::from_millis(250);
        assert_eq!(o.poll_attempt(t3).unwrap().number, 1);
        assert_eq!(o.on_answer(t3, Answer::Accepted), Outcome::Delivered);
        assert_eq!((o.failures(), o.hold_until()), (0, None));
    }

    #[test]
    fn a_full_queue_drops_its_oldest_even_the_one_in_flight() {
        let t0 = Instant::now();
        let mut o = Outbox::new(policy());
        for id in 1..=3 {
            assert_eq!(o.push(item(id)), None);
        }
        assert_eq!(o.poll_attempt(t0).unwrap().item.id, 1);
        assert_eq!(o.push(item(4)).map(|i| i.id), Some(1));
        assert_eq!(o.push(item(5)).map(|i| i.id), Some(2));
        assert_eq!(o.len(), 3);
        // Event 1's attempt ends after it was dropped: nothing is popped.
        assert_eq!(o.on_answer(t0, Answer::Accepted), Outcome::Gone);
        let ids: Vec<u64> = std::iter::from_fn(|| {
            let a = o.poll_attempt(t0)?;
            assert_eq!(o.on_answer(t0, Answer::Accepted), Outcome::Delivered);
            Some(a.item.id)
        })
        .collect();
        assert_eq!(ids, [3, 4, 5]);
    }

    #[test]
    fn a_refusal_gives_the_event_up_and_releases_the_hold() {
        let t0 = Instant::now();
        let mut o = Outbox::new(policy());
        o.push(item(1));
        o.push(item(2));
        o.poll_attempt(t0).unwrap();
        o.on_answer(t0, Answer::Retryable);
        let t1 = t0 + Duration::from_millis(100);
        o.poll_attempt(t1).unwrap();
        assert_eq!(o.on_answer(t1, Answer::Refused), Outcome::Rejected);
        assert_eq!(o.poll_attempt(t1).unwrap().item.id, 2);
    }

    #[test]
    fn statuses_are_classified_as_a_receiver_means_them() {
        use Answer::*;
        let got: Vec<Answer> = [200, 204, 301, 400, 401, 404, 408, 429, 500, 503]
            .map(Answer::of_status)
            .to_vec();
        assert_eq!(
            got,
            [
                Accepted, Accepted, Refused, Refused, Refused, Refused, Retryable, Retryable,
                Retryable, Retryable
            ]
        );
    }
}
