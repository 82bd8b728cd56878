//! The operations' connection pool, and how it learns that its connections died.
//!
//! Pinging a connection at every acquire costs a round trip per operation, so the pool
//! does not. Instead it pings (and replaces dead connections) only when there is reason to
//! doubt them: after a long idle period, and for a while after the bus listener lost its
//! own connection. The listener blocks on its socket, so it is the first to notice a
//! server restart or `pg_terminate_backend`; the operations' connections died at the same
//! moment, and the next operations would otherwise each fail once to find out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Connections idle longer than this are tested before use.
const IDLE_TEST_AFTER: Duration = Duration::from_secs(10);
/// How long every connection is tested after the listener lost its connection.
const SUSPECT_FOR: Duration = Duration::from_secs(10);

/// Whether pooled connections should be tested before use.
#[derive(Debug)]
pub(crate) struct PoolHealth {
    base: Instant,
    /// Milliseconds after `base` until which connections are suspect.
    suspect_until: AtomicU64,
}

impl PoolHealth {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            suspect_until: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The server may have dropped our connections: test them for a while.
    pub(crate) fn suspect(&self) {
        let until = self
            .now_ms()
            .saturating_add(u64::try_from(SUSPECT_FOR.as_millis()).unwrap_or(u64::MAX));
        self.suspect_until.fetch_max(until, Ordering::Relaxed);
    }

    fn is_suspect(&self) -> bool {
        self.now_ms() < self.suspect_until.load(Ordering::Relaxed)
    }
}

/// The pool of operations' connections (lazy: connections open on first use).
pub(crate) fn build(
    connect: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
    health: Arc<PoolHealth>,
) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            let test = meta.idle_for > IDLE_TEST_AFTER || health.is_suspect();
            Box::pin(async move {
                if test {
                    // A dead connection fails here and the pool opens another one.
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_starts_and_lasts() {
        let health = PoolHealth::new();
        assert!(!health.is_suspect());
        health.suspect();
        assert!(health.is_suspect());
    }
}
