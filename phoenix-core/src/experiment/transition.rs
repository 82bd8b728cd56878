//! The experiment state machine: one pure function from (experiment, input, now) to an
//! [`Outcome`] or a typed [`TransitionError`]. Nothing here does IO; the facade applies an
//! outcome atomically with compare-and-set on the experiment's version.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::{
    Action, Actor, Cause, Experiment, ExperimentEvent, ExperimentPipelines, Phase, RollbackRecord,
    Target, TargetState,
};
use crate::ids::{AgentId, ExperimentId};
use crate::judge::{Verdict, VerdictOutcome};
use crate::pipeline::RenderedPipeline;
use crate::task::{NewTask, RemovalMode, RemovalScope, Task, TaskPayload, TaskState, priority};

/// An agent chosen as a target at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name.
    pub host: String,
}

/// An operator command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Deploy to the resolved targets (resolution and rendering happen before the call,
    /// so the function stays pure).
    Start {
        /// Live agents matching the selector.
        targets: Vec<TargetAgent>,
        /// Both rendered pipelines.
        pipelines: Box<ExperimentPipelines>,
    },
    /// Stop and remove everything the experiment deployed.
    Stop {
        /// Why.
        reason: Option<String>,
    },
    /// Remove the candidate (or restore the baseline after a promotion).
    Rollback {
        /// Graceful or instant.
        mode: RemovalMode,
        /// Why.
        reason: Option<String>,
    },
    /// Make the candidate the only pipeline.
    Promote {
        /// Promote without a passing verdict (admin only; checked by the caller).
        force: bool,
        /// Why.
        reason: Option<String>,
    },
    /// Delete the experiment (only when `Created` or terminal).
    Delete,
}

impl Command {
    /// The action this command is, by name (what [`Action::check`] and
    /// [`allowed_actions`](super::allowed_actions) speak of).
    #[must_use]
    pub fn action(&self) -> Action {
        match self {
            Self::Start { .. } => Action::Start,
            Self::Stop { .. } => Action::Stop,
            Self::Rollback { .. } => Action::Rollback,
            Self::Promote { force: false, .. } => Action::Promote,
            Self::Promote { force: true, .. } => Action::ForcePromote,
            Self::Delete => Action::Delete,
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// An agent completed the task of operation `op_seq`.
    TaskSucceeded {
        /// The agent.
        agent: AgentId,
        /// The operation the task belonged to.
        op_seq: u64,
        /// What it reported.
        detail: Option<String>,
    },
    /// An agent's task of operation `op_seq` failed for good (dead-lettered or permanent).
    TaskFailed {
        /// The agent.
        agent: AgentId,
        /// The operation the task belonged to.
        op_seq: u64,
        /// The error.
        error: String,
    },
    /// The agent stopped heartbeating.
    AgentLost {
        /// The agent.
        agent: AgentId,
    },
    /// The run's duration elapsed.
    DurationElapsed,
    /// The judge decided.
    VerdictComputed {
        /// The verdict.
        verdict: Verdict,
    },
}

/// A command or a fact.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// From an operator.
    Command(Command),
    /// From the controller or an agent.
    Fact(Fact),
}

/// What a transition decided. Applied atomically by the store: the experiment replaces the
/// stored one if its version is still `experiment.version - 1`, the events are appended,
/// open tasks of the experiment are cancelled if asked, then the tasks are enqueued.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The experiment after the transition (version incremented by one).
    pub experiment: Experiment,
    /// Events to append, in order (at least one unless `delete`).
    pub events: Vec<ExperimentEvent>,
    /// Cancel every open task of this experiment before enqueueing `tasks`.
    pub cancel_open_tasks: bool,
    /// Tasks to enqueue.
    pub tasks: Vec<NewTask>,
    /// Delete the experiment instead of storing it.
    pub delete: bool,
}

impl Outcome {
    /// The phase after the transition.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.experiment.phase
    }
}

