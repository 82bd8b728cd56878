//! Exponential backoff with full jitter for calls to the control plane.
//!
//! The server decides task retry timing itself (`phoenix_core::task::RetryPolicy`, which is
//! deterministic so replicas agree); this is the agent's own reconnect policy, where random
//! jitter is what we want: a fleet of agents that lost the server at the same moment must
//! not come back in lockstep.

use std::time::Duration;

use rand::Rng as _;

/// Exponential backoff: `initial * 2^n` capped at `max`, with the delay drawn uniformly
/// from `[delay / 2, delay]` ("equal jitter"), so it never collapses to zero.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial` and never waiting longer than `max`.
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            failures: 0,
        }
    }

    /// The un-jittered delay after the current number of failures.
    #[must_use]
    pub fn ceiling(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1u32 << exp).min(self.max)
    }

    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            rand::rng().random_range(0..=spread)
        };
        half + Duration::from_micros(jitter)
    }

    /// Failures since the last success.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_bounds_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let d = b.next_delay();
            let c = b.ceiling();
            assert!(
                d >= c / 2 && d <= c,
                "{d:?} not within [{:?}, {c:?}]",
                c / 2
            );
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.failures(), 0);
        b.next_delay();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_spreads_agents_apart() {
        let delays: std::collections::BTreeSet<Duration> = (0..32)
            .map(|_| {
                let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
                b.next_delay();
                b.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 1,
            "every agent would retry at the same instant"
        );
    }
}
