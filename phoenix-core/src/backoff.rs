//! Exponential backoff: the one rule for "how long to wait before trying again".
//!
//! Every retry and reconnect loop in Phoenix asks a [`Backoff`]: the task queue's
//! [`RetryPolicy`](crate::task::RetryPolicy), the agent's calls to the control plane and its
//! Collector restarts, and the event buses of the PostgreSQL and Redis stores. The
//! dashboard's WebSocket reconnect (`phoenix-server/dashboard/js/live.js`) follows
//! [`Backoff::default`] in JavaScript.
//!
//! The policy is pure: the jitter comes in as a [`Draw`], a number in `[0, 1)` the caller
//! chooses. Reconnect loops draw at random ([`Draw::random`]) so that a fleet that lost
//! its server at the same moment does not come back in lockstep; the task queue derives
//! its draw from the task id and attempt ([`Draw::from_bits`]) so that replicas and
//! backends agree on the schedule; tests use [`Draw::from_seed`].
//!
//! # The rule
//!
//! After `attempt` failures (`attempt >= 1`), the *ceiling* is
//! `min(max, initial * multiplier^(attempt - 1))` (attempt 0 counts as 1). The delay is
//! the ceiling jittered by the policy's [`Jitter`]:
//!
//! | [`Jitter`] | delay for a draw `u` in `[0, 1)` | range |
//! |---|---|---|
//! | `None` | `ceiling` | exactly the ceiling |
//! | `Equal` (the default) | `ceiling / 2 + (ceiling / 2) * u` | `[ceiling / 2, ceiling]` |
//! | `Full` | `ceiling * u` | `[0, ceiling]` |
//! | `Proportional(f)` | `ceiling * (1 + f * (2u - 1))` | `[ceiling * (1 - f), ceiling * (1 + f)]` |
//!
//! Reconnect loops use **equal jitter**: it spreads clients over half the ceiling, yet
//! never collapses to (nearly) zero, so a server that keeps refusing is not hammered by
//! the unlucky draws full jitter would give. Only `Proportional` may exceed `max`
//! (by at most the fraction `f`); the task queue uses it (±20 % by default).

use std::time::Duration;

use rand::Rng as _;

/// How the ceiling is spread (see the [module documentation](self) for the formulas).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// No jitter: the delay is the ceiling.
    None,
    /// Uniform in `[ceiling / 2, ceiling]`.
    Equal,
    /// Uniform in `[0, ceiling]`.
    Full,
    /// Uniform in `ceiling * [1 - f, 1 + f]`, with `f` clamped to `[0, 1]`.
    Proportional(f64),
}

/// A uniform draw from `[0, 1)`: the randomness a [`Backoff`] delay is jittered with.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Draw(f64);

impl Draw {
    /// The draw `value`, clamped into `[0, 1)` (NaN counts as 0).
    #[must_use]
    pub fn new(value: f64) -> Self {
        if value.is_nan() || value < 0.0 {
            Self(0.0)
        } else if value >= 1.0 {
            Self(1.0 - f64::EPSILON / 2.0)
        } else {
            Self(value)
        }
    }

    /// The draw whose 53 bits of precision are the top bits of `bits` (so a uniformly
    /// random `u64`, or the first eight bytes of a hash, gives a uniform draw).
    #[must_use]
    pub fn from_bits(bits: u64) -> Self {
        #[allow(clippy::cast_precision_loss, reason = "53 bits fit an f64 exactly")]
        let unit = (bits >> 11) as f64 / (1u64 << 53) as f64;
        Self(unit)
    }

    /// A deterministic draw from `seed` (SplitMix64): the same seed, the same draw.
    #[must_use]
    pub fn from_seed(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self::from_bits(z ^ (z >> 31))
    }

    /// A draw from the thread's random generator.
    #[must_use]
    pub fn random() -> Self {
        Self::from_bits(rand::rng().random())
    }

    /// The value, in `[0, 1)`.
    #[must_use]
    pub fn value(self) -> f64 {
        self.0
    }
}

/// An exponential backoff policy: `initial`, growing by `multiplier` per failure up to
/// `max`, spread by a [`Jitter`]. Pure: see the [module documentation](self).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: u32,
    jitter: Jitter,
}