/// Why an input was refused. Nothing changes when a transition errs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    /// The command is not allowed in this phase.
    #[error("cannot {command} an experiment that is {phase}")]
    IllegalInPhase {
        /// The command.
        command: &'static str,
        /// The current phase.
        phase: Phase,
    },
    /// Start found no live agent matching the selector.
    #[error("no live agent matches the experiment's targets")]
    NoMatchingAgents,
    /// Start found fewer live agents than `min_agents`.
    #[error("{found} live agent(s) match the targets but the spec requires at least {required}")]
    NotEnoughAgents {
        /// Matching live agents.
        found: usize,
        /// `spec.min_agents`.
        required: u32,
    },
    /// Promotion needs a passing verdict unless forced.
    #[error("promotion requires a passing verdict (verdict: {}); an admin may force it", outcome.map_or("none", VerdictOutcome::as_str))]
    PromoteRequiresPass {
        /// The verdict, if any.
        outcome: Option<VerdictOutcome>,
    },
    /// The fact names an agent the experiment does not target.
    #[error("agent {agent} is not a target of this experiment")]
    UnknownTarget {
        /// The agent.
        agent: AgentId,
    },
    /// The fact was already applied, belongs to an older operation, or no longer applies
    /// in the current phase. Safe to ignore.
    #[error("the fact was already applied or no longer applies")]
    Stale,
    /// The run has not ended yet.
    #[error("the run ends at {ends_at}")]
    TooEarly {
        /// When it ends.
        ends_at: DateTime<Utc>,
    },
}

impl TransitionError {
    /// True for errors that only mean "nothing to do" (late or repeated facts).
    #[must_use]
    pub fn is_noop(&self) -> bool {
        matches!(self, Self::Stale | Self::TooEarly { .. })
    }
}

/// The state machine. Pure: same inputs, same outcome.
pub fn transition(
    experiment: &Experiment,
    input: &Input,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Outcome, TransitionError> {
    let mut b = Builder {
        next: experiment.clone(),
        events: Vec::new(),
        tasks: Vec::new(),
        cancel_open_tasks: false,
        delete: false,
        actor,
        now,
    };
    match input {
        Input::Command(command) => apply_command(&mut b, command)?,
        Input::Fact(fact) => apply_fact(&mut b, fact)?,
    }
    Ok(b.finish())
}

/// The fact a finished task reports to its experiment, if any: `Succeeded` becomes
/// [`Fact::TaskSucceeded`], `Failed` and `DeadLettered` become [`Fact::TaskFailed`].
#[must_use]
pub fn fact_from_task(task: &Task) -> Option<(ExperimentId, Fact)> {
    let experiment = task.experiment_id()?;
    let op_seq = task.payload.op_seq();
    let fact = match task.state {
        TaskState::Succeeded => Fact::TaskSucceeded {
            agent: task.agent_id,
            op_seq,
            detail: task.result.as_ref().map(summarize_result),
        },
        TaskState::Failed | TaskState::DeadLettered => Fact::TaskFailed {
            agent: task.agent_id,
            op_seq,
            error: task
                .last_error
                .clone()
                .unwrap_or_else(|| format!("task {} {}", task.id, task.state)),
        },
        TaskState::Pending | TaskState::Leased | TaskState::Cancelled => return None,
    };
    Some((experiment, fact))
}

fn summarize_result(result: &serde_json::Value) -> String {
    let text = match result.get("message").and_then(serde_json::Value::as_str) {
        Some(message) => message.to_owned(),
        None => result.to_string(),
    };
    text.chars().take(512).collect()
}

struct Builder<'a> {
    next: Experiment,
    events: Vec<ExperimentEvent>,
    tasks: Vec<NewTask>,
    cancel_open_tasks: bool,
    delete: bool,
    actor: &'a Actor,
    now: DateTime<Utc>,
}

/// The wind-down operations that end with every live target acknowledging.
#[derive(Clone, Copy)]
enum Finish {
    /// Remove everything the experiment deployed.
    Teardown(RemovalMode),
    /// Remove the candidate only.
    RemoveCandidate(RemovalMode),
    /// Make the baseline the only pipeline again (rollback after promotion).
    RestoreBaseline(RemovalMode),
    /// Make the candidate the only pipeline.
    Promote,
}

