//! Operator commands: what each does in each phase.

use serde_json::json;

use super::super::{Cause, Phase, Target, TargetState};
use super::builder::{Builder, Finish};
use super::{Command, TransitionError};
use crate::judge::VerdictOutcome;
use crate::task::{NewTask, RemovalMode, TaskPayload, priority};

pub(super) fn apply_command(b: &mut Builder<'_>, command: &Command) -> Result<(), TransitionError> {
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
                            queries: b.next.queries.clone(),
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