impl Default for Backoff {
    /// The reconnect policy of clients of the control plane: 500 ms doubling to 30 s,
    /// equal jitter. It is the agent's default (`--backoff-initial-ms`,
    /// `--backoff-max-ms`) and the dashboard's WebSocket reconnect.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Starting at `initial`, doubling, with a ceiling never above `max`, equal jitter.
    /// The cap always wins: a `max` below `initial` makes every ceiling `max`.
    #[must_use]
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            multiplier: 2,
            jitter: Jitter::Equal,
        }
    }

    /// The same policy growing by `multiplier` per failure (0 and 1 are allowed: the
    /// ceiling is then `initial` at attempt 1 and, for 0, zero after).
    #[must_use]
    pub const fn with_multiplier(mut self, multiplier: u32) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The same policy with another jitter.
    #[must_use]
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The first ceiling.
    #[must_use]
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The largest ceiling.
    #[must_use]
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// Growth per failure.
    #[must_use]
    pub const fn multiplier(&self) -> u32 {
        self.multiplier
    }

    /// The jitter.
    #[must_use]
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The un-jittered delay after `attempt` failures:
    /// `min(max, initial * multiplier^(attempt - 1))`, computed without overflow.
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1);
        let growth = u128::from(self.multiplier).saturating_pow(exp);
        let nanos = self.initial.as_nanos().saturating_mul(growth);
        if nanos >= self.max.as_nanos() {
            self.max
        } else {
            // Below `max`, so it fits.
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
    }

    /// The delay after `attempt` failures, jittered with `draw`.
    #[must_use]
    pub fn delay(&self, attempt: u32, draw: Draw) -> Duration {
        let ceiling = self.ceiling(attempt);
        let u = draw.value();
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Equal => {
                let half = ceiling / 2;
                half + scale(ceiling - half, u)
            }
            Jitter::Full => scale(ceiling, u),
            Jitter::Proportional(fraction) => {
                let f = if fraction.is_nan() {
                    0.0
                } else {
                    fraction.clamp(0.0, 1.0)
                };
                scale(ceiling, 1.0 + f * (u * 2.0 - 1.0))
            }
        }
    }

    /// A fresh [`Sequence`] of this policy's delays.
    #[must_use]
    pub const fn sequence(&self) -> Sequence {
        Sequence {
            policy: *self,
            failures: 0,
        }
    }
}

