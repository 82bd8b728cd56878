//! Server configuration: what operators tune. Read from flags, `PHOENIX_*` environment
//! variables and an optional TOML file by `main.rs`; the library only receives it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the server needs besides its listeners and store. `Default` is a working
/// development configuration (no tokens: user routes then refuse everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Secret of a bootstrap admin token, registered at start (at least 16 characters).
    pub admin_token: Option<String>,
    /// Enrollment token agents present to `POST /api/v1/agent/enroll` (at least 16
    /// characters). Without one, enrollment is refused.
    pub enrollment_token: Option<String>,
    /// Largest request body accepted, bytes (enforced while streaming).
    pub max_body_bytes: usize,
    /// Largest body accepted on the routes that carry a host's sample, exactly `POST
    /// /api/v1/agent/metrics` (snapshots are large) and `POST /api/v1/pipelines/preview` (a
    /// recorded exposition); every other route takes `max_body_bytes`.
    pub max_metrics_body_bytes: usize,
    /// Request body bytes held at once by all requests together (declared lengths are
    /// reserved before reading, chunked bodies as they arrive); a body that does not fit
    /// is answered 503 with `Retry-After`. At least `max_metrics_body_bytes`.
    pub max_bodies_in_flight_bytes: usize,
    /// Time a client has to send a whole request body once its head is read, seconds;
    /// a slower or stalled body is answered 408 and its connection closed.
    pub body_read_timeout_secs: u64,
    /// Default long-poll wait, seconds.
    pub poll_wait_secs: u64,
    /// Longest long-poll wait a client may ask for (`?wait=`), seconds.
    pub max_poll_wait_secs: u64,
    /// Sustained requests per second allowed per agent credential.
    pub agent_rate_per_sec: f64,
    /// Burst of requests allowed per agent above the sustained rate.
    pub agent_rate_burst: u32,
    /// Failed authentications allowed per second, sustained, per client address and per
    /// agent credential id; beyond it requests carrying a credential get 429.
    pub failed_auth_rate_per_sec: f64,
    /// Burst of failed authentications allowed above the sustained rate.
    pub failed_auth_burst: u32,
    /// Run the controller loop in this process (every replica may: it is idempotent).
    pub controller: bool,
    /// Controller tick interval, milliseconds.
    pub controller_interval_ms: u64,
    /// WebSocket: messages buffered per client before it is dropped as too slow.
    pub ws_buffer: usize,
    /// WebSocket: largest client message accepted, bytes.
    pub ws_max_message_bytes: usize,
    /// WebSocket: heartbeat interval, seconds (each heartbeat also re-checks the token).
    pub ws_heartbeat_secs: u64,
    /// WebSocket: sessions open at once per token.
    pub ws_max_per_token: usize,
    /// On shutdown, wait this long for in-flight requests, seconds.
    pub shutdown_grace_secs: u64,
    /// Time a client has to send a whole request head, seconds, counted from when the
    /// connection starts waiting for it (so also the longest idle keep-alive).
    pub header_read_timeout_secs: u64,
    /// Connections open at once; more are answered 503. 0: the process's open-file limit
    /// less [`RESERVED_DESCRIPTORS`].
    pub max_connections: usize,
    /// Connections open at once from one client IP address; more are answered 503 (raise
    /// it when many agents reach the server through one NAT address or proxy).
    pub max_connections_per_client: usize,
    /// Public base URL printed in logs and dev mode (e.g. `https://phoenix.example.com`).
    pub public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            enrollment_token: None,
            max_body_bytes: 1024 * 1024,
            max_metrics_body_bytes: 32 * 1024 * 1024,
            max_bodies_in_flight_bytes: 128 * 1024 * 1024,
            body_read_timeout_secs: 30,
            poll_wait_secs: 30,
            max_poll_wait_secs: 60,
            agent_rate_per_sec: 20.0,
            agent_rate_burst: 100,
            failed_auth_rate_per_sec: 1.0,
            failed_auth_burst: 20,
            controller: true,
            controller_interval_ms: 1000,
            ws_buffer: 256,
            ws_max_message_bytes: 16 * 1024,
            ws_heartbeat_secs: 15,
            ws_max_per_token: 16,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 30,
            max_connections: 0,
            max_connections_per_client: 1024,
            public_url: None,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// Descriptors kept for everything but client connections (store pools, the WebSocket
