//! Tasks: units of work addressed to one agent, and the pure rules of their life
//! (priorities, unique keys; retry with backoff in [`retry`]). Storage primitives are in
//! [`TaskQueue`](crate::store::TaskQueue).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, DeploymentId, ExperimentId, LeaseToken, TaskId};
use crate::pipeline::RenderedPipeline;

mod retry;

pub use retry::{FailDecision, RetryPolicy};

/// Task priorities: higher is claimed first.
pub mod priority {
    /// Instant rollback: remove the candidate now.
    pub const INSTANT_ROLLBACK: i16 = 100;
    /// Graceful rollback and failure clean-up.
    pub const ROLLBACK: i16 = 50;
    /// Removing pipelines after a stop.
    pub const TEARDOWN: i16 = 40;
    /// Promotion.
    pub const PROMOTE: i16 = 30;
    /// Deploying an experiment.
    pub const DEPLOY: i16 = 20;
    /// Quick deployments.
    pub const QUICK_DEPLOY: i16 = 20;
    /// Snapshots for previews.
    pub const SNAPSHOT: i16 = 0;
}

/// Default attempts before a task is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Longest error text kept on a task (characters); longer reports are cut.
pub const MAX_ERROR_CHARS: usize = 4096;

/// The error text a store keeps for `error`: at most [`MAX_ERROR_CHARS`] characters.
#[must_use]
pub fn truncate_error(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

/// How a pipeline is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalMode {
    /// Confirm the remaining pipeline is serving before removing.
    Graceful,
    /// Remove now.
    Instant,
}

impl RemovalMode {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graceful => "graceful",
            Self::Instant => "instant",
        }
    }
}

impl fmt::Display for RemovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RemovalMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "graceful" => Ok(Self::Graceful),
            "instant" => Ok(Self::Instant),
            other => Err(format!(
                "unknown mode `{other}` (expected graceful or instant)"
            )),
        }
    }
}

/// Which of an experiment's pipelines a removal concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalScope {
    /// Only the candidate: the baseline keeps serving (rollback).
    Candidate,
    /// Everything the experiment deployed (stop, failure clean-up).
    Experiment,
}

/// What a task asks an agent to do, with its typed payload.
#[allow(
    clippy::large_enum_variant,
    reason = "payloads are built once per task and moved, never copied in a hot loop"
)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskPayload {
    /// Run both pipelines of an experiment side by side on the same input.
    DeployPipelines {
        /// The experiment.
        experiment_id: ExperimentId,
        /// The operation this task belongs to (the experiment event that issued it).
        op_seq: u64,
        /// The baseline pipeline.
        baseline: RenderedPipeline,
        /// The candidate pipeline.
        candidate: RenderedPipeline,
        /// Both in one Collector config, for hosts running the Collector.
        #[serde(default)]
        collector_yaml: String,
        /// Sample both every this many seconds.
        sample_interval_secs: u32,
        /// Processes that must stay visible (for critical coverage).
        #[serde(default)]
        critical_processes: Vec<String>,
        /// Metric patterns that must stay visible.
        #[serde(default)]
        critical_metrics: Vec<String>,
        /// The experiment's frozen queries, evaluated on both outputs of every sample.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        queries: Vec<crate::queries::ExperimentQuery>,
    },
    /// Remove an experiment's candidate (rollback) or all its pipelines (stop).
    RemovePipeline {
        /// The experiment.
        experiment_id: ExperimentId,
        /// The operation this task belongs to.
        op_seq: u64,
        /// What to remove.
        scope: RemovalScope,
        /// How.
        mode: RemovalMode,
    },
    /// Make `pipeline` the only pipeline (promotion, rollback of a promotion, quick deploy).
    ReplacePipeline {
        /// The experiment, when this comes from one.
        experiment_id: Option<ExperimentId>,
        /// The quick deployment, when this comes from one.
        deployment_id: Option<DeploymentId>,
        /// The operation this task belongs to.
        op_seq: u64,
        /// The pipeline to run.
        pipeline: RenderedPipeline,
    },
    /// Take a cardinality snapshot of the host and report it.
    CollectSnapshot {},
}

