//! Executing tasks: what each task kind changes in the running pipelines.
//!
//! The [`Executor`] holds the deployments that last ran healthy (the last-known-good set,
//! persisted in the state directory and restored at start). A task computes the next set
//! from it, hands it to the runtime, waits until the runtime confirms the change serves,
//! and only then makes it the new last-known-good; when the runtime cannot confirm, the
//! previous set is applied again. Changes are serialized.
//!
//! Idempotency by task id: the result of every applied task is remembered (state
//! directory), and a task delivered again (its lease expired before the result reached
//! the server) is answered from that record without running it twice. A task applied but
//! not yet recorded when the agent died is simply run again: every kind is idempotent by
//! content (deploying what already runs changes nothing, removing what is gone succeeds).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use phoenix_core::ids::{AgentId, TaskId};
use phoenix_core::measure::Variant;
use phoenix_core::task::{RemovalMode, RemovalScope, Task, TaskPayload};
use serde_json::json;
use tokio::sync::watch;

use crate::runtime::{
    Deployments, ExperimentDeployment, HostPipeline, PipelineKey, PipelineRuntime, RuntimeError,
};
use crate::snapshot::Snapshotter;
use crate::state::{APPLIED_TASKS_KEPT, AppliedTask, StateDir, StateError};

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TaskFailure {
    /// What went wrong.
    pub message: String,
    /// Whether running it again may succeed.
    pub retryable: bool,
}

impl From<RuntimeError> for TaskFailure {
    fn from(e: RuntimeError) -> Self {
        Self {
            retryable: e.is_retryable(),
            message: error_chain(&e),
        }
    }
}

impl From<StateError> for TaskFailure {
    fn from(e: StateError) -> Self {
        Self {
            message: error_chain(&e),
            retryable: true,
        }
    }
}

/// `e` and its sources, joined with `: `.
#[must_use]
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Runs tasks against a runtime.
pub struct Executor {
    runtime: Arc<dyn PipelineRuntime>,
    state: StateDir,
    agent_id: AgentId,
    deploy_timeout: Duration,
    current: tokio::sync::Mutex<Deployments>,
    applied: Mutex<VecDeque<AppliedTask>>,
    snapshotter: Snapshotter,
    snapshot_interval: watch::Receiver<Option<Duration>>,
    default_snapshot_interval: Duration,
    snapshot_due: tokio::sync::Notify,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("runtime", &self.runtime.name())
            .field("agent_id", &self.agent_id)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor; call [`restore`](Self::restore) to bring back the last-known-good set.
    ///
    /// # Errors
    /// When the applied-task ledger cannot be read.
    pub fn new(
        runtime: Arc<dyn PipelineRuntime>,
        state: StateDir,
        agent_id: AgentId,
        deploy_timeout: Duration,
        snapshotter: Snapshotter,
        snapshot_interval: watch::Receiver<Option<Duration>>,
        default_snapshot_interval: Duration,
    ) -> Result<Self, StateError> {
        let applied = state.applied()?;
        Ok(Self {
            default_snapshot_interval,
            snapshot_due: tokio::sync::Notify::new(),
            snapshotter,
            snapshot_interval,
            runtime,
            state,
            agent_id,
            deploy_timeout,
            current: tokio::sync::Mutex::new(Deployments::default()),
            applied: Mutex::new(applied),
        })
    }

    /// The runtime.
    #[must_use]
    pub fn runtime(&self) -> &Arc<dyn PipelineRuntime> {
        &self.runtime
    }

    /// Restores the last-known-good deployments saved in the state directory.
    ///
    /// # Errors
    /// When the saved set cannot be read or the runtime refuses it (nothing runs then).
    pub async fn restore(&self) -> Result<Deployments, TaskFailure> {
        let saved = self.state.deployments()?;
        let mut current = self.current.lock().await;
        if !saved.is_empty() {
            self.runtime.apply(&saved).await?;
            tracing::info!(
                pipelines = saved.pipelines().len(),
                "restored last-known-good pipelines"
            );
        }
        *current = saved.clone();
        Ok(saved)
    }

    /// The deployments currently considered good.
    pub async fn deployments(&self) -> Deployments {
        self.current.lock().await.clone()
    }

