//! Facts (task outcomes, timers, agent loss, measurements, verdicts): what each does in
//! each phase.

use serde_json::json;

use super::super::{Cause, Phase, TargetState};
use super::builder::Builder;
use super::{Fact, TransitionError};
use crate::judge::VerdictOutcome;
use crate::task::RemovalMode;

pub(super) fn apply_fact(b: &mut Builder<'_>, fact: &Fact) -> Result<(), TransitionError> {
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
