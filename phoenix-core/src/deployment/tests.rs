use chrono::DateTime;

use super::*;
use crate::ids::TaskId;
use crate::pipeline::{RenderContext, TemplateRegistry};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).unwrap()
}

fn targets(n: usize) -> Vec<TargetAgent> {
    (0..n)
        .map(|i| TargetAgent {
            agent_id: AgentId::new(),
            host: format!("host-{i:02}"),
        })
        .collect()
}

fn request() -> NewDeployment {
    let registry = TemplateRegistry::builtin();
    let render = |t: &str| {
        registry
            .render(&PipelineRef::new(t), &RenderContext::default())
            .unwrap()
    };
    NewDeployment {
        name: "fleet topk".to_owned(),
        pipeline: PipelineRef::new("topk"),
        rendered: render("topk"),
        rollback_pipeline: Some(render("baseline")),
        selector: TargetSelector::default(),
        experiment_id: None,
        strategy: RolloutStrategy::default(),
    }
}

fn finished(d: &Deployment, agent: AgentId, op: u64, ok: bool) -> DeploymentInput {
    let task = d
        .targets
        .iter()
        .find(|t| t.agent_id == agent)
        .and_then(|t| t.task_id)
        .unwrap();
    DeploymentInput::TaskFinished {
        agent,
        task,
        op,
        result: if ok {
            Ok(None)
        } else {
            Err("collector failed to start".to_owned())
        },
    }
}

fn in_progress(d: &Deployment) -> Vec<AgentId> {
    d.targets
        .iter()
        .filter(|t| t.state == DeploymentTargetState::InProgress)
        .map(|t| t.agent_id)
        .collect()
}

#[test]
fn batches_grow_and_cap() {
    let s = RolloutStrategy {
        initial_batch: 1,
        growth_factor: 2,
        max_batch: 5,
    };
    assert_eq!(batch_sizes(20, &s), [1, 2, 4, 5, 5, 3]);
    assert_eq!(batch_sizes(0, &s), Vec::<u32>::new());
    let zero = RolloutStrategy {
        initial_batch: 0,
        growth_factor: 0,
        max_batch: 0,
    };
    assert_eq!(batch_sizes(3, &zero), [1, 1, 1]);
}

#[test]
fn rolls_out_in_growing_batches_to_completion() {
    let agents = targets(7);
    let (mut d, tasks) = plan(request(), &agents, "ops", now()).unwrap();
    assert_eq!(tasks.len(), 1);
    let mut sent = vec![tasks.len()];
    loop {
        let batch = in_progress(&d);
        if batch.is_empty() {
            break;
        }
        let mut new_tasks = 0;
        for agent in batch {
            let out = apply(&d, &finished(&d, agent, OP_ROLLOUT, true), now()).unwrap();
            assert_eq!(out.deployment.version, d.version + 1);
            new_tasks += out.tasks.len();
            d = out.deployment;
        }
        if new_tasks > 0 {
            sent.push(new_tasks);
        }
    }
    assert_eq!(sent, [1, 2, 4]);
    assert_eq!(d.state, DeploymentState::Completed);
    assert!(
        d.targets
            .iter()
            .all(|t| t.state == DeploymentTargetState::Succeeded)
    );
}

#[test]
fn first_error_pauses_and_resume_retries_it() {
    let agents = targets(3);
    let (d, _) = plan(request(), &agents, "ops", now()).unwrap();
    let first = in_progress(&d)[0];
    let out = apply(&d, &finished(&d, first, OP_ROLLOUT, false), now()).unwrap();
    assert!(out.tasks.is_empty());
    let d = out.deployment;
    assert_eq!(d.state, DeploymentState::Paused);
    assert!(d.last_error.as_deref().unwrap().contains("host-00"));
    // A repeated outcome is stale.
    let repeated = finished(&d, first, OP_ROLLOUT, false);
    assert_eq!(apply(&d, &repeated, now()), Err(DeploymentError::Stale));
    assert!(matches!(
        apply(&d, &DeploymentInput::Pause, now()),
        Err(DeploymentError::IllegalInState { .. })
    ));
    let out = apply(&d, &DeploymentInput::Resume, now()).unwrap();
    assert_eq!(out.deployment.state, DeploymentState::Rolling);
    // The failed agent is retried first, with the next batch (size 2).
    let retried: Vec<AgentId> = out.tasks.iter().map(|t| t.agent_id).collect();
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[0], first);
    // The old failure of the retried agent is stale: only the new task counts.
    let resumed = out.deployment;
    assert_eq!(
        apply(&resumed, &repeated, now()),
        Err(DeploymentError::Stale)
    );
}

