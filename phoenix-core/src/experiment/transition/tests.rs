use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::experiment::TargetState;
use crate::experiment::{ExperimentSpec, NewExperiment};
use crate::judge::{HostVerdict, Verdict, VerdictOutcome};
use crate::pipeline::{PipelineRef, PipelineSpec, RenderedPipeline};
use crate::task::{RemovalScope, TaskKind, TaskPayload, priority};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn rendered(template: &str) -> RenderedPipeline {
    RenderedPipeline {
        template: template.to_owned(),
        params: BTreeMap::new(),
        spec: PipelineSpec::default(),
        collector_yaml: String::new(),
        config_hash: template.to_owned(),
    }
}

fn pipelines() -> ExperimentPipelines {
    ExperimentPipelines {
        baseline: rendered("baseline"),
        candidate: rendered("topk"),
        collector_yaml: "combined".to_owned(),
        config_hash: "baseline+topk".to_owned(),
    }
}

fn experiment(min_agents: u32) -> Experiment {
    let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 60);
    spec.min_agents = min_agents;
    spec.warmup_secs = 10;
    let request = NewExperiment {
        name: "e".to_owned(),
        description: String::new(),
        spec,
    };
    Experiment::create(request, &Actor::user("alice"), t0()).0
}

fn agents(n: usize) -> Vec<TargetAgent> {
    (0..n)
        .map(|i| TargetAgent {
            agent_id: AgentId::new(),
            host: format!("host-{i}"),
        })
        .collect()
}

fn cmd(e: &Experiment, c: Command) -> Result<Outcome, TransitionError> {
    transition(e, &Input::Command(c), &Actor::user("alice"), t0())
}

fn fact_at(e: &Experiment, f: Fact, at: DateTime<Utc>) -> Result<Outcome, TransitionError> {
    transition(e, &Input::Fact(f), &Actor::system(), at)
}

fn fact(e: &Experiment, f: Fact) -> Result<Outcome, TransitionError> {
    fact_at(e, f, t0())
}

/// A verdict on `hosts` hosts, each voting and meeting every critical criterion.
fn verdict_on(outcome: VerdictOutcome, hosts: usize) -> Verdict {
    Verdict {
        outcome,
        reasons: vec![],
        criteria: vec![],
        samples: 10,
        decided_at: t0(),
        hosts: (0..hosts)
            .map(|i| HostVerdict {
                agent_id: AgentId::new(),
                host: format!("host-{i}"),
                samples: 5,
                voting: true,
                passed_critical: true,
            })
            .collect(),
    }
}

fn verdict(outcome: VerdictOutcome) -> Verdict {
    verdict_on(outcome, 2)
}

fn started(n: usize) -> (Experiment, Vec<TargetAgent>) {
    let targets = agents(n);
    let out = cmd(
        &experiment(1),
        Command::Start {
            targets: targets.clone(),
            pipelines: Box::new(pipelines()),
        },
    )
    .unwrap();
    (out.experiment, targets)
}

fn ack_all(mut e: Experiment) -> Experiment {
    for t in e.targets.clone() {
        e = fact(
            &e,
            Fact::TaskSucceeded {
                agent: t.agent_id,
                op_seq: t.op_seq,
                detail: None,
            },
        )
        .unwrap()
        .experiment;
    }
    e
}

fn running(n: usize) -> Experiment {
    ack_all(started(n).0)
}

fn completed(outcome: VerdictOutcome) -> Experiment {
    let e = running(2);
    let e = fact_at(&e, Fact::DurationElapsed, t0() + Duration::seconds(61))
        .unwrap()
        .experiment;
    fact(
        &e,
        Fact::VerdictComputed {
            verdict: verdict(outcome),
        },
    )
    .unwrap()
    .experiment
}

#[test]
fn start_deploys_to_every_target() {
    let targets = agents(3);
    let e = experiment(1);
    let out = cmd(
        &e,
        Command::Start {
            targets: targets.clone(),
            pipelines: Box::new(pipelines()),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::Deploying);
    assert_eq!(out.experiment.version, e.version + 1);
    assert_eq!(out.tasks.len(), 3);
    assert!(
        out.tasks
            .iter()
            .all(|t| t.payload.kind() == TaskKind::DeployPipelines)
    );
    // Each deploy carries both variants and their combined Collector config.
    assert!(out.tasks.iter().all(|t| matches!(
        &t.payload,
        crate::task::TaskPayload::DeployPipelines { collector_yaml, .. } if collector_yaml == "combined"
    )));
    assert!(out.tasks.iter().all(|t| t.unique_key.is_some()));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].seq, 2);
    assert_eq!(out.events[0].from, Phase::Created);
}