impl Builder<'_> {
    fn phase(&self) -> Phase {
        self.next.phase
    }

    fn event(
        &mut self,
        to: Phase,
        cause: Cause,
        reason: Option<String>,
        details: serde_json::Value,
    ) {
        self.next.last_event_seq += 1;
        self.events.push(ExperimentEvent {
            experiment_id: self.next.id,
            seq: self.next.last_event_seq,
            at: self.now,
            from: self.next.phase,
            to,
            cause,
            actor: self.actor.clone(),
            reason,
            details,
        });
        self.next.phase = to;
    }

    fn live_count(&self) -> usize {
        self.next.live_targets().count()
    }

    fn target_mut(&mut self, agent: AgentId) -> Result<&mut Target, TransitionError> {
        self.next
            .targets
            .iter_mut()
            .find(|t| t.agent_id == agent)
            .ok_or(TransitionError::UnknownTarget { agent })
    }

    fn task_key(&self, agent: AgentId) -> String {
        format!("experiment/{}/{agent}", self.next.id)
    }

    /// Sends `op` to every live target (they become `Finishing` under the last event's
    /// sequence number). Returns how many were sent.
    fn send_finish(&mut self, op: Finish) -> usize {
        let op_seq = self.next.last_event_seq;
        let experiment_id = self.next.id;
        let pipelines = self.next.pipelines.clone();
        let mut sent = 0;
        let mut tasks = Vec::new();
        for target in &mut self.next.targets {
            if matches!(target.state, TargetState::Lost | TargetState::Failed) {
                continue;
            }
            let (payload, prio) = match op {
                Finish::Teardown(mode) => (
                    TaskPayload::RemovePipeline {
                        experiment_id,
                        op_seq,
                        scope: RemovalScope::Experiment,
                        mode,
                    },
                    removal_priority(mode, priority::TEARDOWN),
                ),
                Finish::RemoveCandidate(mode) => (
                    TaskPayload::RemovePipeline {
                        experiment_id,
                        op_seq,
                        scope: RemovalScope::Candidate,
                        mode,
                    },
                    removal_priority(mode, priority::ROLLBACK),
                ),
                Finish::RestoreBaseline(_) | Finish::Promote => {
                    let Some(p) = &pipelines else { continue };
                    let (pipeline, prio): (&RenderedPipeline, i16) = match op {
                        Finish::RestoreBaseline(mode) => {
                            (&p.baseline, removal_priority(mode, priority::ROLLBACK))
                        }
                        _ => (&p.candidate, priority::PROMOTE),
                    };
                    (
                        TaskPayload::ReplacePipeline {
                            experiment_id: Some(experiment_id),
                            deployment_id: None,
                            op_seq,
                            pipeline: pipeline.clone(),
                        },
                        prio,
                    )
                }
            };
            target.state = TargetState::Finishing;
            target.op_seq = op_seq;
            target.updated_at = self.now;
            tasks.push(
                NewTask::new(target.agent_id, payload, prio)
                    .with_unique_key(format!("experiment/{experiment_id}/{}", target.agent_id)),
            );
            sent += 1;
        }
        self.tasks.extend(tasks);
        sent
    }

    /// Moves a wind-down phase to its end when every live target has acknowledged.
    fn maybe_finish(&mut self, cause: Cause) {
        let done = self
            .next
            .live_targets()
            .all(|t| t.state == TargetState::Finished);
        if !done {
            return;
        }
        let to = match self.phase() {
            Phase::Stopping => Phase::Stopped,
            Phase::RollingBack => Phase::RolledBack,
            Phase::Promoting => Phase::Promoted,
            _ => return,
        };
        let live = self.live_count();
        self.event(
            to,
            cause,
            Some(format!("all {live} live agent(s) acknowledged")),
            serde_json::Value::Null,
        );
    }

    /// Moves `Deploying` to `Running` when every live target has deployed.
    fn maybe_running(&mut self, cause: Cause) -> bool {
        let done = self
            .next
            .live_targets()
            .all(|t| t.state == TargetState::Deployed);
        if !done || self.phase() != Phase::Deploying {
            return false;
        }
        let now = self.now;
        self.next.running_since = Some(now);
        self.next.warmup_until =
            Some(now + Duration::seconds(i64::try_from(self.next.spec.warmup_secs).unwrap_or(0)));
        self.next.ends_at = Some(now + self.next.duration());
        let live = self.live_count();
        self.event(
            Phase::Running,
            cause,
            Some(format!("all {live} live agent(s) deployed both pipelines")),
            serde_json::Value::Null,
        );
        true
    }

    /// Fails the experiment and tears down what was deployed.
    fn fail(&mut self, cause: Cause, reason: String, details: serde_json::Value) {
        self.cancel_open_tasks = true;
        self.next.failure_reason = Some(reason.clone());
        self.event(Phase::Failed, cause, Some(reason), details);
        self.send_finish(Finish::Teardown(RemovalMode::Instant));
    }

    fn rollback(&mut self, mode: RemovalMode, reason: Option<String>, cause: Cause) {
        let from = self.phase();
        self.cancel_open_tasks = true;
        self.next.rollback = Some(RollbackRecord {
            mode,
            actor: self.actor.clone(),
            reason: reason.clone(),
            from,
            requested_at: self.now,
        });
        let to = match mode {
            RemovalMode::Graceful => Phase::RollingBack,
            RemovalMode::Instant => Phase::RolledBack,
        };
        self.event(to, cause, reason, json!({ "mode": mode }));
        let op = if from == Phase::Promoted {
            Finish::RestoreBaseline(mode)
        } else {
            Finish::RemoveCandidate(mode)
        };
        self.send_finish(op);
        if mode == RemovalMode::Graceful {
            self.maybe_finish(cause);
        }
    }

    fn promote(&mut self, reason: Option<String>, forced: bool) {
        self.cancel_open_tasks = true;
        self.event(
            Phase::Promoting,
            Cause::Promote,
            reason,
            json!({ "forced": forced }),
        );
        self.send_finish(Finish::Promote);
        self.maybe_finish(Cause::Promote);
    }

    fn finish(mut self) -> Outcome {
        if !self.delete {
            self.next.version += 1;
            self.next.updated_at = self.now;
            if (self.next.phase.is_terminal() || self.next.phase.is_resting())
                && self.events.iter().any(|e| e.from != e.to)
            {
                self.next.finished_at = Some(self.now);
            }
        }
        Outcome {
            experiment: self.next,
            events: self.events,
            cancel_open_tasks: self.cancel_open_tasks,
            tasks: self.tasks,
            delete: self.delete,
        }
    }
}