/// `d * factor` for a finite `factor >= 0`, saturating at [`Duration::MAX`].
fn scale(d: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// The running state of one retry loop: the policy and the failures since the last
/// success.
#[derive(Debug, Clone)]
pub struct Sequence {
    policy: Backoff,
    failures: u32,
}

impl Sequence {
    /// Records a failure and returns how long to wait before the next attempt, jittered
    /// with `draw`.
    pub fn next_delay_with(&mut self, draw: Draw) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.policy.delay(self.failures, draw)
    }

    /// Records a failure and returns how long to wait, jittered at random
    /// ([`Draw::random`]).
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(Draw::random())
    }

    /// The un-jittered delay after the failures so far (the policy's `initial` before any).
    #[must_use]
    pub fn ceiling(&self) -> Duration {
        self.policy.ceiling(self.failures)
    }

    /// Failures since the last success.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a success: the next failure waits `initial` (jittered) again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &Backoff {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn grows_by_the_multiplier_and_caps() {
        let b = Backoff::new(100 * MS, 2_000 * MS);
        let ceilings: Vec<u128> = (1..=8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(b.ceiling(0), 100 * MS, "attempt 0 counts as the first");
        let tripling = b.with_multiplier(3);
        let ceilings: Vec<u128> = (1..=5).map(|n| tripling.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 300, 900, 2000, 2000]);
    }

    #[test]
    fn never_overflows() {
        let b = Backoff::new(Duration::from_secs(1), Duration::MAX).with_multiplier(u32::MAX);
        assert_eq!(b.ceiling(u32::MAX), Duration::MAX);
        let d = b
            .with_jitter(Jitter::Proportional(1.0))
            .delay(40, Draw::new(0.0));
        assert_eq!(d, Duration::ZERO);
        let d = b
            .with_jitter(Jitter::Proportional(1.0))
            .delay(40, Draw::new(1.0));
        assert_eq!(d, Duration::MAX, "saturates instead of panicking");
        assert_eq!(Backoff::new(MS, 10 * MS).ceiling(u32::MAX), 10 * MS);
    }

    #[test]
    fn the_cap_wins_over_initial() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(b.max(), Duration::from_secs(1));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_kinds_at_the_ends_of_the_draw() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let low = Draw::new(0.0);
        let high = Draw::new(1.0);
        let c = Duration::from_secs(4);
        assert_eq!(b.with_jitter(Jitter::None).delay(3, high), c);
        assert_eq!(b.with_jitter(Jitter::Equal).delay(3, low), c / 2);
        assert!(b.with_jitter(Jitter::Equal).delay(3, high) <= c);
        assert!(b.with_jitter(Jitter::Equal).delay(3, high) > c - MS);
        assert_eq!(b.with_jitter(Jitter::Full).delay(3, low), Duration::ZERO);
        assert!(b.with_jitter(Jitter::Full).delay(3, high) > c - MS);
        let p = b.with_jitter(Jitter::Proportional(0.25));
        assert_eq!(p.delay(3, low), Duration::from_secs(3));
        assert_eq!(p.delay(3, Draw::new(0.5)), c);
        assert!(p.delay(3, high) > Duration::from_secs(5) - MS);
        // Out-of-range fractions are clamped.
        let wild = b.with_jitter(Jitter::Proportional(7.0));
        assert_eq!(wild.delay(3, low), Duration::ZERO);
    }

    #[test]
    fn default_is_the_documented_reconnect_policy() {
        let b = Backoff::default();
        assert_eq!(b.initial(), 500 * MS);
        assert_eq!(b.max(), Duration::from_secs(30));
        assert_eq!(b.multiplier(), 2);
        assert_eq!(b.jitter(), Jitter::Equal);
    }

    #[test]
    fn draws_stay_in_the_unit_interval() {
        assert_eq!(Draw::new(f64::NAN).value(), 0.0);
        assert_eq!(Draw::new(-3.0).value(), 0.0);
        assert!(Draw::new(1.0).value() < 1.0);
        assert!(Draw::new(f64::INFINITY).value() < 1.0);
        assert_eq!(Draw::from_bits(0).value(), 0.0);
        assert!(Draw::from_bits(u64::MAX).value() < 1.0);
        assert_eq!(Draw::from_seed(42), Draw::from_seed(42));
        assert_ne!(Draw::from_seed(42), Draw::from_seed(43));
    }

    #[test]
    fn sequence_counts_failures_and_resets() {
        let mut s = Backoff::new(100 * MS, 2_000 * MS).sequence();
        assert_eq!(s.failures(), 0);
        let mut ceilings = Vec::new();
        for seed in 0..8 {
            let d = s.next_delay_with(Draw::from_seed(seed));
            let c = s.ceiling();
            assert!(
                d >= c / 2 && d <= c,
                "{d:?} not within [{:?}, {c:?}]",
                c / 2
            );
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(s.failures(), 8);
        s.reset();
        assert_eq!(s.failures(), 0);
        s.next_delay();
        assert_eq!(s.ceiling(), 100 * MS);
    }

    #[test]
    fn random_draws_spread_a_fleet_apart() {
        let delays: std::collections::BTreeSet<Duration> = (0..32)
            .map(|_| {
                let mut s =
                    Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).sequence();
                s.next_delay();
                s.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 1,
            "every client would retry at the same instant"
        );
    }

    proptest! {
        #[test]
        fn every_delay_is_within_its_jitter_bounds(
            initial_ms in 0u64..10_000,
            max_ms in 0u64..1_000_000,
            multiplier in 0u32..10,
            attempt in 0u32..80,
            fraction in 0.0f64..=1.0,
            seed: u64,
        ) {
            let b = Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(max_ms)).with_multiplier(multiplier);
            let c = b.ceiling(attempt);
            prop_assert!(c <= b.max());
            let draw = Draw::from_seed(seed);
            let equal = b.with_jitter(Jitter::Equal).delay(attempt, draw);
            prop_assert!(equal >= c / 2 && equal <= c);
            let full = b.with_jitter(Jitter::Full).delay(attempt, draw);
            prop_assert!(full <= c);
            let p = b.with_jitter(Jitter::Proportional(fraction)).delay(attempt, draw);
            prop_assert!(p >= c.mul_f64(1.0 - fraction).saturating_sub(MS));
            prop_assert!(p <= c.mul_f64(1.0 + fraction) + MS);
            // Deterministic given the draw.
            prop_assert_eq!(equal, b.delay(attempt, Draw::from_seed(seed)));
        }

        #[test]
        fn ceilings_never_shrink(initial_ms in 0u64..10_000, max_ms in 0u64..1_000_000, multiplier in 1u32..10, attempt in 1u32..80) {
            let b = Backoff::new(Duration::from_millis(initial_ms), Duration::from_millis(max_ms)).with_multiplier(multiplier);
            prop_assert!(b.ceiling(attempt) <= b.ceiling(attempt + 1));
        }
    }
}