/// The kind of a task, without its payload (for filters and storage columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// [`TaskPayload::DeployPipelines`].
    DeployPipelines,
    /// [`TaskPayload::RemovePipeline`].
    RemovePipeline,
    /// [`TaskPayload::ReplacePipeline`].
    ReplacePipeline,
    /// [`TaskPayload::CollectSnapshot`].
    CollectSnapshot,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [TaskKind; 4] = [
        TaskKind::DeployPipelines,
        TaskKind::RemovePipeline,
        TaskKind::ReplacePipeline,
        TaskKind::CollectSnapshot,
    ];

    /// The wire and storage name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployPipelines => "deploy_pipelines",
            Self::RemovePipeline => "remove_pipeline",
            Self::ReplacePipeline => "replace_pipeline",
            Self::CollectSnapshot => "collect_snapshot",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown task kind `{s}`"))
    }
}

impl TaskPayload {
    /// The kind.
    #[must_use]
    pub fn kind(&self) -> TaskKind {
        match self {
            Self::DeployPipelines { .. } => TaskKind::DeployPipelines,
            Self::RemovePipeline { .. } => TaskKind::RemovePipeline,
            Self::ReplacePipeline { .. } => TaskKind::ReplacePipeline,
            Self::CollectSnapshot {} => TaskKind::CollectSnapshot,
        }
    }

    /// The experiment this task serves, if any.
    #[must_use]
    pub fn experiment_id(&self) -> Option<ExperimentId> {
        match self {
            Self::DeployPipelines { experiment_id, .. }
            | Self::RemovePipeline { experiment_id, .. } => Some(*experiment_id),
            Self::ReplacePipeline { experiment_id, .. } => *experiment_id,
            Self::CollectSnapshot {} => None,
        }
    }

    /// The quick deployment this task serves, if any.
    #[must_use]
    pub fn deployment_id(&self) -> Option<DeploymentId> {
        match self {
            Self::ReplacePipeline { deployment_id, .. } => *deployment_id,
            _ => None,
        }
    }

    /// The operation sequence number this task belongs to (0 for tasks outside experiments).
    #[must_use]
    pub fn op_seq(&self) -> u64 {
        match self {
            Self::DeployPipelines { op_seq, .. }
            | Self::RemovePipeline { op_seq, .. }
            | Self::ReplacePipeline { op_seq, .. } => *op_seq,
            Self::CollectSnapshot {} => 0,
        }
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting to be claimed (once `run_at` has passed).
    Pending,
    /// Claimed by its agent under a lease.
    Leased,
    /// Done.
    Succeeded,
    /// Failed permanently (the agent said retrying cannot help).
    Failed,
    /// Failed `max_attempts` times; kept for inspection and re-drive.
    DeadLettered,
    /// Cancelled before completion (e.g. its experiment was stopped).
    Cancelled,
}

impl TaskState {
    /// Every state.
    pub const ALL: [TaskState; 6] = [
        TaskState::Pending,
        TaskState::Leased,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::DeadLettered,
        TaskState::Cancelled,
    ];

    /// The wire and storage name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Leased => "leased",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::DeadLettered => "dead_lettered",
            Self::Cancelled => "cancelled",
        }
    }

    /// Pending or leased: the task still counts for its unique key.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Leased)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown task state `{s}`"))
    }
}

/// A task to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// Its id, chosen by the caller so that a commit can refer to it.
    pub id: TaskId,
    /// The only agent that may claim it.
    pub agent_id: AgentId,
    /// What to do.
    pub payload: TaskPayload,
    /// Higher is claimed first.
    pub priority: i16,
    /// At most one open (pending or leased) task per key.
    pub unique_key: Option<String>,
    /// Not claimable before `now + delay` (the store's clock).
    pub delay_ms: u64,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
}