/// listener, files) when `max_connections` follows the open-file limit.
pub const RESERVED_DESCRIPTORS: usize = 128;

/// Shortest accepted configured secret.
pub const MIN_SECRET_CHARS: usize = 16;

impl ServerConfig {
    /// Checks the configuration, reporting the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, secret) in [
            ("admin_token", &self.admin_token),
            ("enrollment_token", &self.enrollment_token),
        ] {
            if let Some(s) = secret
                && s.chars().count() < MIN_SECRET_CHARS
            {
                return Err(ConfigError(format!(
                    "{name} must be at least {MIN_SECRET_CHARS} characters"
                )));
            }
        }
        if self.max_body_bytes < 1024 || self.max_metrics_body_bytes < self.max_body_bytes {
            return Err(ConfigError(
                "max_body_bytes must be at least 1024 and at most max_metrics_body_bytes".into(),
            ));
        }
        if self.max_bodies_in_flight_bytes < self.max_metrics_body_bytes
            || u32::try_from(self.max_bodies_in_flight_bytes).is_err()
        {
            return Err(ConfigError(
                "max_bodies_in_flight_bytes must be at least max_metrics_body_bytes and below 4 GiB"
                    .into(),
            ));
        }
        if !(1..=3600).contains(&self.body_read_timeout_secs) {
            return Err(ConfigError(
                "body_read_timeout_secs must be 1 to 3600".into(),
            ));
        }
        if self.poll_wait_secs > self.max_poll_wait_secs || self.max_poll_wait_secs > 600 {
            return Err(ConfigError(
                "poll_wait_secs must not exceed max_poll_wait_secs, which must not exceed 600"
                    .into(),
            ));
        }
        if !(self.agent_rate_per_sec.is_finite() && self.agent_rate_per_sec > 0.0)
            || self.agent_rate_burst == 0
            || !(self.failed_auth_rate_per_sec.is_finite() && self.failed_auth_rate_per_sec > 0.0)
            || self.failed_auth_burst == 0
        {
            return Err(ConfigError(
                "agent_rate_per_sec and failed_auth_rate_per_sec must be positive, agent_rate_burst and failed_auth_burst at least 1".into(),
            ));
        }
        if self.controller_interval_ms < 10
            || self.ws_buffer == 0
            || self.ws_heartbeat_secs == 0
            || self.ws_max_per_token == 0
        {
            return Err(ConfigError(
                "controller_interval_ms must be at least 10, ws_buffer, ws_heartbeat_secs and ws_max_per_token at least 1"
                    .into(),
            ));
        }
        if !(1..=3600).contains(&self.header_read_timeout_secs)
            || self.max_connections_per_client == 0
        {
            return Err(ConfigError(
                "header_read_timeout_secs must be 1 to 3600 and max_connections_per_client at least 1"
                    .into(),
            ));
        }
        if self.ws_max_message_bytes < 256 {
            return Err(ConfigError(
                "ws_max_message_bytes must be at least 256".into(),
            ));
        }
        Ok(())
    }

    /// The connection limits the accept loop enforces: `max_connections` (or, when 0, the
    /// open-file limit less [`RESERVED_DESCRIPTORS`], at least 64).
    #[must_use]
    pub(crate) fn connection_limits(&self) -> crate::http::ConnectionLimits {
        let max_connections = if self.max_connections > 0 {
            self.max_connections
        } else {
            rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .and_then(|n| usize::try_from(n).ok())
                .map_or(65_536, |n| n.saturating_sub(RESERVED_DESCRIPTORS).max(64))
        };
        crate::http::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            max_connections,
            max_connections_per_client: self.max_connections_per_client,
        }
    }

    /// The default long-poll wait.
    #[must_use]
    pub fn poll_wait(&self) -> Duration {
        Duration::from_secs(self.poll_wait_secs)
    }
}
