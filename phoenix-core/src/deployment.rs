//! Quick deployments: one pipeline rolled out to the agents of a selector, without an
//! experiment, in growing batches that pause at the first agent error (how a promoted
//! candidate reaches the rest of the fleet).
//!
//! The rules are pure functions: [`plan`] creates a deployment and its first batch,
//! [`apply`] takes a command (pause, resume, rollback) or a task outcome and returns the
//! next deployment (version + 1) with the tasks to enqueue, or a typed error. The facade
//! stores outcomes with compare-and-set (`phoenix/deployments.rs`).
//!
//! - Batches: `initial_batch`, then each batch `growth_factor` times the previous, capped
//!   at `max_batch` ([`batch_sizes`]). The next batch starts when every agent of the
//!   current one acknowledged.
//! - The first agent error pauses the rollout (agents already sent finish their task);
//!   `resume` retries the failed agents with the next batch.
//! - `rollback` cancels open rollout tasks and sends `rollback_pipeline` (the pipeline the
//!   agents ran before) to every agent that received the new one; `rolled_back` once all
//!   acknowledged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::experiment::{TargetAgent, TargetSelector};
use crate::ids::{AgentId, DeploymentId, ExperimentId, TaskId};
use crate::pipeline::{PipelineRef, RenderedPipeline};
use crate::task::{NewTask, Task, TaskPayload, TaskState, priority};

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
    /// The task last sent to it (outcomes of older tasks are stale).
    #[serde(default)]
    pub task_id: Option<TaskId>,
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
    /// What `rollback` restores on the agents already deployed.
    #[serde(default)]
    pub rollback_pipeline: Option<RenderedPipeline>,
}

impl DeploymentState {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rolling => "rolling",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// Operation number carried by rollout tasks (`op_seq` of their payload).
pub const OP_ROLLOUT: u64 = 1;
/// Operation number carried by rollback tasks.
pub const OP_ROLLBACK: u64 = 2;

/// Largest batch growth and batch size accepted.
pub const MAX_BATCH: u32 = 10_000;

/// Sizes of the batches that cover `targets` agents.
#[must_use]
pub fn batch_sizes(targets: usize, strategy: &RolloutStrategy) -> Vec<u32> {
    let mut sizes = Vec::new();
    let mut left = u32::try_from(targets).unwrap_or(u32::MAX);
    let cap = strategy.max_batch.max(1);
    let mut next = strategy.initial_batch.clamp(1, cap);
    while left > 0 {
        let size = next.min(left);
        sizes.push(size);
        left -= size;
        next = next.saturating_mul(strategy.growth_factor.max(1)).min(cap);
    }
    sizes
}

/// Why a deployment input was refused. Nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeploymentError {
    /// The command is not allowed in this state.
    #[error("cannot {command} a deployment that is {}", state.as_str())]
    IllegalInState {
        /// The command.
        command: &'static str,
        /// The current state.
        state: DeploymentState,
    },
    /// No live agent matches the selector.
    #[error("no live agent matches the deployment's selector")]
    NoMatchingAgents,
    /// The outcome was already applied or no longer applies. Safe to ignore.
    #[error("the outcome was already applied or no longer applies")]
    Stale,
}

/// What an operator or an agent's task did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeploymentInput {
    /// Stop starting new batches.
    Pause,
    /// Continue (failed agents are retried with the next batch).
    Resume,
    /// Restore the previous pipeline everywhere the new one was sent.
    Rollback,
    /// An agent's task of operation `op` finished.
    TaskFinished {
        /// The agent.
        agent: AgentId,
        /// The task.
        task: TaskId,
        /// [`OP_ROLLOUT`] or [`OP_ROLLBACK`].
        op: u64,
        /// Success, or the error.
        result: Result<Option<String>, String>,
    },
}

/// An operator command on a deployment: what a deployment's `allowed_actions` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentAction {
    /// [`DeploymentInput::Pause`].
    Pause,
    /// [`DeploymentInput::Resume`].
    Resume,
    /// [`DeploymentInput::Rollback`].
    Rollback,
}

impl DeploymentAction {
    /// Every operator command, in the order a page offers them.
    pub const ALL: [Self; 3] = [Self::Pause, Self::Resume, Self::Rollback];

    /// The input the command is.
    #[must_use]
    pub fn input(self) -> DeploymentInput {
        match self {
            Self::Pause => DeploymentInput::Pause,
            Self::Resume => DeploymentInput::Resume,
            Self::Rollback => DeploymentInput::Rollback,
        }
    }

    /// The role a token needs to send it.
    #[must_use]
    pub fn required_role(self) -> Role {
        Role::Operator
    }
}

