//! What one transition accumulates (the next experiment, its events and tasks) and the
//! steps commands and facts share: events, wind-down operations, finishing.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::super::{
    Actor, Cause, Experiment, ExperimentEvent, Phase, RollbackRecord, Target, TargetState,
};
use super::{Outcome, TransitionError};
use crate::ids::AgentId;
use crate::pipeline::RenderedPipeline;
use crate::task::{NewTask, RemovalMode, RemovalScope, TaskPayload, priority};

pub(super) struct Builder<'a> {
    pub(super) next: Experiment,
    pub(super) events: Vec<ExperimentEvent>,
    pub(super) tasks: Vec<NewTask>,
    pub(super) cancel_open_tasks: bool,
    pub(super) delete: bool,
    pub(super) actor: &'a Actor,
    pub(super) now: DateTime<Utc>,
}

/// The wind-down operations that end with every live target acknowledging.
#[derive(Clone, Copy)]
pub(super) enum Finish {
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
    pub(super) fn phase(&self) -> Phase {
        self.next.phase
    }

    pub(super) fn event(
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

    pub(super) fn live_count(&self) -> usize {
        self.next.live_targets().count()
    }

    pub(super) fn target_mut(&mut self, agent: AgentId) -> Result<&mut Target, TransitionError> {
        self.next
            .targets
            .iter_mut()
            .find(|t| t.agent_id == agent)
            .ok_or(TransitionError::UnknownTarget { agent })
    }

    pub(super) fn task_key(&self, agent: AgentId) -> String {
        format!("experiment/{}/{agent}", self.next.id)
    }

    /// Sends `op` to every live target (they become `Finishing` under the last event's
    /// sequence number). Returns how many were sent.
    pub(super) fn send_finish(&mut self, op: Finish) -> usize {
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
    pub(super) fn maybe_finish(&mut self, cause: Cause) {
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
    pub(super) fn maybe_running(&mut self, cause: Cause) -> bool {
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
    pub(super) fn fail(&mut self, cause: Cause, reason: String, details: serde_json::Value) {
        self.cancel_open_tasks = true;
        self.next.failure_reason = Some(reason.clone());
        self.event(Phase::Failed, cause, Some(reason), details);
        self.send_finish(Finish::Teardown(RemovalMode::Instant));
    }

    pub(super) fn rollback(&mut self, mode: RemovalMode, reason: Option<String>, cause: Cause) {
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

    pub(super) fn promote(&mut self, reason: Option<String>, forced: bool) {
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

    pub(super) fn finish(mut self) -> Outcome {
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

pub(super) fn removal_priority(mode: RemovalMode, graceful: i16) -> i16 {
    match mode {
        RemovalMode::Instant => priority::INSTANT_ROLLBACK,
        RemovalMode::Graceful => graceful,
    }
}