fn removal_priority(mode: RemovalMode, graceful: i16) -> i16 {
    match mode {
        RemovalMode::Instant => priority::INSTANT_ROLLBACK,
        RemovalMode::Graceful => graceful,
    }
}

fn apply_command(b: &mut Builder<'_>, command: &Command) -> Result<(), TransitionError> {
    // The one precondition on the experiment's state; what follows only decides what the
    // command does (and `start` what the world allows).
    command.action().check(&b.next)?;
    let phase = b.phase();
    match command {
        Command::Start { targets, pipelines } => {
            if targets.is_empty() {
                return Err(TransitionError::NoMatchingAgents);
            }
            if targets.len() < b.next.spec.min_agents as usize {
                return Err(TransitionError::NotEnoughAgents {
                    found: targets.len(),
                    required: b.next.spec.min_agents,
                });
            }
            b.next.started_at = Some(b.now);
            b.next.pipelines = Some((**pipelines).clone());
            b.event(
                Phase::Deploying,
                Cause::Start,
                None,
                json!({ "targets": targets.iter().map(|t| &t.host).collect::<Vec<_>>() }),
            );
            let op_seq = b.next.last_event_seq;
            let spec = &b.next.spec;
            for target in targets {
                b.tasks.push(
                    NewTask::new(
                        target.agent_id,
                        TaskPayload::DeployPipelines {
                            experiment_id: b.next.id,
                            op_seq,
                            baseline: pipelines.baseline.clone(),
                            candidate: pipelines.candidate.clone(),
                            collector_yaml: pipelines.collector_yaml.clone(),
                            sample_interval_secs: spec.sample_interval_secs,
                            critical_processes: spec.critical_processes.clone(),
                            critical_metrics: spec.critical_metrics.clone(),
                        },
                        priority::DEPLOY,
                    )
                    .with_unique_key(b.task_key(target.agent_id)),
                );
            }
            b.next.targets = targets
                .iter()
                .map(|t| Target {
                    agent_id: t.agent_id,
                    host: t.host.clone(),
                    state: TargetState::Deploying,
                    op_seq,
                    detail: None,
                    updated_at: b.now,
                })
                .collect();
        }
        Command::Stop { reason } => {
            if phase == Phase::Created {
                // Nothing was deployed: nothing to wait for.
                b.event(Phase::Stopped, Cause::Stop, reason.clone(), json!({}));
            } else {
                b.cancel_open_tasks = true;
                b.event(Phase::Stopping, Cause::Stop, reason.clone(), json!({}));
                b.send_finish(Finish::Teardown(RemovalMode::Graceful));
                b.maybe_finish(Cause::Stop);
            }
        }
        Command::Rollback { mode, reason } => {
            b.rollback(*mode, reason.clone(), Cause::Rollback);
        }
        Command::Promote { reason, .. } => {
            let forced = b.next.verdict.as_ref().map(|v| v.outcome) != Some(VerdictOutcome::Pass);
            b.promote(reason.clone(), forced);
        }
        Command::Delete => {
            b.delete = true;
            b.cancel_open_tasks = true;
        }
    }
    Ok(())
}

