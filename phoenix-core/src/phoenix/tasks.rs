//! The agent side of the queue: long-poll, report, release; operator views.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Phoenix, PhoenixError};
use crate::experiment::{Actor, fact_from_task};
use crate::ids::{AgentId, TaskId};
use crate::inputs;
use crate::page::{Page, PageRequest};
use crate::store::StoreError;
use crate::task::{LeaseRef, LeasedTask, QueueStats, Task, TaskFilter};
use crate::validation::ValidationErrors;
use crate::wakeup;

/// What an agent reports about a task it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskReport {
    /// Still working: extend the lease.
    Running,
    /// Done.
    Succeeded {
        /// What it did.
        #[serde(default)]
        result: Option<serde_json::Value>,
    },
    /// Failed.
    Failed {
        /// Why.
        error: String,
        /// Whether trying again may help.
        #[serde(default = "yes")]
        retryable: bool,
    },
}

fn yes() -> bool {
    true
}

/// The answer to a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportReceipt {
    /// The task after the report.
    pub task: Task,
    /// The new lease expiry after `Running`.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl Phoenix {
    /// Long-poll: returns as soon as tasks for `agent` are claimable (claiming up to `max`
    /// under a lease), or empty after `timeout`, or empty when a newer poll of the same agent
    /// replaces this one. Waiting holds no store connection.
    pub async fn wait_for_tasks(
        &self,
        agent: AgentId,
        max: usize,
        timeout: StdDuration,
    ) -> Result<Vec<LeasedTask>, PhoenixError> {
        self.start_pump();
        let max = max.clamp(1, self.config().max_tasks_per_poll.max(1));
        let deadline = tokio::time::Instant::now() + timeout;
        let safety = self
            .config()
            .safety_poll
            .to_std()
            .unwrap_or(StdDuration::from_secs(2));
        let ticket = self.inner.waiters.register(agent);
        loop {
            let claimed = self
                .stores()
                .queue
                .claim(agent, max, self.config().lease)
                .await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
            if !ticket.is_current() {
                return Ok(Vec::new());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(safety);
            tokio::select! {
                () = ticket.notify.notified() => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }

    fn start_pump(&self) {
        self.inner.pump.get_or_init(|| {
            let events = self.stores().bus.subscribe();
            tokio::spawn(wakeup::pump(Arc::downgrade(&self.inner.waiters), events));
        });
    }

    /// An agent reports on a task it holds. `LeaseLost` when the lease is stale; `NotFound`
    /// when the task is not the agent's; field errors (nothing changed) when an error text
    /// or a result cannot be stored (see [`inputs`]). A finished task is fed to its experiment at once
    /// (the controller's reconciliation is the safety net if this process dies first).
    pub async fn report_task(
        &self,
        agent: AgentId,
        lease: LeaseRef,
        report: TaskReport,
    ) -> Result<ReportReceipt, PhoenixError> {
        let mut errors = ValidationErrors::new();
        match &report {
            TaskReport::Running => {}
            TaskReport::Succeeded { result } => {
                if let Some(result) = result {
                    inputs::json(&mut errors, "result", result);
                }
            }
            TaskReport::Failed { error, .. } => {
                inputs::free_text(&mut errors, "error", error, inputs::MAX_DETAIL_CHARS);
            }
        }
        errors.into_result()?;
        let queue = &self.stores().queue;
        let task = queue.get(lease.task_id).await?;
        if task.agent_id != agent {
            return Err(StoreError::not_found("task", lease.task_id).into());
        }
        let receipt = match report {
            TaskReport::Running => {
                let expires = queue.extend(&lease, self.config().lease).await?;
                let mut task = task;
                task.lease_expires_at = Some(expires);
                ReportReceipt {
                    task,
                    lease_expires_at: Some(expires),
                }
            }
            // Grouped with the other replicas' agents' completions arriving meanwhile
            // into one fenced `complete_batch` call (`group_commit.rs`).
            TaskReport::Succeeded { result } => ReportReceipt {
                task: self
                    .inner
                    .completions
                    .complete(queue, lease, result)
                    .await?,
                lease_expires_at: None,
            },
            TaskReport::Failed { error, retryable } => ReportReceipt {
                task: queue
                    .fail(&lease, &error, retryable, &self.config().retry)
                    .await?,
                lease_expires_at: None,
            },
        };
        self.feed_task_outcome(&receipt.task).await?;
        Ok(receipt)
    }

    /// Gives a held task back (agent shutting down).
    pub async fn release_task(
        &self,
        agent: AgentId,
        lease: LeaseRef,
    ) -> Result<Task, PhoenixError> {
        let task = self.stores().queue.get(lease.task_id).await?;
        if task.agent_id != agent {
            return Err(StoreError::not_found("task", lease.task_id).into());
        }
        Ok(self.stores().queue.release(&lease).await?)
    }

    /// Feeds a finished task's outcome to its experiment (idempotent).
    pub async fn feed_task_outcome(&self, task: &Task) -> Result<(), PhoenixError> {
        if let Some((experiment, fact)) = fact_from_task(task) {
            self.apply_fact(experiment, fact, &Actor::agent(task.agent_id.to_string()))
                .await?;
        }
        self.feed_deployment_task(task).await?;
        Ok(())
    }

    /// One task.
    pub async fn task(&self, id: TaskId) -> Result<Task, PhoenixError> {
        Ok(self.stores().queue.get(id).await?)
    }

    /// A page of tasks.
    pub async fn tasks(
        &self,
        filter: &TaskFilter,
        page: &PageRequest,
    ) -> Result<Page<Task>, PhoenixError> {
        Ok(self.stores().queue.list(filter, page).await?)
    }

    /// Re-drives a dead-lettered or failed task.
    pub async fn redrive_task(&self, id: TaskId) -> Result<Task, PhoenixError> {
        Ok(self.stores().queue.redrive(id).await?)
    }

    /// Queue statistics.
    pub async fn queue_stats(&self) -> Result<QueueStats, PhoenixError> {
        Ok(self.stores().queue.stats().await?)
    }
}