    fn applied_result(&self, id: TaskId) -> Option<serde_json::Value> {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|a| a.task_id == id)
            .map(|a| a.result.clone())
    }

    fn record(&self, id: TaskId, result: &serde_json::Value) {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        applied.push_back(AppliedTask {
            task_id: id,
            result: result.clone(),
        });
        while applied.len() > APPLIED_TASKS_KEPT {
            applied.pop_front();
        }
        if let Err(e) = self.state.save_applied(&applied) {
            // Losing the record only means a redelivered task runs again, which is safe.
            tracing::warn!(error = %error_chain(&e), "cannot record applied task");
        }
    }

    /// Runs `task` (or answers it from the record when it was applied already).
    ///
    /// # Errors
    /// Why it failed and whether retrying may help.
    pub async fn execute(&self, task: &Task) -> Result<serde_json::Value, TaskFailure> {
        if let Some(result) = self.applied_result(task.id) {
            tracing::info!(task = %task.id, kind = %task.kind(), "task already applied; reporting the recorded result");
            return Ok(result);
        }
        let result = self.change(&task.payload).await?;
        self.record(task.id, &result);
        Ok(result)
    }

    /// Takes the host's cardinality snapshot now (the schedule and a `CollectSnapshot`
    /// task both come here): over the server's snapshot interval, the host view collected
    /// at the deployed pipelines' interval when they set one.
    ///
    /// # Errors
    /// When the runtime cannot give its view of the host.
    pub async fn collect_snapshot(&self) -> Result<serde_json::Value, TaskFailure> {
        let pipeline_interval = self.current.lock().await.interval();
        let period = self
            .snapshot_interval
            .borrow()
            .unwrap_or(self.default_snapshot_interval);
        let (count, failed) = self
            .snapshotter
            .take(self.runtime.as_ref(), period, pipeline_interval)
            .await?;
        Ok(json!({ "series": count, "failed_inputs": failed }))
    }

    async fn change(&self, payload: &TaskPayload) -> Result<serde_json::Value, TaskFailure> {
        let mut current = self.current.lock().await;
        let mut next = current.clone();
        let mut confirm: Vec<PipelineKey> = Vec::new();
        let mut complete = false;
        let mut result = json!({});
        match payload {
            TaskPayload::DeployPipelines {
                experiment_id,
                op_seq,
                baseline,
                candidate,
                collector_yaml,
                sample_interval_secs,
                critical_processes,
                critical_metrics,
                queries,
            } => {
                next.experiments.insert(
                    *experiment_id,
                    ExperimentDeployment {
                        op_seq: *op_seq,
                        baseline: baseline.clone(),
                        candidate: Some(candidate.clone()),
                        sample_interval_secs: (*sample_interval_secs).max(1),
                        critical_processes: critical_processes.clone(),
                        critical_metrics: critical_metrics.clone(),
                        collector_yaml: collector_yaml.clone(),
                        queries: queries.clone(),
                    },
                );
                confirm = vec![
                    PipelineKey::Experiment(*experiment_id, Variant::Baseline),
                    PipelineKey::Experiment(*experiment_id, Variant::Candidate),
                ];
                complete = true;
                result = json!({
                    "baseline_config_hash": baseline.config_hash,
                    "candidate_config_hash": candidate.config_hash,
                    "runtime": self.runtime.name(),
                });
            }
            TaskPayload::RemovePipeline {
                experiment_id,
                scope,
                mode,
                ..
            } => {
                let Some(deployment) = next.experiments.get_mut(experiment_id) else {
                    return Ok(json!({ "removed": false, "reason": "not deployed on this agent" }));
                };
                match scope {
                    RemovalScope::Candidate => {
                        if deployment.candidate.is_none() {
                            return Ok(
                                json!({ "removed": false, "reason": "candidate already removed" }),
                            );
                        }
                        if *mode == RemovalMode::Graceful {
                            // Only remove the candidate once the baseline is seen serving.
                            let baseline =
                                PipelineKey::Experiment(*experiment_id, Variant::Baseline);
                            self.runtime
                                .confirm_serving(&[baseline], false, self.deploy_timeout)
                                .await?;
                            result = json!({ "removed": true, "mode": "graceful", "baseline_confirmed_serving": true });
                        } else {
                            result = json!({ "removed": true, "mode": "instant" });
                        }
                        deployment.candidate = None;
                    }
                    RemovalScope::Experiment => {
                        next.experiments.remove(experiment_id);
                        result = json!({ "removed": true, "scope": "experiment", "mode": mode.as_str() });
                    }
                }
            }
            TaskPayload::ReplacePipeline {
                experiment_id,
                deployment_id,
                pipeline,
                ..
            } => {
                next.host = Some(HostPipeline {
                    pipeline: pipeline.clone(),
                    experiment_id: *experiment_id,
                    deployment_id: *deployment_id,
                });
                if let Some(e) = experiment_id {
                    next.experiments.remove(e);
                }
                confirm = vec![PipelineKey::Host];
                result =
                    json!({ "config_hash": pipeline.config_hash, "runtime": self.runtime.name() });
            }
            TaskPayload::CollectSnapshot {} => {
                drop(current);
                return self.collect_snapshot().await;
            }
        }
        if next != *current
            && let Err(e) = self.runtime.apply(&next).await
        {
            self.restore_after_failure(&current).await;
            return Err(e.into());
        }
        if !confirm.is_empty()
            && let Err(e) = self
                .runtime
                .confirm_serving(&confirm, complete, self.deploy_timeout)
                .await
        {
            self.restore_after_failure(&current).await;
            return Err(e.into());
        }
        if next != *current {
            self.state.save_deployments(&next)?;
            *current = next;
            // What the host runs changed: its snapshot is due now, not at the next period.
            self.snapshot_due.notify_one();
        }
        Ok(result)
    }

    /// Notified when the deployed set changed (the snapshot schedule takes one at once).
    #[must_use]
    pub fn snapshot_due(&self) -> &tokio::sync::Notify {
        &self.snapshot_due
    }

    async fn restore_after_failure(&self, good: &Deployments) {
        if let Err(e) = self.runtime.apply(good).await {
            tracing::error!(error = %error_chain(&e), "cannot restore the last-known-good pipelines");
        }
    }
}
