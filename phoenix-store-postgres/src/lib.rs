//! # phoenix-store-postgres
//!
//! Every store trait of `phoenix-core` on PostgreSQL (sqlx), for deployments with several
//! server replicas. File for file the mirror of `phoenix_core::store` and
//! `phoenix_core::memory`: the Postgres version of `store/queue.rs` is `queue.rs` here.
//!
//! - **Schema**: embedded migrations (`migrations/`), applied on connect, in one schema
//!   chosen by [`PgStoreOptions::schema`] (`search_path` is set on every connection).
//! - **Time**: the database clock is the deployment's single time source. Every lease,
//!   `run_at` and task timestamp is `now()` on the server plus the store's [`TimeShift`]
//!   (zero in production; tests move it instead of sleeping).
//! - **Atomicity**: one statement or one transaction per trait call. A transition's
//!   compare-and-set, events, cancellations and enqueued tasks commit together.
//! - **Queue**: claims are one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED
//!   LIMIT n) RETURNING …` over a partial index of pending tasks; complete, fail, extend
//!   and release are fenced by the lease token *and* an unexpired lease.
//! - **Bus**: local subscribers get events at once; other replicas get them through
//!   LISTEN/NOTIFY (one dedicated listener connection per store, one NOTIFY per batch,
//!   ids rather than bodies). See [`bus`](crate::bus).
//!
//! Errors are [`StoreError`]s: connection and pool failures are `Unavailable`, rows that do
//! not decode are `Corrupt`; nothing panics.

mod agent;
mod bus;
mod codec;
mod deployment;
mod error;
mod experiment;
mod history;
mod metric;
mod pool;
mod query;
mod queue;
mod token;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use phoenix_core::clock::{ShiftedClock, TimeShift};
use phoenix_core::store::{BusEvent, StoreError, Stores};
use sqlx::migrate::Migrator;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::{broadcast, watch};

pub use bus::BusListenerState;
pub use sqlx::postgres::PgConnectOptions;

/// Capacity of the in-process event channel. A subscriber lagging further loses the oldest.
const BUS_CAPACITY: usize = 4096;

/// Longest schema name accepted (the NOTIFY channel name is derived from it and Postgres
/// identifiers stop at 63 bytes).
const MAX_SCHEMA_LEN: usize = 48;

/// How a [`PgStore`] connects.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    /// The schema holding Phoenix's tables (created if missing). Lowercase letters, digits
    /// and `_`, starting with a letter or `_`, at most 48 characters.
    pub schema: String,
    /// Largest number of pooled connections (the bus listener has its own connection).
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection before `Unavailable`.
    pub acquire_timeout: StdDuration,
    /// `application_name` of every connection (shows in `pg_stat_activity`).
    pub application_name: String,
    /// Apply the embedded migrations on connect.
    pub migrate: bool,
    /// Wait for the WAL flush at every commit (`synchronous_commit`). Leave it on in
    /// production; turning it off trades the last few hundred milliseconds of commits on
    /// a server crash (never consistency or visibility) for commit latency, which suits
    /// test suites.
    pub synchronous_commit: bool,
    /// Shift applied to the database clock (tests only; zero in production).
    pub time_shift: TimeShift,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            schema: "phoenix".to_owned(),
            max_connections: 16,
            acquire_timeout: StdDuration::from_secs(5),
            application_name: "phoenix".to_owned(),
            migrate: true,
            synchronous_commit: true,
            time_shift: TimeShift::new(),
        }
    }
}

/// Phoenix's stores on PostgreSQL. Clone it freely: clones share the pool and the bus.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
    shift: TimeShift,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema)
            .finish_non_exhaustive()
    }
}

struct Shared {
    pool: PgPool,
    schema: String,
    bus: bus::Bus,
}

/// The embedded migrations.
#[must_use]
pub fn migrator() -> Migrator {
    sqlx::migrate!()
}

