//! Shared server state: the facade, configuration, authentication, rate limits, metrics
//! and the shutdown signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use phoenix_core::Phoenix;
use phoenix_core::PhoenixError;
use phoenix_core::agent::{Agent, AgentCredential, SecretHash};
use phoenix_core::auth::Role;
use phoenix_core::experiment::Actor;
use phoenix_core::ids::AgentId;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// A user API token (`phx_user_...`), as `Authorization: Bearer <token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "phx_user_...")]
pub struct UserToken(pub Bearer);

/// An agent credential (`phx_agent.<id>.<secret>`), as `Authorization: Bearer <credential>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "phx_agent.<id>.<secret>")]
pub struct AgentToken(pub Bearer);

/// The enrollment token from the server's configuration, as `Authorization: Bearer <token>`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer")]
pub struct EnrollmentToken(pub Bearer);

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct User {
    /// Token name.
    pub name: String,
    /// Role.
    pub role: Role,
}

impl User {
    /// The actor recorded in events.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::user(self.name.clone())
    }
}

/// Everything handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The facade.
    pub phoenix: Phoenix,
    /// The configuration.
    pub config: ServerConfig,
    /// The server's own metrics.
    pub metrics: Metrics,
    enrollment: Option<SecretHash>,
    limiter: RateLimiter,
    shutdown: watch::Sender<bool>,
    /// Open WebSocket sessions per token secret (at most `ws_max_per_token` each).
    ws_sessions: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// One open WebSocket session of a token; gives its place back when dropped.
#[derive(Debug)]
pub struct WsSessionSlot {
    sessions: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    secret: String,
}

impl Drop for WsSessionSlot {
    fn drop(&mut self) {
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = sessions.get_mut(&self.secret) {
            *n -= 1;
            if *n == 0 {
                sessions.remove(&self.secret);
            }
        }
    }
}

impl AppState {
    /// State over `phoenix` with `config`.
    #[must_use]
    pub fn new(phoenix: Phoenix, config: ServerConfig) -> Arc<Self> {
        let enrollment = config.enrollment_token.as_deref().map(SecretHash::of);
        let limiter = RateLimiter::new(config.agent_rate_per_sec, config.agent_rate_burst);
        Arc::new(Self {
            phoenix,
            enrollment,
            limiter,
            metrics: Metrics::new(),
            config,
            shutdown: watch::channel(false).0,
            ws_sessions: Arc::default(),
        })
    }

    /// Tells long-polls and WebSocket clients to finish.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// True once shutdown began.
    #[must_use]
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when shutdown begins.
    pub async fn shutdown_signal(&self) {
        let mut rx = self.shutdown.subscribe();
        // An error means the sender is gone, which only happens when the state is
        // dropped: treat it as shutdown.
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Authenticates a user token and checks that its role includes `required`.
    /// 401 for a missing, unknown or revoked token; 403 for an agent credential or a
    /// role that is too low.
    pub async fn user(&self, token: &UserToken, required: Role) -> ApiResult<User> {
        self.user_secret(&token.0.token, required).await
    }

    /// A WebSocket session slot for `secret`, or `None` when the token already has
    /// `ws_max_per_token` sessions open.
    #[must_use]
    pub fn ws_session_slot(&self, secret: &str) -> Option<WsSessionSlot> {
        let mut sessions = self
            .ws_sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = sessions.entry(secret.to_owned()).or_insert(0);
        if *open >= self.config.ws_max_per_token {
            return None;
        }
        *open += 1;
        drop(sessions);
        Some(WsSessionSlot {
            sessions: Arc::clone(&self.ws_sessions),
            secret: secret.to_owned(),
        })
    }

    /// [`AppState::user`] on a raw secret (a WebSocket's header or subprotocol token).
    pub async fn user_secret(&self, secret: &str, required: Role) -> ApiResult<User> {
        match self.phoenix.authenticate_user(secret).await {
            Ok(token) if token.role.allows(required) => Ok(User {
                name: token.name,
                role: token.role,
            }),
            Ok(token) => Err(ApiError::forbidden(format!(
                "this requires the {required} role; token `{}` is {}",
                token.name, token.role
            ))),
            Err(PhoenixError::Unauthenticated) => {
                if AgentCredential::parse(secret).is_some()
                    && self.phoenix.authenticate_agent(secret).await.is_ok()
                {
                    Err(ApiError::forbidden(
                        "agent credentials may only call /api/v1/agent routes",
                    ))
                } else {
                    Err(ApiError::unauthenticated("unknown or revoked token"))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Authenticates an agent credential and applies the agent's rate limit.
    /// 401 for an unknown, malformed or revoked credential; 403 for a user token;
    /// 429 with `Retry-After` when over the limit.
    pub async fn agent(&self, token: &AgentToken) -> ApiResult<Agent> {
        let secret = &token.0.token;
        let agent = match self.phoenix.authenticate_agent(secret).await {
            Ok(agent) => agent,
            Err(PhoenixError::Unauthenticated) => {
                return if self.phoenix.authenticate_user(secret).await.is_ok() {
                    Err(ApiError::forbidden(
                        "user tokens may not call agent routes; use the agent's credential",
                    ))
                } else {
                    Err(ApiError::unauthenticated(
                        "unknown or revoked agent credential",
                    ))
                };
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(retry_after) = self.limiter.check(agent.id, Instant::now()) {
            self.metrics.rate_limited.inc();
            return Err(ApiError::rate_limited(retry_after));
        }
        Ok(agent)
    }

    /// Checks the enrollment token: 403 when enrollment is disabled, 401 when wrong.
    pub fn enrollment(&self, token: &EnrollmentToken) -> ApiResult<()> {
        match &self.enrollment {
            None => Err(ApiError::forbidden(
                "enrollment is disabled: the server has no enrollment token configured",
            )),
            Some(hash) if hash.verify(&token.0.token) => Ok(()),
            Some(_) => Err(ApiError::unauthenticated("wrong enrollment token")),
        }
    }
}

/// Per-agent token buckets. In-process: with several replicas each enforces its own share,
/// which bounds an agent at `replicas × rate`; agents stick to one replica per connection.
#[derive(Debug)]
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<AgentId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle ones are pruned.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    fn new(rate: f64, burst: u32) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when a request may pass now; otherwise the seconds to wait.
    fn check(&self, agent: AgentId, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&agent) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(agent).or_insert(Bucket {
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
            let wait = (1.0 - bucket.tokens) / self.rate;
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a small positive number of seconds"
            )]
            Err(wait.ceil().max(1.0) as u64)
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
