//! Domain events across processes: WebSocket fan-out and long-poll wake-ups.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::agent::AgentStatus;
use crate::error::StoreError;
use crate::experiment::{ExperimentEvent, Phase};
use crate::ids::{AgentId, DeploymentId, ExperimentId, TaskId};
use crate::task::{EnqueueResult, NewTask, Task, TaskState};

/// A domain event. Small: payloads carry ids and states, subscribers fetch details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BusEvent {
    /// An experiment event was committed.
    Experiment {
        /// The event.
        event: ExperimentEvent,
        /// The experiment's version after the commit.
        version: u64,
    },
    /// An experiment was deleted.
    ExperimentDeleted {
        /// Its id.
        experiment_id: ExperimentId,
    },
    /// Tasks became claimable for these agents.
    TasksAvailable {
        /// The agents.
        agents: Vec<AgentId>,
    },
    /// A task changed state.
    TaskUpdated {
        /// The task.
        task_id: TaskId,
        /// Its agent.
        agent_id: AgentId,
        /// Its experiment.
        experiment_id: Option<ExperimentId>,
        /// The new state.
        state: TaskState,
    },
    /// An agent enrolled, heartbeated with a new status, was lost or revoked.
    AgentUpdated {
        /// The agent.
        agent_id: AgentId,
        /// Its status.
        status: AgentStatus,
    },
    /// New samples arrived for an experiment.
    KpisUpdated {
        /// The experiment.
        experiment_id: ExperimentId,
    },
    /// A quick deployment changed.
    DeploymentUpdated {
        /// The deployment.
        deployment_id: DeploymentId,
    },
}

impl BusEvent {
    /// `TaskUpdated` for `task` as it is now.
    #[must_use]
    pub fn task_updated(task: &Task) -> Self {
        Self::TaskUpdated {
            task_id: task.id,
            agent_id: task.agent_id,
            experiment_id: task.experiment_id(),
            state: task.state,
        }
    }

    /// `TasksAvailable` for `agents` (sorted, deduplicated); `None` when there are none.
    pub fn tasks_available(agents: impl IntoIterator<Item = AgentId>) -> Option<Self> {
        let mut agents: Vec<AgentId> = agents.into_iter().collect();
        agents.sort();
        agents.dedup();
        (!agents.is_empty()).then_some(Self::TasksAvailable { agents })
    }

    /// `TaskUpdated` for each of `tasks`, then `TasksAvailable` for the agents of those now
    /// pending (a requeued or retried task wakes its agent's long-poll).
    #[must_use]
    pub fn task_changes(tasks: &[Task]) -> Vec<Self> {
        tasks
            .iter()
            .map(Self::task_updated)
            .chain(Self::tasks_available(
                tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Pending)
                    .map(|t| t.agent_id),
            ))
            .collect()
    }

    /// `TasksAvailable` for the agents of the `tasks` that were enqueued (`results[i]` is
    /// what became of `tasks[i]`; a duplicate wakes nobody).
    #[must_use]
    pub fn tasks_enqueued(tasks: &[NewTask], results: &[EnqueueResult]) -> Option<Self> {
        Self::tasks_available(
            tasks
                .iter()
                .zip(results)
                .filter(|(_, r)| matches!(r, EnqueueResult::Enqueued { .. }))
                .map(|(t, _)| t.agent_id),
        )
    }

    /// The phase an `Experiment` event moved to.
    #[must_use]
    pub fn phase(&self) -> Option<Phase> {
        match self {
            Self::Experiment { event, .. } => Some(event.to),
            _ => None,
        }
    }
}

/// Publish/subscribe of [`BusEvent`]s across every process sharing the backend.
///
/// Delivery is best effort and at most once per subscriber: nothing depends on it for
/// correctness (long-polls also poll slowly; WebSocket clients can re-read state). A
/// subscriber that lags loses the oldest events and is told so by the channel.
#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publishes to every subscriber in every process (including this one).
    async fn publish(&self, event: &BusEvent) -> Result<(), StoreError>;

    /// Publishes several events; backends batch them (one NOTIFY, one PUBLISH).
    async fn publish_all(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    /// A new subscription receiving every event published after this call.
    fn subscribe(&self) -> broadcast::Receiver<BusEvent>;
}
