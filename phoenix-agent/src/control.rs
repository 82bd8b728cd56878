//! The agent's view of the control plane: the few calls it makes, behind a trait.
//!
//! The product implements it over HTTP with `phoenix-client` ([`crate::http`]); tests and
//! applications embedding `phoenix-core` use [`crate::InProcessControlPlane`] over an
//! in-process `Phoenix` facade. Every method is one request: retrying is the caller's
//! decision (see [`ControlError::is_retryable`]).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample};
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::{LeaseRef, LeasedTask};

/// What enrolling returned.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The agent's id.
    pub agent_id: AgentId,
    /// The agent's credential (`phx_agent.<id>.<secret>`): the bearer token of every later call.
    pub credential: String,
    /// The heartbeat interval the server expects, when it says.
    pub heartbeat_interval: Option<Duration>,
}

/// What the server answered to a heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// How often to snapshot the host's inputs, when the server says.
    pub snapshot_interval: Option<Duration>,
}

/// What the server did with a metrics report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsAck {
    /// Samples stored as new.
    pub inserted: u64,
    /// Samples the server already had (same experiment, agent and sequence number).
    pub duplicates: u64,
}

/// Why a control-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The credential (or enrollment token) was refused.
    #[error("credential refused by the server")]
    Unauthenticated,
    /// The lease token is stale: the task was re-leased or finished; stop working on it.
    #[error("lease lost")]
    LeaseLost,
    /// The server refused the request itself (4xx other than 401/409/429): retrying the
    /// same request cannot help.
    #[error("request refused by the server ({status}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Too many requests; wait before retrying.
    #[error("rate limited by the server")]
    RateLimited {
        /// The server's `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached or failed (network error, 5xx): retry later.
    #[error("control plane unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ControlError {
    /// True when the same request may succeed later.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }

    /// An `Unavailable` error from any error.
    pub fn unavailable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Unavailable(e.into())
    }
}

/// The control-plane calls an agent makes. Implementations hold no agent state: the
/// credential is passed on every call.
#[async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    /// Enrolls with the enrollment token; returns the agent's credential.
    async fn enroll(
        &self,
        enrollment_token: &str,
        registration: &AgentRegistration,
    ) -> Result<Enrollment, ControlError>;

    /// Records a heartbeat.
    async fn heartbeat(
        &self,
        credential: &str,
        heartbeat: &Heartbeat,
    ) -> Result<HeartbeatAck, ControlError>;

    /// Long-polls for tasks: returns claimed tasks (each under a lease), or an empty list
    /// when `wait` passed without work.
    async fn poll_tasks(
        &self,
        credential: &str,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<LeasedTask>, ControlError>;

    /// Reports on a held task (`Running` extends the lease). Returns the new lease expiry
    /// after `Running`.
    async fn report_task(
        &self,
        credential: &str,
        lease: LeaseRef,
        report: TaskReport,
    ) -> Result<Option<DateTime<Utc>>, ControlError>;

    /// Gives a held task back (shutting down): pending again at once.
    async fn release_task(&self, credential: &str, lease: LeaseRef) -> Result<(), ControlError>;

    /// Sends measurements (idempotent per experiment, agent and `seq`) and optionally the
    /// host's cardinality snapshot.
    async fn report_metrics(
        &self,
        credential: &str,
        samples: &[MeasurementSample],
        snapshot: Option<&CardinalitySnapshot>,
    ) -> Result<MetricsAck, ControlError>;
}