#[test]
fn start_without_agents_is_refused() {
    let e = experiment(1);
    let err = cmd(
        &e,
        Command::Start {
            targets: vec![],
            pipelines: Box::new(pipelines()),
        },
    )
    .unwrap_err();
    assert_eq!(err, TransitionError::NoMatchingAgents);
    let err = cmd(
        &experiment(3),
        Command::Start {
            targets: agents(2),
            pipelines: Box::new(pipelines()),
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::NotEnoughAgents {
            found: 2,
            required: 3
        }
    );
}

#[test]
fn running_after_every_ack_with_warmup_and_end() {
    let (mut e, targets) = started(2);
    let first = fact(
        &e,
        Fact::TaskSucceeded {
            agent: targets[0].agent_id,
            op_seq: e.targets[0].op_seq,
            detail: None,
        },
    )
    .unwrap();
    assert_eq!(first.phase(), Phase::Deploying);
    e = first.experiment;
    // A duplicate ack is stale.
    let dup = fact(
        &e,
        Fact::TaskSucceeded {
            agent: targets[0].agent_id,
            op_seq: e.targets[0].op_seq,
            detail: None,
        },
    );
    assert_eq!(dup.unwrap_err(), TransitionError::Stale);
    let second = fact(
        &e,
        Fact::TaskSucceeded {
            agent: targets[1].agent_id,
            op_seq: e.targets[1].op_seq,
            detail: None,
        },
    )
    .unwrap();
    assert_eq!(second.phase(), Phase::Running);
    assert_eq!(
        second.experiment.warmup_until,
        Some(t0() + Duration::seconds(10))
    );
    assert_eq!(
        second.experiment.ends_at,
        Some(t0() + Duration::seconds(60))
    );
}

#[test]
fn ack_from_a_stranger_or_an_old_operation_changes_nothing() {
    let (e, _) = started(1);
    let err = fact(
        &e,
        Fact::TaskSucceeded {
            agent: AgentId::new(),
            op_seq: e.last_event_seq,
            detail: None,
        },
    )
    .unwrap_err();
    assert!(matches!(err, TransitionError::UnknownTarget { .. }));
    let err = fact(
        &e,
        Fact::TaskSucceeded {
            agent: e.targets[0].agent_id,
            op_seq: 999,
            detail: None,
        },
    )
    .unwrap_err();
    assert_eq!(err, TransitionError::Stale);
}

#[test]
fn deploy_failure_fails_and_tears_down_the_others() {
    let (e, targets) = started(3);
    let e = fact(
        &e,
        Fact::TaskSucceeded {
            agent: targets[0].agent_id,
            op_seq: e.targets[0].op_seq,
            detail: None,
        },
    )
    .unwrap()
    .experiment;
    let out = fact(
        &e,
        Fact::TaskFailed {
            agent: targets[1].agent_id,
            op_seq: e.targets[1].op_seq,
            error: "port in use".to_owned(),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::Failed);
    assert!(out.cancel_open_tasks);
    assert!(
        out.experiment
            .failure_reason
            .as_deref()
            .unwrap()
            .contains("port in use")
    );
    let teardown: Vec<_> = out.tasks.iter().map(|t| t.agent_id).collect();
    assert_eq!(teardown, [targets[0].agent_id, targets[2].agent_id]);
    assert!(
        out.tasks
            .iter()
            .all(|t| t.payload.kind() == TaskKind::RemovePipeline)
    );
}

#[test]
fn duration_elapsed_only_when_due() {
    let e = running(1);
    let err = fact_at(&e, Fact::DurationElapsed, t0() + Duration::seconds(59)).unwrap_err();
    assert!(err.is_noop());
    let out = fact_at(&e, Fact::DurationElapsed, t0() + Duration::seconds(60)).unwrap();
    assert_eq!(out.phase(), Phase::Analyzing);
}

#[test]
fn verdict_completes_and_auto_actions_follow() {
    assert_eq!(completed(VerdictOutcome::Pass).phase, Phase::Completed);
    let mut e = running(2);
    e.spec.auto_rollback = true;
    e.spec.auto_promote = true;
    let e = fact_at(&e, Fact::DurationElapsed, t0() + Duration::seconds(61))
        .unwrap()
        .experiment;
    let fail = fact(
        &e,
        Fact::VerdictComputed {
            verdict: verdict(VerdictOutcome::Fail),
        },
    )
    .unwrap();
    assert_eq!(fail.phase(), Phase::RollingBack);
    assert_eq!(fail.events.len(), 2);
    assert_eq!(fail.events[0].to, Phase::Completed);
    assert_eq!(fail.tasks.len(), 2);
    let pass = fact(
        &e,
        Fact::VerdictComputed {
            verdict: verdict(VerdictOutcome::Pass),
        },
    )
    .unwrap();
    assert_eq!(pass.phase(), Phase::Promoting);
    assert!(
        pass.tasks
            .iter()
            .all(|t| t.payload.kind() == TaskKind::ReplacePipeline)
    );
    let marginal = fact(
        &e,
        Fact::VerdictComputed {
            verdict: verdict(VerdictOutcome::Marginal),
        },
    )
    .unwrap();
    assert_eq!(marginal.phase(), Phase::Completed);
    assert!(marginal.experiment.finished_at.is_some());
}

// Automatic promotion needs `auto_promote_min_hosts` hosts that each met every critical
// criterion on their own values; with fewer, the pass waits in Completed for an operator.
#[test]
fn auto_promote_needs_agreement_of_min_hosts() {
    let mut e = running(3);
    e.spec.auto_promote = true;
    e.spec.auto_promote_min_hosts = 3;
    let e = fact_at(&e, Fact::DurationElapsed, t0() + Duration::seconds(61))
        .unwrap()
        .experiment;
    let judged = |v: Verdict| fact(&e, Fact::VerdictComputed { verdict: v }).unwrap();

    // Two agreeing hosts of the three required: no promotion, an operator decides.
    let short = judged(verdict_on(VerdictOutcome::Pass, 2));
    assert_eq!(short.phase(), Phase::Completed);
    assert!(short.tasks.is_empty());
    assert_eq!(short.events.len(), 1);
    let reason = short.events[0].reason.as_deref().unwrap();
    assert!(reason.contains("automatic promotion withheld"), "{reason}");
    assert!(
        reason.contains("2 host(s)") && reason.contains("requires 3"),
        "{reason}"
    );
    assert_eq!(short.events[0].details["hosts_passing_critical"], 2);
    // The operator can still promote the pass.
    let promoted = cmd(
        &short.experiment,
        Command::Promote {
            force: false,
            reason: None,
        },
    )
    .unwrap();
    assert_eq!(promoted.phase(), Phase::Promoting);

    // Three hosts, but one of them missed a critical criterion on its own values.
    let mut split = verdict_on(VerdictOutcome::Pass, 3);
    split.hosts[1].passed_critical = false;
    assert_eq!(judged(split).phase(), Phase::Completed);
    // Three hosts, but one had too few samples to vote.
    let mut thin = verdict_on(VerdictOutcome::Pass, 3);
    thin.hosts[2].voting = false;
    assert_eq!(judged(thin).phase(), Phase::Completed);

    // Three agreeing hosts: promoted automatically.
    let enough = judged(verdict_on(VerdictOutcome::Pass, 3));
    assert_eq!(enough.phase(), Phase::Promoting);
    assert!(
        enough.events[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("3 host(s) met every critical criterion")
    );

    // The default asks for two: a single host's pass never promotes on its own.
    let mut one = running(1);
    one.spec.auto_promote = true;
    assert_eq!(one.spec.auto_promote_min_hosts, 2);
    let one = fact_at(&one, Fact::DurationElapsed, t0() + Duration::seconds(61))
        .unwrap()
        .experiment;
    let out = fact(
        &one,
        Fact::VerdictComputed {
            verdict: verdict_on(VerdictOutcome::Pass, 1),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::Completed);
    // Agreement is asked only of a promotion: a failing verdict still rolls back.
    let mut lone = running(1);
    lone.spec.auto_rollback = true;
    let lone = fact_at(&lone, Fact::DurationElapsed, t0() + Duration::seconds(61))
        .unwrap()
        .experiment;
    let out = fact(
        &lone,
        Fact::VerdictComputed {
            verdict: verdict_on(VerdictOutcome::Fail, 0),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::RollingBack);
}

#[test]
fn promote_needs_pass_unless_forced() {
    let e = completed(VerdictOutcome::Marginal);
    let err = cmd(
        &e,
        Command::Promote {
            force: false,
            reason: None,
        },
    )
    .unwrap_err();
    assert_eq!(
        err,
        TransitionError::PromoteRequiresPass {
            outcome: Some(VerdictOutcome::Marginal)
        }
    );
    let out = cmd(
        &e,
        Command::Promote {
            force: true,
            reason: None,
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::Promoting);
    let promoted = ack_all(out.experiment);
    assert_eq!(promoted.phase, Phase::Promoted);
}

#[test]
fn promote_failure_rolls_back_to_baseline() {
    let e = completed(VerdictOutcome::Pass);
    let e = cmd(
        &e,
        Command::Promote {
            force: false,
            reason: None,
        },
    )
    .unwrap()
    .experiment;
    let t = e.targets[0].clone();
    let out = fact(
        &e,
        Fact::TaskFailed {
            agent: t.agent_id,
            op_seq: t.op_seq,
            error: "bad config".to_owned(),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::RollingBack);
    assert!(
        out.experiment
            .rollback
            .as_ref()
            .unwrap()
            .reason
            .as_deref()
            .unwrap()
            .contains("bad config")
    );
    assert_eq!(out.tasks.len(), 2);
}

#[test]
fn graceful_rollback_waits_for_every_agent() {
    let e = running(2);
    let out = cmd(
        &e,
        Command::Rollback {
            mode: RemovalMode::Graceful,
            reason: Some("too noisy".to_owned()),
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::RollingBack);
    assert!(out.tasks.iter().all(|t| matches!(
        t.payload,
        TaskPayload::RemovePipeline {
            scope: RemovalScope::Candidate,
            mode: RemovalMode::Graceful,
            ..
        }
    )));
    let record = out.experiment.rollback.clone().unwrap();
    assert_eq!(record.actor, Actor::user("alice"));
    assert_eq!(record.from, Phase::Running);
    assert_eq!(ack_all(out.experiment).phase, Phase::RolledBack);
}

#[test]
fn instant_rollback_is_immediate_and_records_acks() {
    let e = running(2);
    let out = cmd(
        &e,
        Command::Rollback {
            mode: RemovalMode::Instant,
            reason: None,
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::RolledBack);
    assert!(
        out.tasks
            .iter()
            .all(|t| t.priority == priority::INSTANT_ROLLBACK)
    );
    let after = ack_all(out.experiment);
    assert_eq!(after.phase, Phase::RolledBack);
    assert!(
        after
            .targets
            .iter()
            .all(|t| t.state == TargetState::Finished)
    );
}

#[test]
fn rollback_after_promotion_restores_the_baseline() {
    let e = completed(VerdictOutcome::Pass);
    let e = ack_all(
        cmd(
            &e,
            Command::Promote {
                force: false,
                reason: None,
            },
        )
        .unwrap()
        .experiment,
    );
    assert_eq!(e.phase, Phase::Promoted);
    let out = cmd(
        &e,
        Command::Rollback {
            mode: RemovalMode::Graceful,
            reason: None,
        },
    )
    .unwrap();
    assert!(out.tasks.iter().all(|t| matches!(
        &t.payload,
        TaskPayload::ReplacePipeline { pipeline, .. } if pipeline.template == "baseline"
    )));
}

#[test]
fn stop_tears_down_then_stops() {
    let e = running(2);
    let out = cmd(&e, Command::Stop { reason: None }).unwrap();
    assert_eq!(out.phase(), Phase::Stopping);
    assert!(out.cancel_open_tasks);
    assert_eq!(ack_all(out.experiment).phase, Phase::Stopped);
    let created = experiment(1);
    assert_eq!(
        cmd(&created, Command::Stop { reason: None })
            .unwrap()
            .phase(),
        Phase::Stopped
    );
}

#[test]
fn losing_agents_below_the_minimum_fails() {
    let mut e = running(3);
    e.spec.min_agents = 2;
    let a = e.targets[0].agent_id;
    let out = fact(&e, Fact::AgentLost { agent: a }).unwrap();
    assert_eq!(out.phase(), Phase::Running);
    assert_eq!(
        fact(&out.experiment, Fact::AgentLost { agent: a }).unwrap_err(),
        TransitionError::Stale
    );
    let b = e.targets[1].agent_id;
    let out = fact(&out.experiment, Fact::AgentLost { agent: b }).unwrap();
    assert_eq!(out.phase(), Phase::Failed);
    assert_eq!(out.tasks.len(), 1, "the one live agent is torn down");
}

#[test]
fn losing_the_last_pending_agent_completes_deploying() {
    let (e, targets) = started(2);
    let e = fact(
        &e,
        Fact::TaskSucceeded {
            agent: targets[0].agent_id,
            op_seq: e.targets[0].op_seq,
            detail: None,
        },
    )
    .unwrap()
    .experiment;
    let out = fact(
        &e,
        Fact::AgentLost {
            agent: targets[1].agent_id,
        },
    )
    .unwrap();
    assert_eq!(out.phase(), Phase::Running);
}

#[test]
fn delete_only_when_created_or_terminal() {
    assert!(cmd(&experiment(1), Command::Delete).unwrap().delete);
    let e = running(1);
    assert!(matches!(
        cmd(&e, Command::Delete).unwrap_err(),
        TransitionError::IllegalInPhase { .. }
    ));
    let stopped = ack_all(cmd(&e, Command::Stop { reason: None }).unwrap().experiment);
    assert!(cmd(&stopped, Command::Delete).unwrap().delete);
}

#[test]
fn terminal_phases_refuse_every_command() {
    let e = running(1);
    let rolled = cmd(
        &e,
        Command::Rollback {
            mode: RemovalMode::Instant,
            reason: None,
        },
    )
    .unwrap()
    .experiment;
    for c in [
        Command::Start {
            targets: agents(1),
            pipelines: Box::new(pipelines()),
        },
        Command::Stop { reason: None },
        Command::Rollback {
            mode: RemovalMode::Graceful,
            reason: None,
        },
        Command::Promote {
            force: true,
            reason: None,
        },
    ] {
        assert!(matches!(
            cmd(&rolled, c).unwrap_err(),
            TransitionError::IllegalInPhase {
                phase: Phase::RolledBack,
                ..
            }
        ));
    }
}

#[test]
fn events_are_numbered_without_gaps() {
    let e = completed(VerdictOutcome::Pass);
    assert_eq!(e.last_event_seq, 1 + 1 + 2 + 1 + 1);
    assert_eq!(e.version, e.last_event_seq);
}

/// One experiment in every phase, each reached through `transition` itself.
fn one_in_every_phase() -> Vec<Experiment> {
    let stop = |e: &Experiment| cmd(e, Command::Stop { reason: None }).unwrap().experiment;
    let rollback = |e: &Experiment| {
        cmd(
            e,
            Command::Rollback {
                mode: RemovalMode::Graceful,
                reason: None,
            },
        )
        .unwrap()
        .experiment
    };
    let promote = |e: &Experiment| {
        cmd(
            e,
            Command::Promote {
                force: false,
                reason: None,
            },
        )
        .unwrap()
        .experiment
    };
    let (deploying, targets) = started(1);
    let failed = fact(
        &deploying,
        Fact::TaskFailed {
            agent: targets[0].agent_id,
            op_seq: deploying.targets[0].op_seq,
            error: "boom".to_owned(),
        },
    )
    .unwrap()
    .experiment;
    let analyzing = fact_at(
        &running(1),
        Fact::DurationElapsed,
        t0() + Duration::seconds(61),
    )
    .unwrap()
    .experiment;
    let promoting = promote(&completed(VerdictOutcome::Pass));
    let all = vec![
        experiment(1),
        deploying,
        running(1),
        analyzing,
        completed(VerdictOutcome::Pass),
        completed(VerdictOutcome::Marginal),
        promoting.clone(),
        ack_all(promoting),
        stop(&running(1)),
        stop(&experiment(1)),
        rollback(&running(1)),
        ack_all(rollback(&running(1))),
        failed,
    ];
    let phases: std::collections::BTreeSet<Phase> = all.iter().map(|e| e.phase).collect();
    assert_eq!(phases.len(), Phase::ALL.len(), "every phase is covered");
    all
}

/// The command of an action, as an operator would send it.
fn command_of(action: Action) -> Command {
    match action {
        Action::Start => Command::Start {
            targets: agents(1),
            pipelines: Box::new(pipelines()),
        },
        Action::Stop => Command::Stop { reason: None },
        Action::Rollback => Command::Rollback {
            mode: RemovalMode::Graceful,
            reason: None,
        },
        Action::Promote | Action::ForcePromote => Command::Promote {
            force: action == Action::ForcePromote,
            reason: None,
        },
        Action::Delete => Command::Delete,
    }
}

#[test]
fn allowed_actions_are_exactly_what_transition_accepts() {
    use crate::auth::Role;
    for e in one_in_every_phase() {
        let accepted: Vec<Action> = Action::ALL
            .into_iter()
            .filter(|a| {
                let command = command_of(*a);
                assert_eq!(command.action(), *a);
                match cmd(&e, command) {
                    Ok(_) => true,
                    Err(
                        TransitionError::IllegalInPhase { .. }
                        | TransitionError::PromoteRequiresPass { .. },
                    ) => false,
                    Err(other) => panic!("{a} in {}: {other:?}", e.phase),
                }
            })
            .collect();
        assert_eq!(
            super::super::allowed_actions(&e, Role::Admin),
            accepted,
            "{}",
            e.phase
        );
        let operator: Vec<Action> = accepted
            .iter()
            .copied()
            .filter(|a| *a != Action::ForcePromote)
            .collect();
        assert_eq!(super::super::allowed_actions(&e, Role::Operator), operator);
        assert_eq!(super::super::allowed_actions(&e, Role::Viewer), vec![]);
    }
}

#[test]
fn allowed_actions_by_phase() {
    use crate::auth::Role;
    let allowed = |e: &Experiment| super::super::allowed_actions(e, Role::Admin);
    // Stop and delete before anything was deployed.
    assert_eq!(
        allowed(&experiment(1)),
        vec![Action::Start, Action::Stop, Action::Delete]
    );
    assert_eq!(allowed(&running(1)), vec![Action::Stop, Action::Rollback]);
    assert_eq!(
        allowed(&completed(VerdictOutcome::Pass)),
        vec![Action::Rollback, Action::Promote, Action::ForcePromote]
    );
    assert_eq!(
        allowed(&completed(VerdictOutcome::Fail)),
        vec![Action::Rollback, Action::ForcePromote]
    );
    let stopped = cmd(&experiment(1), Command::Stop { reason: None })
        .unwrap()
        .experiment;
    assert_eq!(allowed(&stopped), vec![Action::Delete]);
}

#[test]
fn the_phases_ahead_are_the_path_transition_takes() {
    // The main path, driven by start and facts alone.
    let mut e = experiment(1);
    let mut seen = vec![];
    let targets = agents(1);
    let steps: Vec<Input> = vec![
        Input::Command(Command::Start {
            targets: targets.clone(),
            pipelines: Box::new(pipelines()),
        }),
        Input::Fact(Fact::TaskSucceeded {
            agent: targets[0].agent_id,
            op_seq: 2,
            detail: None,
        }),
        Input::Fact(Fact::DurationElapsed),
        Input::Fact(Fact::VerdictComputed {
            verdict: verdict(VerdictOutcome::Pass),
        }),
    ];
    let ahead = e.phase.ahead().to_vec();
    for (n, input) in (0..).zip(steps) {
        let at = t0() + Duration::seconds(100 * n);
        e = transition(&e, &input, &Actor::system(), at)
            .unwrap()
            .experiment;
        seen.push(e.phase);
        assert_eq!(e.phase.ahead(), &ahead[seen.len()..], "{}", e.phase);
    }
    assert_eq!(seen, ahead);
    // A wind-down ends where `ahead` says once every agent acknowledged; nothing is
    // ahead of a resting or terminal phase.
    for e in one_in_every_phase() {
        let phase = e.phase;
        if matches!(
            phase,
            Phase::Stopping | Phase::RollingBack | Phase::Promoting
        ) {
            assert_eq!(phase.ahead(), &[ack_all(e).phase], "{phase}");
        } else if phase.is_resting() || phase.is_terminal() {
            assert_eq!(phase.ahead(), &[], "{phase}");
        }
    }
}
