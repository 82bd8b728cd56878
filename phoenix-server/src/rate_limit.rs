//! Token buckets: the per-agent request rate and the failed-authentication throttle.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use phoenix_core::ids::AgentId;
use tokio::time::Instant;

/// Token buckets per key (an agent; a client address or credential prefix for failed
/// authentication). In-process: with several replicas each enforces its own share, which
/// bounds a key at `replicas × rate`; clients stick to one replica per connection.
#[derive(Debug)]
pub(crate) struct RateLimiter<K = AgentId> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle ones are pruned.
pub(crate) const MAX_BUCKETS: usize = 100_000;

impl<K: std::hash::Hash + Eq + Clone> RateLimiter<K> {
    pub(crate) fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when the bucket of `key` holds a token now (without taking it); otherwise the
    /// seconds to wait.
    pub(crate) fn peek(&self, key: &K, now: Instant) -> Result<(), u64> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        match buckets.get(key) {
            None => Ok(()),
            Some(b) => {
                let tokens =
                    (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
                if tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait_secs(tokens))
                }
            }
        }
    }

    fn wait_secs(&self, tokens: f64) -> u64 {
        let wait = (1.0 - tokens) / self.rate;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a small positive number of seconds"
        )]
        let secs = wait.ceil().max(1.0) as u64;
        secs
    }

    /// Takes a token for `key`: `Ok` when a request may pass now; otherwise the seconds
    /// to wait.
    pub(crate) fn check(&self, key: K, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let tokens = bucket.tokens;
            drop(buckets);
            Err(self.wait_secs(tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let agent = AgentId::new();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(agent, t0), Ok(()));
        }
        assert_eq!(limiter.check(agent, t0), Err(1));
        // Half a second at 2/s refills one token.
        assert_eq!(
            limiter.check(agent, t0 + Duration::from_millis(500)),
            Ok(())
        );
        assert_eq!(
            limiter.check(agent, t0 + Duration::from_millis(500)),
            Err(1)
        );
        // Another agent has its own bucket.
        assert_eq!(limiter.check(AgentId::new(), t0), Ok(()));
    }
}
