//! Quick deployments: a pipeline rolled out to the agents of a selector in growing
//! batches, pausing at the first agent error.

use chrono::{DateTime, Utc};
use phoenix_core::deployment as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::experiment::TargetSelector;
use crate::pipeline::PipelineRef;

mirror_enum! {
    /// Where a deployment is.
    DeploymentState => core::DeploymentState {
        /// Batches are being rolled out.
        Rolling,
        /// Paused by an operator or at an agent error.
        Paused,
        /// Every agent succeeded.
        Completed,
        /// Restoring the previous pipeline.
        RollingBack,
        /// Rolled back.
        RolledBack,
    }
}

mirror_enum! {
    /// Progress on one agent.
    DeploymentTargetState => core::DeploymentTargetState {
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
}

mirror_enum! {
    /// An operator command on a deployment, by name: what `allowed_actions` lists.
    DeploymentAction => core::DeploymentAction {
        /// `POST /pipelines/deployments/{id}/pause`.
        Pause,
        /// `POST /pipelines/deployments/{id}/resume`.
        Resume,
        /// `POST /pipelines/deployments/{id}/rollback`.
        Rollback,
    }
}

/// How batches grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct RolloutStrategy {
    /// Agents in the first batch.
    pub initial_batch: u32,
    /// Each batch is this many times the previous.
    pub growth_factor: u32,
    /// No batch is larger.
    pub max_batch: u32,
}

impl Default for RolloutStrategy {
    fn default() -> Self {
        core::RolloutStrategy::default().into()
    }
}

impl From<core::RolloutStrategy> for RolloutStrategy {
    fn from(s: core::RolloutStrategy) -> Self {
        Self {
            initial_batch: s.initial_batch,
            growth_factor: s.growth_factor,
            max_batch: s.max_batch,
        }
    }
}

impl From<RolloutStrategy> for core::RolloutStrategy {
    fn from(s: RolloutStrategy) -> Self {
        Self {
            initial_batch: s.initial_batch,
            growth_factor: s.growth_factor,
            max_batch: s.max_batch,
        }
    }
}

/// Body of `POST /pipelines/deployments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct NewDeployment {
    /// Human name.
    pub name: String,
    /// What to deploy (default with `experiment_id`: the experiment's candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineRef>,
    /// What rollback restores (default: the experiment's baseline, else `baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_to: Option<PipelineRef>,
    /// Which agents (live ones matching it now).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub selector: TargetSelector,
    /// The promoted experiment whose winner this rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Uuid>,
    /// Batch growth (default 1, x2, at most 50).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub strategy: RolloutStrategy,
}

/// One agent of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct DeploymentTarget {
    /// The agent.
    pub agent_id: Uuid,
    /// Its host.
    pub host: String,
    /// Progress.
    pub state: DeploymentTargetState,
    /// Its batch (0-based), once scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// What it reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Counts per target state (BindPlane-style progress).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct DeploymentProgress {
    /// Agents targeted.
    pub total: u64,
    /// Succeeded.
    pub completed: u64,
    /// Failed.
    pub errors: u64,
    /// Task sent, not yet acknowledged.
    pub in_progress: u64,
    /// Not yet in a batch.
    pub pending: u64,
    /// Previous pipeline restored.
    pub rolled_back: u64,
}

/// A quick deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Deployment {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// What is deployed.
    pub pipeline: PipelineRef,
    /// Hash of the rendered configuration agents report when they run it.
    pub config_hash: String,
    /// Selector it was created with.
    pub selector: TargetSelector,
    /// The experiment whose winner it rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<Uuid>,
    /// Batch growth.
    pub strategy: RolloutStrategy,
    /// State.
    pub state: DeploymentState,
    /// Progress counts.
    pub progress: DeploymentProgress,
    /// Per agent.
    pub targets: Vec<DeploymentTarget>,
    /// +1 per change.
    pub version: u64,
    /// Who created it.
    pub created_by: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Why it paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The commands the caller's token may send now (decided by the server from the
    /// state and the role: a viewer gets none).
    #[serde(default)]
    pub allowed_actions: Vec<DeploymentAction>,
}

impl Deployment {
    /// The wire form of `d` as a token of `role` sees it (its `allowed_actions`).
    #[must_use]
    pub fn for_role(d: core::Deployment, role: phoenix_core::auth::Role) -> Self {
        let mut progress = DeploymentProgress {
            total: d.targets.len() as u64,
            ..DeploymentProgress::default()
        };
        for t in &d.targets {
            match t.state {
                core::DeploymentTargetState::Pending => progress.pending += 1,
                core::DeploymentTargetState::InProgress => progress.in_progress += 1,
                core::DeploymentTargetState::Succeeded => progress.completed += 1,
                core::DeploymentTargetState::Failed => progress.errors += 1,
                core::DeploymentTargetState::RolledBack => progress.rolled_back += 1,
            }
        }
        Self {
            allowed_actions: core::allowed_actions(&d, role)
                .into_iter()
                .map(Into::into)
                .collect(),
            id: d.id.0,
            name: d.name,
            pipeline: d.pipeline.into(),
            config_hash: d.rendered.config_hash,
            selector: d.selector.into(),
            experiment_id: d.experiment_id.map(|e| e.0),
            strategy: d.strategy.into(),
            state: d.state.into(),
            progress,
            targets: d
                .targets
                .into_iter()
                .map(|t| DeploymentTarget {
                    agent_id: t.agent_id.0,
                    host: t.host,
                    state: t.state.into(),
                    batch: t.batch,
                    detail: t.detail,
                })
                .collect(),
            version: d.version,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
            last_error: d.last_error,
        }
    }
}

/// A page of deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct DeploymentPage {
    /// The records, newest first.
    pub items: Vec<Deployment>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl DeploymentPage {
    /// The wire form of `page` as a token of `role` sees it.
    #[must_use]
    pub fn for_role(
        page: phoenix_core::page::Page<core::Deployment>,
        role: phoenix_core::auth::Role,
    ) -> Self {
        Self {
            items: page
                .items
                .into_iter()
                .map(|d| Deployment::for_role(d, role))
                .collect(),
            next_cursor: page.next_cursor,
        }
    }
}