impl NewTask {
    /// A task for `agent` with the default attempts and no delay.
    #[must_use]
    pub fn new(agent_id: AgentId, payload: TaskPayload, priority: i16) -> Self {
        Self {
            id: TaskId::new(),
            agent_id,
            payload,
            priority,
            unique_key: None,
            delay_ms: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// Sets the unique key.
    #[must_use]
    pub fn with_unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Sets the delay.
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay_ms = u64::try_from(delay.num_milliseconds()).unwrap_or(0);
        self
    }

    /// Sets the attempts.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Id (UUID v7).
    pub id: TaskId,
    /// The agent it is for.
    pub agent_id: AgentId,
    /// What to do.
    pub payload: TaskPayload,
    /// Higher is claimed first.
    pub priority: i16,
    /// Unique key, if any.
    pub unique_key: Option<String>,
    /// Current state.
    pub state: TaskState,
    /// Not claimable before this.
    pub run_at: DateTime<Utc>,
    /// Claims so far (an attempt is counted when claimed).
    pub attempts: u32,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// When the current lease ends (while `Leased`).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last error reported or recorded.
    pub last_error: Option<String>,
    /// What the agent reported on success.
    pub result: Option<serde_json::Value>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// The kind.
    #[must_use]
    pub fn kind(&self) -> TaskKind {
        self.payload.kind()
    }

    /// The experiment, if any.
    #[must_use]
    pub fn experiment_id(&self) -> Option<ExperimentId> {
        self.payload.experiment_id()
    }

    /// Builds the stored form of `new` at `now` (store clock).
    #[must_use]
    pub fn from_new(new: &NewTask, now: DateTime<Utc>) -> Self {
        Self {
            id: new.id,
            agent_id: new.agent_id,
            payload: new.payload.clone(),
            priority: new.priority,
            unique_key: new.unique_key.clone(),
            state: TaskState::Pending,
            run_at: now
                + Duration::milliseconds(i64::try_from(new.delay_ms).unwrap_or(i64::MAX / 4)),
            attempts: 0,
            max_attempts: new.max_attempts.max(1),
            lease_expires_at: None,
            last_error: None,
            result: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A claimed task and its lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeasedTask {
    /// The task (state `Leased`).
    pub task: Task,
    /// The fencing token: every later operation on the task must present it.
    pub lease_token: LeaseToken,
    /// The lease ends here unless extended.
    pub lease_expires_at: DateTime<Utc>,
}

/// A reference to a lease held on a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRef {
    /// The task.
    pub task_id: TaskId,
    /// The token its claim returned.
    pub token: LeaseToken,
}

/// What `enqueue` did with one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EnqueueResult {
    /// Stored as a new pending task.
    Enqueued {
        /// Its id.
        id: TaskId,
    },
    /// Not stored: an open task with the same unique key exists.
    Duplicate {
        /// The task that was asked for.
        id: TaskId,
        /// The open task holding the key.
        existing: TaskId,
    },
}

/// Selects tasks for listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    /// Only this agent's tasks.
    pub agent_id: Option<AgentId>,
    /// Only this experiment's tasks.
    pub experiment_id: Option<ExperimentId>,
    /// Only this quick deployment's tasks.
    pub deployment_id: Option<DeploymentId>,
    /// Only these states (empty: all).
    pub states: Vec<TaskState>,
    /// Only this kind.
    pub kind: Option<TaskKind>,
}

impl TaskFilter {
    /// True when `task` passes the filter. Backends that filter in Rust use this; SQL and
    /// Lua backends translate the same fields into their queries.
    #[must_use]
    pub fn matches(&self, task: &Task) -> bool {
        self.agent_id.is_none_or(|a| a == task.agent_id)
            && self
                .experiment_id
                .is_none_or(|e| Some(e) == task.experiment_id())
            && self
                .deployment_id
                .is_none_or(|d| Some(d) == task.payload.deployment_id())
            && (self.states.is_empty() || self.states.contains(&task.state))
            && self.kind.is_none_or(|k| k == task.kind())
    }
}

/// Queue depth and age, for operators and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Tasks per state (every state present, zero when none).
    pub by_state: BTreeMap<TaskState, u64>,
    /// `run_at` of the oldest claimable pending task.
    pub oldest_pending_run_at: Option<DateTime<Utc>>,
    /// Leases past their expiry not yet requeued.
    pub expired_leases: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_serializes_with_kind_tag() {
        let p = TaskPayload::CollectSnapshot {};
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"kind":"collect_snapshot"}"#
        );
        for kind in TaskKind::ALL {
            assert_eq!(kind.as_str().parse::<TaskKind>().unwrap(), kind);
        }
        for state in TaskState::ALL {
            assert_eq!(state.as_str().parse::<TaskState>().unwrap(), state);
        }
    }
}