impl PgStore {
    /// Connects to `url` with default options (schema `phoenix`), applying migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PgStoreOptions::default()).await
    }

    /// Connects to `url` with `options`: creates the schema if missing, applies the
    /// migrations (when `options.migrate`), and starts the bus listener.
    pub async fn connect_with(url: &str, options: PgStoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("invalid PostgreSQL URL: {e}")))?;
        Self::connect_options(connect, options).await
    }

    /// Connects with sqlx connection options (TLS, sockets, passwords from elsewhere) and
    /// `options`; `application_name` and `search_path` are set from `options`.
    pub async fn connect_options(
        connect: PgConnectOptions,
        options: PgStoreOptions,
    ) -> Result<Self, StoreError> {
        validate_schema(&options.schema)?;
        let mut connect = connect
            .application_name(&options.application_name)
            .options([("search_path", options.schema.as_str())]);
        if !options.synchronous_commit {
            connect = connect.options([("synchronous_commit", "off")]);
        }
        let health = pool::PoolHealth::new();
        let pool = pool::build(
            connect.clone(),
            options.max_connections,
            options.acquire_timeout,
            health.clone(),
        );
        if options.migrate {
            let mut migrator = migrator();
            migrator.create_schema(options.schema.clone());
            migrator.run(&pool).await.map_err(StoreError::unavailable)?;
        }
        let bus = bus::Bus::start(pool.clone(), connect, &options.schema, health).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                schema: options.schema,
                bus,
            }),
            shift: options.time_shift,
        })
    }

    /// Handles to every store trait, backed by this store.
    #[must_use]
    pub fn stores(&self) -> Stores {
        Stores::from_backend(self.clone())
    }

    /// The connection pool (operations such as `pg_stat_activity` checks or a migration
    /// command use it).
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// The schema holding Phoenix's tables.
    #[must_use]
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// The shift applied to the database clock.
    #[must_use]
    pub fn time_shift(&self) -> &TimeShift {
        &self.shift
    }

    /// A clock agreeing with this store's time source, for the facade and controller: the
    /// wall clock plus the same shift (the database and this host share NTP time).
    #[must_use]
    pub fn clock(&self) -> ShiftedClock {
        ShiftedClock::new(self.shift.clone())
    }

    /// A handle sharing this store's pool and bus but applying another time shift (tests
    /// that run many independent cases on one schema).
    #[must_use]
    pub fn with_time_shift(&self, shift: TimeShift) -> Self {
        Self {
            shared: self.shared.clone(),
            shift,
        }
    }

    /// The state of the bus listener (connected, reconnections so far), for health checks
    /// and metrics.
    #[must_use]
    pub fn bus_listener(&self) -> watch::Receiver<BusListenerState> {
        self.shared.bus.listener_state()
    }

    /// Closes the pool: waits for in-flight operations, then closes every connection.
    /// Later operations fail with `Unavailable`.
    pub async fn close(&self) {
        self.shared.bus.stop();
        self.shared.pool.close().await;
    }

    fn pool_ref(&self) -> &PgPool {
        &self.shared.pool
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.shared.pool.begin().await.map_err(error::store_error)
    }

    /// The current shift in milliseconds, bound as `$n` of `phoenix_now($n)`.
    fn shift_ms(&self) -> i64 {
        self.shift.millis()
    }

    /// Delivers `events` to local subscribers at once and to other replicas through
    /// LISTEN/NOTIFY (after the caller's transaction committed).
    fn emit(&self, events: impl IntoIterator<Item = BusEvent>) {
        self.shared.bus.emit(events);
    }

    fn subscribe_bus(&self) -> broadcast::Receiver<BusEvent> {
        self.shared.bus.subscribe()
    }
}

/// Ends a transaction: commits after `Ok`, rolls back at once after `Err`. (A dropped
/// transaction only queues its rollback on the connection; until the connection is used
/// again its row locks would make `SKIP LOCKED` claims pass those rows over.)
async fn settle<T>(
    tx: Transaction<'static, Postgres>,
    outcome: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match outcome {
        Ok(value) => {
            tx.commit().await.map_err(error::store_error)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(%rollback, "rollback after a refused operation failed");
            }
            Err(e)
        }
    }
}

fn validate_schema(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= MAX_SCHEMA_LEN && !schema.starts_with("pg_") {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid schema name `{schema}`: lowercase letters, digits and `_`, starting with a \
             letter or `_`, at most {MAX_SCHEMA_LEN} characters, not starting with `pg_`"
        )))
    }
}

/// Channel of the bus for `schema`: namespaced so that stores on different schemas of one
/// database (isolated tests, several tenants) never hear each other.
fn channel_name(schema: &str) -> String {
    format!("phoenix_bus_{schema}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_validated() {
        for ok in ["phoenix", "_x", "phx_t_123_abc"] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Phoenix",
            "1abc",
            "a-b",
            "a;drop",
            "pg_catalog",
            &"x".repeat(49),
        ] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
        assert!(channel_name(&"x".repeat(48)).len() < 64);
    }
}