/// The commands a token of `role` may send `deployment` now. Asked of [`apply`] itself,
/// so what is offered and what is accepted cannot disagree.
#[must_use]
pub fn allowed_actions(deployment: &Deployment, role: Role) -> Vec<DeploymentAction> {
    DeploymentAction::ALL
        .into_iter()
        .filter(|a| {
            role.allows(a.required_role())
                && apply(deployment, &a.input(), deployment.updated_at).is_ok()
        })
        .collect()
}

/// What [`apply`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentOutcome {
    /// The deployment after it (version + 1).
    pub deployment: Deployment,
    /// Cancel the deployment's open tasks before enqueueing.
    pub cancel_open_tasks: bool,
    /// Tasks to enqueue.
    pub tasks: Vec<NewTask>,
}

/// A new deployment: everything a creation needs besides the targets.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    /// Human name.
    pub name: String,
    /// What to deploy.
    pub pipeline: PipelineRef,
    /// Its rendered form.
    pub rendered: RenderedPipeline,
    /// What rollback restores.
    pub rollback_pipeline: Option<RenderedPipeline>,
    /// Which agents.
    pub selector: TargetSelector,
    /// The experiment whose winner this rolls out.
    pub experiment_id: Option<ExperimentId>,
    /// Batch growth.
    pub strategy: RolloutStrategy,
}

fn task_for(deployment: &Deployment, agent: AgentId, op: u64) -> Option<NewTask> {
    let pipeline = if op == OP_ROLLBACK {
        deployment.rollback_pipeline.clone()?
    } else {
        deployment.rendered.clone()
    };
    let priority = if op == OP_ROLLBACK {
        priority::ROLLBACK
    } else {
        priority::QUICK_DEPLOY
    };
    Some(
        NewTask::new(
            agent,
            TaskPayload::ReplacePipeline {
                experiment_id: None,
                deployment_id: Some(deployment.id),
                op_seq: op,
                pipeline,
            },
            priority,
        )
        .with_unique_key(format!("deployment/{}/{agent}", deployment.id)),
    )
}

/// Creates a deployment over `targets` (live agents matching the selector, in a stable
/// order) and its first batch of tasks.
pub fn plan(
    request: NewDeployment,
    targets: &[TargetAgent],
    created_by: &str,
    now: DateTime<Utc>,
) -> Result<(Deployment, Vec<NewTask>), DeploymentError> {
    if targets.is_empty() {
        return Err(DeploymentError::NoMatchingAgents);
    }
    let mut deployment = Deployment {
        id: DeploymentId::new(),
        name: request.name,
        pipeline: request.pipeline,
        rendered: request.rendered,
        selector: request.selector,
        experiment_id: request.experiment_id,
        strategy: request.strategy,
        state: DeploymentState::Rolling,
        targets: targets
            .iter()
            .map(|t| DeploymentTarget {
                agent_id: t.agent_id,
                host: t.host.clone(),
                state: DeploymentTargetState::Pending,
                batch: None,
                detail: None,
                task_id: None,
            })
            .collect(),
        version: 1,
        created_by: created_by.to_owned(),
        created_at: now,
        updated_at: now,
        last_error: None,
        rollback_pipeline: request.rollback_pipeline,
    };
    let tasks = start_next_batch(&mut deployment);
    Ok((deployment, tasks))
}

/// Schedules the next batch (failed agents first, then pending ones); `Completed` when
/// nothing is left.
fn start_next_batch(d: &mut Deployment) -> Vec<NewTask> {
    let batch_index = d
        .targets
        .iter()
        .filter_map(|t| t.batch)
        .max()
        .map_or(0, |b| b + 1);
    let sizes = batch_sizes(d.targets.len(), &d.strategy);
    let size = sizes
        .get(batch_index as usize)
        .or(sizes.last())
        .copied()
        .unwrap_or(1) as usize;
    let mut chosen: Vec<usize> = d
        .targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.state == DeploymentTargetState::Failed)
        .map(|(i, _)| i)
        .collect();
    chosen.extend(
        d.targets
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == DeploymentTargetState::Pending)
            .map(|(i, _)| i)
            .take(size.saturating_sub(chosen.len())),
    );
    if chosen.is_empty() {
        d.state = DeploymentState::Completed;
        return Vec::new();
    }
    let mut tasks = Vec::new();
    for i in chosen {
        let agent = d.targets[i].agent_id;
        d.targets[i].state = DeploymentTargetState::InProgress;
        d.targets[i].batch = Some(batch_index);
        d.targets[i].detail = None;
        if let Some(task) = task_for(d, agent, OP_ROLLOUT) {
            d.targets[i].task_id = Some(task.id);
            tasks.push(task);
        }
    }
    tasks
}

