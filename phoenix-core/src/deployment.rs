//! Quick deployments: one pipeline rolled out to the agents of a selector, without an
//! experiment, in growing batches that pause at the first agent error (how a promoted
//! candidate reaches the rest of the fleet).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::experiment::TargetSelector;
use crate::ids::{AgentId, DeploymentId, ExperimentId};
use crate::pipeline::{PipelineRef, RenderedPipeline};

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// Batches are being rolled out.
    Rolling,
    /// Paused by an operator or at an agent error.
    Paused,
    /// Every target succeeded.
    Completed,
    /// Restoring the previous pipeline on the targets already done.
    RollingBack,
    /// Rolled back.
    RolledBack,
}

/// Progress on one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentTargetState {
    /// Not yet in a batch.
    Pending,
    /// Task sent.
    InProgress,
    /// Acknowledged.
    Succeeded,
    /// Failed.
    Failed,
    /// Previous pipeline restored.
    RolledBack,
}

/// One agent of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentTarget {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host.
    pub host: String,
    /// Progress.
    pub state: DeploymentTargetState,
    /// The batch it belongs to (0-based), once scheduled.
    pub batch: Option<u32>,
    /// What the agent reported.
    pub detail: Option<String>,
}

/// How batches grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStrategy {
    /// Agents in the first batch.
    pub initial_batch: u32,
    /// Each next batch is this many times larger.
    pub growth_factor: u32,
    /// No batch is larger than this.
    pub max_batch: u32,
}

impl Default for RolloutStrategy {
    fn default() -> Self {
        Self {
            initial_batch: 1,
            growth_factor: 2,
            max_batch: 50,
        }
    }
}

/// A quick deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Id (UUID v7).
    pub id: DeploymentId,
    /// Human name.
    pub name: String,
    /// What is deployed.
    pub pipeline: PipelineRef,
    /// Rendered form.
    pub rendered: RenderedPipeline,
    /// Which agents (resolved at creation into `targets`).
    pub selector: TargetSelector,
    /// The experiment whose winner this rolls out, if any.
    pub experiment_id: Option<ExperimentId>,
    /// Batch growth.
    pub strategy: RolloutStrategy,
    /// State.
    pub state: DeploymentState,
    /// Per-agent progress.
    pub targets: Vec<DeploymentTarget>,
    /// Compare-and-set key, +1 per change.
    pub version: u64,
    /// Who created it.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Why it paused or failed.
    pub last_error: Option<String>,
}
