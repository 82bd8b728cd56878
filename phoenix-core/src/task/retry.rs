//! Retry timing and dead-lettering of failed tasks: [`RetryPolicy`], the one place the
//! queue's retry schedule is decided. Its delays are a [`Backoff`] with proportional
//! jitter whose draw is derived from the task id and attempt.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backoff::{Backoff, Draw, Jitter};
use crate::ids::TaskId;

/// What to do with a task whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailDecision {
    /// Back to pending, claimable after `delay`.
    Retry {
        /// Backoff before the next attempt.
        delay: Duration,
    },
    /// Out of attempts: dead-letter it.
    DeadLetter,
}

/// Exponential backoff with jitter, capped; the one place retry timing is decided.
///
/// `delay(n) = min(max, base * factor^(n-1))`, then a deterministic jitter of up to
/// `±jitter` (fraction) derived from the task id and attempt, so that replicas and
/// backends agree on the schedule and tests can assert it exactly. The delay is a
/// [`Backoff`] with [`Jitter::Proportional`] (see [`RetryPolicy::as_backoff`]), rounded
/// to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt, milliseconds.
    pub base_ms: u64,
    /// Multiplier per further attempt.
    pub factor: u32,
    /// Largest delay, milliseconds.
    pub max_ms: u64,
    /// Jitter as a fraction of the delay, 0.0 to 1.0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 1_000,
            factor: 2,
            max_ms: 5 * 60 * 1_000,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// This policy as the shared [`Backoff`] rule: `base_ms` growing by `factor` up to
    /// `max_ms`, with proportional jitter of `±jitter`.
    #[must_use]
    pub fn as_backoff(&self) -> Backoff {
        Backoff::new(
            std::time::Duration::from_millis(self.base_ms),
            std::time::Duration::from_millis(self.max_ms),
        )
        .with_multiplier(self.factor)
        .with_jitter(Jitter::Proportional(self.jitter))
    }

    /// The jitter draw of `task`'s attempt `attempts`: the first eight bytes of
    /// SHA-256(task id, attempts), so every replica and backend draws the same.
    #[must_use]
    pub fn draw(task: TaskId, attempts: u32) -> Draw {
        let mut hasher = Sha256::new();
        hasher.update(task.0.as_bytes());
        hasher.update(attempts.to_le_bytes());
        let digest = hasher.finalize();
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Draw::from_bits(u64::from_le_bytes(bytes))
    }

    /// The delay before attempt `attempts + 1`, after `attempts` failed ones (>= 1).
    #[must_use]
    pub fn backoff(&self, task: TaskId, attempts: u32) -> Duration {
        let delay = self
            .as_backoff()
            .delay(attempts, Self::draw(task, attempts));
        // Rounded to the nearest millisecond.
        let ms = delay.as_nanos().saturating_add(500_000) / 1_000_000;
        Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 4))
    }

    /// Decides the fate of a task whose lease expired after `attempts` claims: back to
    /// pending at once (the worker vanished; backing off would only delay recovery) or
    /// dead-lettered when out of attempts.
    #[must_use]
    pub fn on_lease_expired(&self, attempts: u32, max_attempts: u32) -> FailDecision {
        if attempts >= max_attempts {
            FailDecision::DeadLetter
        } else {
            FailDecision::Retry {
                delay: Duration::zero(),
            }
        }
    }

    /// Decides the fate of a task that has been claimed `attempts` times (the failed
    /// attempt included) out of `max_attempts`.
    #[must_use]
    pub fn decide(&self, task: TaskId, attempts: u32, max_attempts: u32) -> FailDecision {
        if attempts >= max_attempts {
            FailDecision::DeadLetter
        } else {
            FailDecision::Retry {
                delay: self.backoff(task, attempts),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let id = TaskId::new();
        let secs: Vec<i64> = (1..=12)
            .map(|n| policy.backoff(id, n).num_seconds())
            .collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }

    #[test]
    fn dead_letters_at_max_attempts() {
        let policy = RetryPolicy::default();
        let id = TaskId::new();
        assert!(matches!(
            policy.decide(id, 4, 5),
            FailDecision::Retry { .. }
        ));
        assert_eq!(policy.decide(id, 5, 5), FailDecision::DeadLetter);
        assert_eq!(policy.decide(id, 6, 5), FailDecision::DeadLetter);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(attempts in 1u32..40, jitter in 0.0f64..1.0) {
            let policy = RetryPolicy { jitter, ..RetryPolicy::default() };
            let id = TaskId::new();
            let exact = RetryPolicy { jitter: 0.0, ..policy }.backoff(id, attempts);
            let got = policy.backoff(id, attempts);
            let lo = (exact.num_milliseconds() as f64 * (1.0 - jitter)).floor() as i64 - 1;
            let hi = (exact.num_milliseconds() as f64 * (1.0 + jitter)).ceil() as i64 + 1;
            prop_assert!((lo..=hi).contains(&got.num_milliseconds()));
            // Deterministic.
            prop_assert_eq!(got, policy.backoff(id, attempts));
        }
    }

    #[test]
    fn the_cap_wins_over_the_base() {
        let policy = RetryPolicy {
            base_ms: 5_000,
            max_ms: 1_000,
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.backoff(TaskId::new(), 1).num_milliseconds(), 1_000);
    }

    /// The formula as it was written before [`Backoff`] existed, kept as the reference the
    /// shared rule must reproduce.
    fn reference(policy: &RetryPolicy, task: TaskId, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(30);
        let raw = policy
            .base_ms
            .saturating_mul(u64::from(policy.factor).saturating_pow(exp))
            .min(policy.max_ms);
        let unit = RetryPolicy::draw(task, attempts).value();
        let factor = 1.0 + policy.jitter.clamp(0.0, 1.0) * (unit * 2.0 - 1.0);
        (raw as f64 * factor).round().max(0.0) as i64
    }

    proptest! {
        #[test]
        fn matches_the_reference_formula(
            attempts in 1u32..30,
            jitter in 0.0f64..=1.0,
            base_ms in 0u64..100_000,
            factor in 1u32..5,
            max_ms in 0u64..10_000_000,
        ) {
            let policy = RetryPolicy { base_ms, factor, max_ms, jitter };
            let id = TaskId::new();
            let got = policy.backoff(id, attempts).num_milliseconds();
            let want = reference(&policy, id, attempts);
            // Float rounding may differ at a half millisecond.
            prop_assert!((got - want).abs() <= 1, "{got} vs {want}");
        }
    }
}
