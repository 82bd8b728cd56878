//! # phoenix-store-redis
//!
//! Every store trait of `phoenix-core` on Redis (7 or later), for deployments with several
//! server replicas.
//!
//! - Every multi-key atomic step (a transition's commit with its task enqueue, claim with a
//!   lease, fenced extend/complete/fail/release, requeue of expired leases, re-drive,
//!   deployments) is one Lua script from `lua/*.lua`, invoked by SHA (`EVALSHA`, loaded
//!   again on `NOSCRIPT`). Scripts apply decisions; the rules (retry timing, phases, agent
//!   health) stay in `phoenix-core`.
//! - Every key lives under the hash tag `{prefix}`: one namespace per deployment or test,
//!   and one slot in a cluster.
//! - Time: scripts read `TIME` (plus a test-only [`TimeShift`]), so replicas with skewed
//!   clocks agree on leases.
//! - The event bus is one pub/sub channel per namespace, read through one dedicated
//!   connection per [`RedisStore`] and fanned out in process on a tokio broadcast channel.
//!   Nothing blocks a connection: long-polls wait on in-process notifications.
//! - Commands go through a [`ConnectionManager`] (one multiplexed connection that
//!   reconnects); errors surface as [`StoreError::Unavailable`], never as a panic.
//!
//! Key layout, scripts and durability: `docs/storage-redis.md`.

mod agent;
mod bus;
mod codec;
mod deployment;
mod experiment;
mod history;
mod metric;
mod query;
mod queue;
mod scripts;
mod token;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration as StdDuration;

use phoenix_core::clock::TimeShift;
use phoenix_core::error::StoreError;
use phoenix_core::store::{BusEvent, Stores};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tokio::sync::broadcast;

use crate::codec::Reply;

/// Capacity of the in-process event channel. A subscriber lagging further loses the oldest.
const BUS_CAPACITY: usize = 4096;

/// Events kept per experiment; older ones are dropped first.
pub const MAX_EVENTS_PER_EXPERIMENT: usize = 100_000;

/// How to reach Redis and where to keep Phoenix's keys.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Namespace of every key: `{prefix}:...`. Several deployments (or tests) share one
    /// Redis with distinct prefixes. Must be non-empty, without `{`, `}` or whitespace.
    pub prefix: String,
    /// Shift applied to Redis `TIME` in every script. Tests move it forward to expire
    /// leases without sleeping; production leaves it at zero.
    pub time_shift: TimeShift,
    /// A command without an answer after this long fails with `Unavailable` (and the
    /// connection is re-established).
    pub response_timeout: StdDuration,
    /// Connecting (and each reconnection attempt) gives up after this long.
    pub connection_timeout: StdDuration,
}

impl RedisConfig {
    /// The defaults for `url`: prefix `phoenix`, no time shift, 5 s timeouts.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "phoenix".to_owned(),
            time_shift: TimeShift::new(),
            response_timeout: StdDuration::from_secs(5),
            connection_timeout: StdDuration::from_secs(5),
        }
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the time shift (tests).
    #[must_use]
    pub fn with_time_shift(mut self, shift: TimeShift) -> Self {
        self.time_shift = shift;
        self
    }

    fn validate(&self) -> Result<(), StoreError> {
        let bad = self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control());
        if bad {
            return Err(StoreError::Invalid(format!(
                "redis key prefix `{}` must be non-empty, without braces or whitespace",
                self.prefix
            )));
        }
        Ok(())
    }
}

/// The Redis store. Clone it freely: clones share the connections and the bus listener.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

struct Inner {
    conn: ConnectionManager,
    /// `{prefix}`: the hash-tagged namespace every key starts with.
    namespace: String,
    shift: TimeShift,
    bus: broadcast::Sender<BusEvent>,
    /// Requests sent to Redis (each one a round trip), for benchmarks and operators.
    round_trips: AtomicU64,
    listener: bus::Listener,
}

impl RedisStore {
    /// Connects (commands and the bus listener) and returns once the bus is subscribed, so
    /// that every event published after this returns is delivered to subscribers.
    /// `Invalid` for a bad URL or prefix, `Unavailable` when Redis cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Invalid(format!("invalid redis url: {e}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_max_delay(StdDuration::from_secs(2));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(StoreError::unavailable)?;
        let namespace = format!("{{{}}}", config.prefix);
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let listener = bus::Listener::start(client, bus::channel(&namespace), bus.clone()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                namespace,
                shift: config.time_shift,
                bus,
                round_trips: AtomicU64::new(0),
                listener,
            }),
        })
    }

    /// Handles to every store trait, backed by this store.
    #[must_use]
    pub fn stores(&self) -> Stores {
        Stores::from_backend(self.clone())
    }

    /// The namespace (`{prefix}`) every key of this store starts with.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Requests this store (all clones) has sent to Redis so far; each is one round trip.
    #[must_use]
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Whether the event bus connection is subscribed right now (events published while it
    /// is not are missed by this process; long-polls then rely on their safety poll).
    #[must_use]
    pub fn bus_subscribed(&self) -> bool {
        self.inner.listener.state.borrow().subscribed
    }

    /// How many times the event bus connection subscribed (1 after `connect`, one more per
    /// reconnection).
    #[must_use]
    pub fn bus_subscriptions(&self) -> u64 {
        self.inner.listener.state.borrow().subscriptions
    }

    /// Returns once the event bus is subscribed after more than `after` subscriptions (pass
    /// [`RedisStore::bus_subscriptions`] read before a disconnection to wait for the
    /// reconnection).
    pub async fn bus_resubscribed(&self, after: u64) {
        let mut state = self.inner.listener.state.clone();
        // The sender lives as long as the listener task, which lives as long as `self`.
        let _ = state
            .wait_for(|s| s.subscribed && s.subscriptions > after)
            .await;
    }

    /// Checks that Redis answers (readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: Value = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Deletes every key of this namespace (a tenant's or a test's data). Irreversible.
    /// Returns how many keys were deleted.
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let mut pattern = String::new();
        for c in self.inner.namespace.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(":*");
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            if !keys.is_empty() {
                let n: u64 = self.query(redis::cmd("UNLINK").arg(&keys)).await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.inner.namespace.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// Runs one plain command.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.inner.conn.clone();
        cmd.query_async(&mut conn).await.map_err(codec::map_error)
    }

    /// Runs a pipeline (one round trip).
    async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        pipeline: &redis::Pipeline,
    ) -> Result<T, StoreError> {
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.inner.conn.clone();
        pipeline
            .query_async(&mut conn)
            .await
            .map_err(codec::map_error)
    }

    /// Runs a script with the namespace as its key and the time shift as its first argument,
    /// then `args`; returns its status and the rest of its reply.
    async fn run(
        &self,
        script: &Script,
        args: impl FnOnce(&mut redis::ScriptInvocation<'_>),
    ) -> Result<Reply, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&self.inner.namespace)
            .arg(self.inner.shift.millis());
        args(&mut invocation);
        self.inner.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.inner.conn.clone();
        let value: Value = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(codec::map_error)?;
        Reply::parse(value)
    }
}