/// Applies an input. Pure: same inputs, same outcome.
pub fn apply(
    current: &Deployment,
    input: &DeploymentInput,
    now: DateTime<Utc>,
) -> Result<DeploymentOutcome, DeploymentError> {
    let mut d = current.clone();
    let mut tasks = Vec::new();
    let mut cancel_open_tasks = false;
    let illegal = |command| DeploymentError::IllegalInState {
        command,
        state: current.state,
    };
    match input {
        DeploymentInput::Pause => {
            if d.state != DeploymentState::Rolling {
                return Err(illegal("pause"));
            }
            d.state = DeploymentState::Paused;
        }
        DeploymentInput::Resume => {
            if d.state != DeploymentState::Paused {
                return Err(illegal("resume"));
            }
            d.state = DeploymentState::Rolling;
            d.last_error = None;
            if !d
                .targets
                .iter()
                .any(|t| t.state == DeploymentTargetState::InProgress)
            {
                tasks = start_next_batch(&mut d);
            }
        }
        DeploymentInput::Rollback => {
            if matches!(
                d.state,
                DeploymentState::RollingBack | DeploymentState::RolledBack
            ) || d.rollback_pipeline.is_none()
            {
                return Err(illegal("roll back"));
            }
            cancel_open_tasks = true;
            d.state = DeploymentState::RollingBack;
            let ids: Vec<AgentId> = d
                .targets
                .iter()
                .filter(|t| {
                    matches!(
                        t.state,
                        DeploymentTargetState::InProgress
                            | DeploymentTargetState::Succeeded
                            | DeploymentTargetState::Failed
                    )
                })
                .map(|t| t.agent_id)
                .collect();
            for t in &mut d.targets {
                if ids.contains(&t.agent_id) {
                    t.state = DeploymentTargetState::InProgress;
                    t.detail = None;
                }
            }
            tasks = ids
                .into_iter()
                .filter_map(|a| task_for(&d, a, OP_ROLLBACK))
                .collect();
            for task in &tasks {
                if let Some(t) = d.targets.iter_mut().find(|t| t.agent_id == task.agent_id) {
                    t.task_id = Some(task.id);
                }
            }
            if tasks.is_empty() {
                d.state = DeploymentState::RolledBack;
            }
        }
        DeploymentInput::TaskFinished {
            agent,
            task,
            op,
            result,
        } => {
            let rolling_back = d.state == DeploymentState::RollingBack;
            let expected_op = if rolling_back {
                OP_ROLLBACK
            } else {
                OP_ROLLOUT
            };
            if *op != expected_op || d.state == DeploymentState::RolledBack {
                return Err(DeploymentError::Stale);
            }
            let Some(target) = d.targets.iter_mut().find(|t| t.agent_id == *agent) else {
                return Err(DeploymentError::Stale);
            };
            if target.state != DeploymentTargetState::InProgress || target.task_id != Some(*task) {
                return Err(DeploymentError::Stale);
            }
            match result {
                Ok(detail) => {
                    target.state = if rolling_back {
                        DeploymentTargetState::RolledBack
                    } else {
                        DeploymentTargetState::Succeeded
                    };
                    target.detail.clone_from(detail);
                }
                Err(error) => {
                    // During a rollback a failed restore is recorded and the rollback
                    // still ends; during a rollout the first error pauses it.
                    target.state = DeploymentTargetState::Failed;
                    target.detail = Some(error.clone());
                    if !rolling_back && d.state == DeploymentState::Rolling {
                        d.state = DeploymentState::Paused;
                        d.last_error = Some(format!("{}: {error}", target.host));
                    }
                }
            }
            let in_flight = d
                .targets
                .iter()
                .any(|t| t.state == DeploymentTargetState::InProgress);
            if !in_flight {
                match d.state {
                    DeploymentState::Rolling => tasks = start_next_batch(&mut d),
                    DeploymentState::RollingBack => d.state = DeploymentState::RolledBack,
                    _ => {}
                }
            }
        }
    }
    d.version += 1;
    d.updated_at = now;
    Ok(DeploymentOutcome {
        deployment: d,
        cancel_open_tasks,
        tasks,
    })
}

/// The input a finished task of a deployment gives, if any.
#[must_use]
pub fn input_from_task(task: &Task) -> Option<(DeploymentId, DeploymentInput)> {
    let deployment = task.payload.deployment_id()?;
    let result = match task.state {
        TaskState::Succeeded => Ok(task.result.as_ref().map(|r| {
            r.get("message")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| r.to_string(), str::to_owned)
                .chars()
                .take(512)
                .collect()
        })),
        TaskState::Failed | TaskState::DeadLettered => Err(task
            .last_error
            .clone()
            .unwrap_or_else(|| format!("task {}", task.state))),
        _ => return None,
    };
    Some((
        deployment,
        DeploymentInput::TaskFinished {
            agent: task.agent_id,
            task: task.id,
            op: task.payload.op_seq(),
            result,
        },
    ))
}

#[cfg(test)]
mod tests;
