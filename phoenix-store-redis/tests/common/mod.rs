//! The Redis test backend: a fresh key prefix per backend, time moved by a shared shift.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "shared by several test crates, each using a part"
)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use phoenix_conformance::TestBackend;
use phoenix_core::clock::{SharedClock, ShiftedClock, TimeShift};
use phoenix_core::store::Stores;
use phoenix_store_redis::{RedisConfig, RedisStore};

/// The variable naming the test Redis.
pub const URL_VAR: &str = "PHOENIX_TEST_REDIS_URL";

/// A backend on its own prefix of the test Redis.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    pub store: RedisStore,
    pub config: RedisConfig,
    clock: Arc<ShiftedClock>,
}

impl RedisBackend {
    /// A backend on a fresh prefix, or `None` (a loud skip) without a test Redis.
    pub async fn fresh() -> Option<Self> {
        let url = phoenix_conformance::require_backend(URL_VAR)?;
        Some(Self::connect(url).await)
    }

    /// A backend on a fresh prefix of the Redis at `url`.
    pub async fn connect(url: String) -> Self {
        let shift = TimeShift::new();
        let config = RedisConfig::new(url)
            .with_prefix(format!("phoenix-test-{}", uuid::Uuid::new_v4()))
            .with_time_shift(shift.clone());
        let store = RedisStore::connect(config.clone())
            .await
            .expect("connect to the test Redis");
        Self {
            store,
            config,
            clock: Arc::new(ShiftedClock::new(shift)),
        }
    }
}

#[async_trait]
impl TestBackend for RedisBackend {
    fn stores(&self) -> Stores {
        self.store.stores()
    }

    fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    fn advance(&self, by: Duration) {
        self.config.time_shift.advance(by);
    }

    async fn replica(&self) -> Option<Stores> {
        let other = RedisStore::connect(self.config.clone())
            .await
            .expect("connect a replica");
        Some(other.stores())
    }

    async fn cleanup(&self) {
        self.store.purge().await.expect("purge the test prefix");
    }
}
