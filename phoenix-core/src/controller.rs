//! The controller: drives what no request drives (lease expiry, agent loss, timers,
//! judging, reconciliation of task outcomes, retention).
//!
//! Every step is idempotent and applied with compare-and-set, so any number of replicas
//! may run it at once: two controllers racing on one experiment produce one transition and
//! one retried no-op. It is level-triggered: each tick re-derives facts from stored state
//! (finished tasks, lost agents, elapsed timers), so a crash between a task's completion
//! and its fact being applied is repaired by the next tick.

use std::collections::HashMap;

use serde::Serialize;

use crate::agent::{Agent, AgentFilter, AgentStatus};
use crate::experiment::{Actor, Experiment, Fact, Phase, TargetState, fact_from_task};
use crate::ids::AgentId;
use crate::phoenix::{Phoenix, PhoenixError};
use crate::store::ExperimentFilter;
use crate::task::{TaskFilter, TaskState};

/// Most expired leases handled per tick.
const REQUEUE_BATCH: usize = 1_000;
/// Most finished tasks pruned per tick.
const PRUNE_BATCH: usize = 1_000;
/// Most samples read to judge an experiment.
const MAX_JUDGED_SAMPLES: usize = crate::store::MAX_SAMPLES_PER_EXPERIMENT;

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Expired leases returned to pending or dead-lettered.
    pub leases_expired: usize,
    /// Agents newly marked lost.
    pub agents_lost: usize,
    /// Transitions applied.
    pub transitions: usize,
    /// Finished tasks pruned.
    pub pruned: u64,
    /// Snapshots deleted (their agent deleted, or not live past the snapshot retention).
    pub snapshots_pruned: u64,
    /// This replica recorded the interval's cost history observation.
    pub history_recorded: bool,
    /// History hours folded into their days.
    pub history_folded: u64,
    /// History buckets deleted by retention.
    pub history_pruned: u64,
    /// Agent health points deleted (older than the health retention).
    pub health_pruned: u64,
}

/// Runs the controller's duties on a [`Phoenix`].
#[derive(Debug, Clone)]
pub struct Controller {
    phoenix: Phoenix,
}

impl Controller {
    /// A controller for `phoenix`.
    #[must_use]
    pub fn new(phoenix: Phoenix) -> Self {
        Self { phoenix }
    }

    /// One pass over everything. Call it on a timer (every second or so) and on events.
    pub async fn tick(&self) -> Result<TickReport, PhoenixError> {
        let mut report = TickReport::default();
        let p = &self.phoenix;
        let actor = Actor::system();

        // 1. Expired leases.
        let changed = p
            .stores()
            .queue
            .requeue_expired(&p.config().retry, REQUEUE_BATCH)
            .await?;
        report.leases_expired = changed.len();
        for task in changed
            .iter()
            .filter(|t| t.state == TaskState::DeadLettered)
        {
            if let Some((experiment, fact)) = fact_from_task(task) {
                report.transitions +=
                    usize::from(p.apply_fact(experiment, fact, &actor).await?.is_some());
            }
        }

        // 2. Agent loss.
        let now = p.clock().now();
        let agents = p
            .all_agents(&AgentFilter {
                statuses: Vec::new(),
                include_revoked: true,
            })
            .await?;
        let mut by_id: HashMap<AgentId, Agent> = HashMap::with_capacity(agents.len());
        for mut agent in agents {
            if agent.is_overdue(now, p.config().heartbeat_interval)
                && p.stores()
                    .agents
                    .mark_lost(agent.id, agent.last_heartbeat)
                    .await?
            {
                agent.status = AgentStatus::Lost;
                report.agents_lost += 1;
            }
            by_id.insert(agent.id, agent);
        }

        // 3. Experiments that move on their own (plus terminal ones still collecting
        //    provenance from their last tasks).
        let experiments = p
            .all_experiments(&ExperimentFilter::phases(
                Phase::ALL.into_iter().filter(|ph| ph.is_active()),
            ))
            .await?;
        for experiment in experiments {
            report.transitions += self.drive(&experiment, &by_id).await?;
        }

        // 4. Quick deployments: outcomes not yet applied (crash, dead-lettered lease).
        report.transitions += p.reconcile_deployments().await?;

        // 5. Retention.
        let before = now - p.config().task_retention;
        report.pruned = p.stores().queue.prune(before, PRUNE_BATCH).await?;
        report.snapshots_pruned = p.prune_snapshots().await?;

        // 6. Cost history: once per interval (idempotent across replicas).
        let history = p.record_history().await?;
        report.history_recorded = history.recorded;
        report.history_folded = history.folded;
        report.history_pruned = history.pruned;

        // 7. Agent health history: retention.
        report.health_pruned = p.prune_health().await?;
        Ok(report)
    }

    /// Derives and applies every fact due for one experiment; returns transitions applied.
    async fn drive(
        &self,
        experiment: &Experiment,
        agents: &HashMap<AgentId, Agent>,
    ) -> Result<usize, PhoenixError> {
        let p = &self.phoenix;
        let actor = Actor::system();
        let id = experiment.id;
        let mut applied = 0;

        // Finished tasks whose facts may not have been applied (a crash after completion).
        let finished = p
            .stores()
            .queue
            .list(
                &TaskFilter {
                    experiment_id: Some(id),
                    states: vec![
                        TaskState::Succeeded,
                        TaskState::Failed,
                        TaskState::DeadLettered,
                    ],
                    ..TaskFilter::default()
                },
                &crate::page::PageRequest::with_limit(crate::page::MAX_PAGE_SIZE),
            )
            .await?;
        for task in finished.items.iter().rev() {
            let pending_target = experiment.target(task.agent_id).is_some_and(|t| {
                t.op_seq == task.payload.op_seq()
                    && matches!(t.state, TargetState::Deploying | TargetState::Finishing)
            });
            if !pending_target {
                continue;
            }
            if let Some((exp, fact)) = fact_from_task(task) {
                applied += usize::from(
                    p.apply_fact(exp, fact, &Actor::agent(task.agent_id.to_string()))
                        .await?
                        .is_some(),
                );
            }
        }

        // Lost agents.
        for target in &experiment.targets {
            let lost = agents
                .get(&target.agent_id)
                .is_none_or(|a| a.status == AgentStatus::Lost || a.revoked);
            if lost && target.state != TargetState::Lost {
                let fact = Fact::AgentLost {
                    agent: target.agent_id,
                };
                applied += usize::from(p.apply_fact(id, fact, &actor).await?.is_some());
            }
        }

        // Timers and the judge (re-read: the steps above may have moved it).
        let current = match p.stores().experiments.get(id).await {
            Ok(current) => current,
            Err(crate::store::StoreError::NotFound { .. }) => return Ok(applied),
            Err(e) => return Err(e.into()),
        };
        let now = p.clock().now();
        if current.phase == Phase::Running && current.ends_at.is_some_and(|end| now >= end) {
            applied += usize::from(
                p.apply_fact(id, Fact::DurationElapsed, &actor)
                    .await?
                    .is_some(),
            );
        }
        let current = p.stores().experiments.get(id).await?;
        if current.phase == Phase::Analyzing {
            let samples = p.stores().metrics.samples(id, MAX_JUDGED_SAMPLES).await?;
            let verdict = p.analyzer().analyze(&current, &samples, now);
            applied += usize::from(
                p.apply_fact(id, Fact::VerdictComputed { verdict }, &actor)
                    .await?
                    .is_some(),
            );
        }
        Ok(applied)
    }
}
