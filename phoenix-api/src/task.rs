//! Tasks as agents and operators see them.

use chrono::{DateTime, Utc};
use phoenix_core::task as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mirror_enum! {
    /// How a pipeline is removed.
    RemovalMode => core::RemovalMode {
        /// Confirm the remaining pipeline serves before removing.
        Graceful,
        /// Remove now.
        Instant,
    }
}

mirror_enum! {
    /// Where a task is in its life.
    TaskState => core::TaskState {
        /// Waiting to be claimed.
        Pending,
        /// Claimed under a lease.
        Leased,
        /// Done.
        Succeeded,
        /// Failed permanently.
        Failed,
        /// Out of attempts; kept for inspection and re-drive.
        DeadLettered,
        /// Cancelled.
        Cancelled,
    }
}

mirror_enum! {
    /// What a task asks for.
    TaskKind => core::TaskKind {
        /// Run both pipelines of an experiment side by side.
        DeployPipelines,
        /// Remove an experiment's candidate or all its pipelines.
        RemovePipeline,
        /// Make one pipeline the only one.
        ReplacePipeline,
        /// Report a cardinality snapshot.
        CollectSnapshot,
    }
}

mirror_enum! {
    /// Status an agent reports for a task it holds.
    TaskReportStatus => TaskReportStatusCore {
        /// Still working: extends the lease.
        Running,
        /// Done.
        Succeeded,
        /// Failed (`error` required).
        Failed,
    }
}

/// The core side of [`TaskReportStatus`] (the core report carries payloads, so the
/// fieldless status lives here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskReportStatusCore {
    /// See [`TaskReportStatus::Running`].
    Running,
    /// See [`TaskReportStatus::Succeeded`].
    Succeeded,
    /// See [`TaskReportStatus::Failed`].
    Failed,
}

/// A task. `payload` is the typed task payload, tagged by `kind` (see the agent guide);
/// [`Task::payload_core`] decodes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Task {
    /// Id.
    pub id: Uuid,
    /// The only agent that may claim it.
    pub agent_id: Uuid,
    /// Kind (also the `kind` tag of `payload`).
    pub kind: TaskKind,
    /// The experiment it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Uuid>,
    /// The quick deployment it serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<Uuid>,
    /// What to do.
    pub payload: serde_json::Value,
    /// Higher is claimed first.
    pub priority: i16,
    /// At most one open task per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// State.
    pub state: TaskState,
    /// Not claimable before.
    pub run_at: DateTime<Utc>,
    /// Claims so far.
    pub attempts: u32,
    /// Claims before dead-lettering.
    pub max_attempts: u32,
    /// Current lease expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Last error reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Result reported on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<core::Task> for Task {
    fn from(t: core::Task) -> Self {
        Self {
            id: t.id.0,
            agent_id: t.agent_id.0,
            kind: t.payload.kind().into(),
            experiment_id: t.payload.experiment_id().map(|e| e.0),
            deployment_id: t.payload.deployment_id().map(|d| d.0),
            payload: serde_json::to_value(&t.payload).unwrap_or(serde_json::Value::Null),
            priority: t.priority,
            unique_key: t.unique_key,
            state: t.state.into(),
            run_at: t.run_at,
            attempts: t.attempts,
            max_attempts: t.max_attempts,
            lease_expires_at: t.lease_expires_at,
            last_error: t.last_error,
            result: t.result,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

impl Task {
    /// The typed payload.
    pub fn payload_core(&self) -> Result<core::TaskPayload, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}

page_type!(
    /// A page of tasks.
    TaskPage,
    Task
);

/// A task claimed by the polling agent, with its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct LeasedTask {
    /// The task (state `leased`).
    pub task: Task,
    /// The fencing token: every status report on this task must carry it.
    pub lease_token: Uuid,
    /// The lease ends here unless extended by a `running` report.
    pub lease_expires_at: DateTime<Utc>,
}

impl From<core::LeasedTask> for LeasedTask {
    fn from(t: core::LeasedTask) -> Self {
        Self {
            task: t.task.into(),
            lease_token: t.lease_token.0,
            lease_expires_at: t.lease_expires_at,
        }
    }
}

/// The answer to a long-poll that found work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TaskBatch {
    /// Claimed tasks, highest priority first.
    pub tasks: Vec<LeasedTask>,
}

/// An agent's report on a task it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct TaskStatusReport {
    /// The lease token the claim returned.
    pub lease_token: Uuid,
    /// New status.
    pub status: TaskReportStatus,
    /// What it did (`succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed (`failed`, required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether retrying may help (`failed`; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

impl TaskStatusReport {
    /// `running`: extend the lease.
    #[must_use]
    pub fn running(lease_token: Uuid) -> Self {
        Self {
            lease_token,
            status: TaskReportStatus::Running,
            result: None,
            error: None,
            retryable: None,
        }
    }

    /// `succeeded` with an optional result.
    #[must_use]
    pub fn succeeded(lease_token: Uuid, result: Option<serde_json::Value>) -> Self {
        Self {
            lease_token,
            status: TaskReportStatus::Succeeded,
            result,
            error: None,
            retryable: None,
        }
    }

    /// `failed` with an error.
    #[must_use]
    pub fn failed(lease_token: Uuid, error: impl Into<String>, retryable: bool) -> Self {
        Self {
            lease_token,
            status: TaskReportStatus::Failed,
            result: None,
            error: Some(error.into()),
            retryable: Some(retryable),
        }
    }
}

/// The answer to a status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct TaskStatusReceipt {
    /// The task after the report.
    pub task: Task,
    /// The new lease expiry after `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// Body of a lease release (agent shutting down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct ReleaseRequest {
    /// The lease token the claim returned.
    pub lease_token: Uuid,
}