fn apply_fact(b: &mut Builder<'_>, fact: &Fact) -> Result<(), TransitionError> {
    let phase = b.phase();
    match fact {
        Fact::TaskSucceeded {
            agent,
            op_seq,
            detail,
        } => {
            let now = b.now;
            let target = b.target_mut(*agent)?;
            if target.op_seq != *op_seq {
                return Err(TransitionError::Stale);
            }
            let host = target.host.clone();
            match (phase, target.state) {
                (Phase::Deploying, TargetState::Deploying) => {
                    target.state = TargetState::Deployed;
                    target.detail.clone_from(detail);
                    target.updated_at = now;
                    if !b.maybe_running(Cause::TaskSucceeded) {
                        let deployed = b
                            .next
                            .live_targets()
                            .filter(|t| t.state == TargetState::Deployed)
                            .count();
                        let live = b.live_count();
                        b.event(
                            Phase::Deploying,
                            Cause::TaskSucceeded,
                            Some(format!("{host} deployed ({deployed}/{live})")),
                            json!({ "agent": agent, "host": host }),
                        );
                    }
                }
                (
                    Phase::Stopping | Phase::RollingBack | Phase::Promoting,
                    TargetState::Finishing,
                ) => {
                    target.state = TargetState::Finished;
                    target.detail.clone_from(detail);
                    target.updated_at = now;
                    b.event(
                        phase,
                        Cause::TaskSucceeded,
                        Some(format!("{host} acknowledged")),
                        json!({ "agent": agent, "host": host, "detail": detail }),
                    );
                    b.maybe_finish(Cause::TaskSucceeded);
                }
                (p, TargetState::Finishing) if p.is_terminal() => {
                    // Provenance after an instant rollback or a failure: record what the
                    // agent reported; the phase does not change.
                    target.state = TargetState::Finished;
                    target.detail.clone_from(detail);
                    target.updated_at = now;
                    b.event(
                        phase,
                        Cause::TaskSucceeded,
                        Some(format!("{host} acknowledged")),
                        json!({ "agent": agent, "host": host, "detail": detail }),
                    );
                }
                _ => return Err(TransitionError::Stale),
            }
        }
        Fact::TaskFailed {
            agent,
            op_seq,
            error,
        } => {
            let now = b.now;
            let target = b.target_mut(*agent)?;
            if target.op_seq != *op_seq {
                return Err(TransitionError::Stale);
            }
            let host = target.host.clone();
            match (phase, target.state) {
                (Phase::Deploying, TargetState::Deploying) => {
                    target.state = TargetState::Failed;
                    target.detail = Some(error.clone());
                    target.updated_at = now;
                    b.fail(
                        Cause::TaskFailed,
                        format!("deploy failed on {host}: {error}"),
                        json!({ "agent": agent, "host": host, "error": error }),
                    );
                }
                (Phase::Promoting, TargetState::Finishing) => {
                    target.detail = Some(error.clone());
                    target.updated_at = now;
                    b.rollback(
                        RemovalMode::Graceful,
                        Some(format!("promotion failed on {host}: {error}")),
                        Cause::TaskFailed,
                    );
                }
                (Phase::Stopping | Phase::RollingBack, TargetState::Finishing) => {
                    target.state = TargetState::Finished;
                    target.detail = Some(format!("failed: {error}"));
                    target.updated_at = now;
                    b.event(
                        phase,
                        Cause::TaskFailed,
                        Some(format!("{host} failed: {error}")),
                        json!({ "agent": agent, "host": host, "error": error }),
                    );
                    b.maybe_finish(Cause::TaskFailed);
                }
                (p, TargetState::Finishing) if p.is_terminal() => {
                    target.state = TargetState::Finished;
                    target.detail = Some(format!("failed: {error}"));
                    target.updated_at = now;
                    b.event(
                        phase,
                        Cause::TaskFailed,
                        Some(format!("{host} failed: {error}")),
                        json!({ "agent": agent, "host": host, "error": error }),
                    );
                }
                _ => return Err(TransitionError::Stale),
            }
        }
        Fact::AgentLost { agent } => {
            if !phase.is_active() {
                return Err(TransitionError::Stale);
            }
            let now = b.now;
            let target = b.target_mut(*agent)?;
            if target.state == TargetState::Lost {
                return Err(TransitionError::Stale);
            }
            target.state = TargetState::Lost;
            target.updated_at = now;
            let host = target.host.clone();
            let live = b.live_count();
            let total = b.next.targets.len();
            let min = b.next.spec.min_agents as usize;
            let details = json!({ "agent": agent, "host": host, "live": live });
            if matches!(phase, Phase::Deploying | Phase::Running) && live < min {
                b.fail(
                    Cause::AgentLost,
                    format!(
                        "agent {host} lost: {live} of {total} agent(s) remain, the spec requires at least {min}"
                    ),
                    details,
                );
            } else {
                b.event(
                    phase,
                    Cause::AgentLost,
                    Some(format!("agent {host} lost")),
                    details,
                );
                if phase == Phase::Deploying {
                    b.maybe_running(Cause::AgentLost);
                } else {
                    b.maybe_finish(Cause::AgentLost);
                }
            }
        }
        Fact::DurationElapsed => {
            if phase != Phase::Running {
                return Err(TransitionError::Stale);
            }
            let ends_at = b.next.ends_at.unwrap_or(b.now);
            if b.now < ends_at {
                return Err(TransitionError::TooEarly { ends_at });
            }
            b.event(Phase::Analyzing, Cause::DurationElapsed, None, json!({}));
        }
        Fact::VerdictComputed { verdict } => {
            if phase != Phase::Analyzing {
                return Err(TransitionError::Stale);
            }
            let outcome = verdict.outcome;
            let agreeing = verdict.hosts_passing_critical();
            let min_hosts = b.next.spec.auto_promote_min_hosts;
            let auto_promote = outcome == VerdictOutcome::Pass && b.next.spec.auto_promote;
            let promote = auto_promote && agreeing >= u64::from(min_hosts);
            b.next.verdict = Some(verdict.clone());
            let reason = if auto_promote && !promote {
                format!(
                    "verdict: {outcome}; automatic promotion withheld: {agreeing} host(s) met every critical criterion on their own values, the spec requires {min_hosts}, so an operator decides"
                )
            } else {
                format!("verdict: {outcome}")
            };
            b.event(
                Phase::Completed,
                Cause::VerdictComputed,
                Some(reason),
                json!({
                    "outcome": outcome,
                    "reasons": verdict.reasons,
                    "hosts_passing_critical": agreeing,
                }),
            );
            if outcome == VerdictOutcome::Fail && b.next.spec.auto_rollback {
                b.rollback(
                    RemovalMode::Graceful,
                    Some("automatic rollback: the verdict is fail".to_owned()),
                    Cause::Rollback,
                );
            } else if promote {
                b.promote(
                    Some(format!(
                        "automatic promotion: the verdict is pass and {agreeing} host(s) met every critical criterion on their own values (at least {min_hosts} required)"
                    )),
                    false,
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