#[test]
fn rollback_restores_everything_sent_then_ends() {
    let agents = targets(3);
    let (d, _) = plan(request(), &agents, "ops", now()).unwrap();
    let first = in_progress(&d)[0];
    let d = apply(&d, &finished(&d, first, OP_ROLLOUT, true), now())
        .unwrap()
        .deployment;
    let out = apply(&d, &DeploymentInput::Rollback, now()).unwrap();
    assert!(out.cancel_open_tasks);
    // The first agent (done) and the two of batch 1 (in progress) get the old pipeline.
    assert_eq!(out.tasks.len(), 3);
    assert!(out.tasks.iter().all(|t| t.payload.op_seq() == OP_ROLLBACK));
    assert!(out.tasks.iter().all(|t| t.priority == priority::ROLLBACK));
    let mut d = out.deployment;
    assert_eq!(d.state, DeploymentState::RollingBack);
    // A late rollout acknowledgement no longer counts.
    let late = DeploymentInput::TaskFinished {
        agent: first,
        task: TaskId::new(),
        op: OP_ROLLOUT,
        result: Ok(None),
    };
    assert_eq!(apply(&d, &late, now()), Err(DeploymentError::Stale));
    for agent in in_progress(&d) {
        d = apply(&d, &finished(&d, agent, OP_ROLLBACK, true), now())
            .unwrap()
            .deployment;
    }
    assert_eq!(d.state, DeploymentState::RolledBack);
    assert!(matches!(
        apply(&d, &DeploymentInput::Rollback, now()),
        Err(DeploymentError::IllegalInState { .. })
    ));
}

#[test]
fn no_targets_is_refused() {
    assert_eq!(
        plan(request(), &[], "ops", now()).map(|_| ()),
        Err(DeploymentError::NoMatchingAgents)
    );
}

#[test]
fn allowed_actions_are_what_apply_accepts_for_the_role() {
    use DeploymentAction::{Pause, Resume, Rollback};
    let agents = targets(3);
    let (rolling, _) = plan(request(), &agents, "ops", now()).unwrap();
    let paused = apply(&rolling, &DeploymentInput::Pause, now())
        .unwrap()
        .deployment;
    let rolling_back = apply(&rolling, &DeploymentInput::Rollback, now())
        .unwrap()
        .deployment;
    assert_eq!(allowed_actions(&rolling, Role::Operator), [Pause, Rollback]);
    assert_eq!(allowed_actions(&paused, Role::Admin), [Resume, Rollback]);
    assert!(allowed_actions(&rolling_back, Role::Operator).is_empty());
    // A viewer may send nothing; without a pipeline to restore there is no rollback.
    assert!(allowed_actions(&rolling, Role::Viewer).is_empty());
    let mut no_previous = rolling.clone();
    no_previous.rollback_pipeline = None;
    assert_eq!(allowed_actions(&no_previous, Role::Operator), [Pause]);
    // Whatever the state, each action offered is accepted and each other one refused.
    for d in [&rolling, &paused, &rolling_back, &no_previous] {
        let offered = allowed_actions(d, Role::Operator);
        for a in DeploymentAction::ALL {
            assert_eq!(
                offered.contains(&a),
                apply(d, &a.input(), now()).is_ok(),
                "{a:?} in {:?}",
                d.state
            );
        }
    }
}
