//! Shared server state: the facade, configuration, authentication (user roles, agent
//! credentials, the enrollment token, the failed-authentication throttle), metrics and
//! the shutdown signal. The token buckets themselves are in `rate_limit.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use phoenix_core::Phoenix;
use phoenix_core::PhoenixError;
use phoenix_core::agent::{Agent, AgentCredential, SecretHash};
use phoenix_core::auth::Role;
use phoenix_core::experiment::Actor;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::rate_limit::{MAX_BUCKETS, RateLimiter};

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
    failed_auth_by_client: RateLimiter<std::net::IpAddr>,
    failed_auth_by_agent: RateLimiter<String>,
    /// Hashes of credentials that authenticated lately, and when: they pass a throttled
    /// address or agent id, so an attacker sharing a NAT address with agents, or guessing
    /// at one agent's secret, does not lock the real ones out.
    recently_good: Mutex<HashMap<String, Instant>>,
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
        let failed_auth_by_client =
            RateLimiter::new(config.failed_auth_rate_per_sec, config.failed_auth_burst);
        let failed_auth_by_agent =
            RateLimiter::new(config.failed_auth_rate_per_sec, config.failed_auth_burst);
        Arc::new(Self {
            phoenix,
            enrollment,
            limiter,
            failed_auth_by_client,
            failed_auth_by_agent,
            recently_good: Mutex::default(),
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

    /// Whether requests presenting `credential` from `client` are held back for failed
    /// authentication: `Err(seconds to wait)` when the client address, or the agent id an
    /// agent credential names, has used up its failures.
    pub(crate) fn auth_throttled(
        &self,
        client: Option<std::net::IpAddr>,
        credential: &str,
    ) -> Result<(), u64> {
        let now = Instant::now();
        let throttled = client
            .map_or(Ok(()), |ip| self.failed_auth_by_client.peek(&ip, now))
            .and_then(|()| {
                credential_agent_id(credential).map_or(Ok(()), |agent| {
                    self.failed_auth_by_agent.peek(&agent.to_owned(), now)
                })
            });
        if throttled.is_err() {
            let hash = SecretHash::of(credential).0;
            let good = self
                .recently_good
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&hash)
                .is_some_and(|at| now.duration_since(*at) < RECENTLY_GOOD);
            if good {
                return Ok(());
            }
        }
        throttled
    }

    /// Remembers that `credential` authenticated (it passes throttled addresses for
    /// [`RECENTLY_GOOD`]).
    pub(crate) fn auth_succeeded(&self, credential: &str) {
        let now = Instant::now();
        let mut good = self
            .recently_good
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if good.len() >= MAX_BUCKETS {
            good.retain(|_, at| now.duration_since(*at) < RECENTLY_GOOD);
        }
        if good.len() < MAX_BUCKETS {
            good.insert(SecretHash::of(credential).0, now);
        }
    }

    /// Counts a failed authentication of `credential` from `client`.
    pub(crate) fn auth_failed(&self, client: Option<std::net::IpAddr>, credential: &str) {
        let now = Instant::now();
        self.metrics.auth_failures.inc();
        if let Some(ip) = client {
            let _ = self.failed_auth_by_client.check(ip, now);
        }
        if let Some(agent) = credential_agent_id(credential) {
            let _ = self.failed_auth_by_agent.check(agent.to_owned(), now);
        }
    }

    /// Whether `secret` authenticates as anything (the enrollment token, a user token or
    /// an agent credential); the route's own check decides what it may do.
    pub(crate) async fn credential_known(&self, secret: &str) -> ApiResult<bool> {
        if self.enrollment.as_ref().is_some_and(|h| h.verify(secret)) {
            return Ok(true);
        }
        let as_agent = AgentCredential::parse(secret).is_some();
        let result = if as_agent {
            self.phoenix.authenticate_agent(secret).await.map(|_| ())
        } else {
            self.phoenix.authenticate_user(secret).await.map(|_| ())
        };
        match result {
            Ok(()) => Ok(true),
            Err(PhoenixError::Unauthenticated) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The 403 of a server without an enrollment token, or `None` when it has one.
    pub(crate) fn enrollment_disabled(&self) -> Option<ApiError> {
        self.enrollment.is_none().then(|| {
            ApiError::forbidden(
                "enrollment is disabled: the server has no enrollment token configured",
            )
        })
    }

    /// Checks the enrollment token: 403 when enrollment is disabled, 401 when wrong.
    pub fn enrollment(&self, token: &EnrollmentToken) -> ApiResult<()> {
        match &self.enrollment {
            None => Err(self
                .enrollment_disabled()
                .unwrap_or_else(|| ApiError::forbidden("enrollment is disabled"))),
            Some(hash) if hash.verify(&token.0.token) => Ok(()),
            Some(_) => Err(ApiError::unauthenticated("wrong enrollment token")),
        }
    }
}

/// How long a credential that authenticated passes a throttled address or agent id.
pub(crate) const RECENTLY_GOOD: std::time::Duration = std::time::Duration::from_secs(600);

/// The agent id an agent credential (`phx_agent.<id>.<secret>`) names, for throttling
/// guesses at one agent's secret from many addresses.
fn credential_agent_id(credential: &str) -> Option<&str> {
    let rest = credential.strip_prefix("phx_agent.")?;
    rest.split_once('.').map(|(id, _)| id)
}
