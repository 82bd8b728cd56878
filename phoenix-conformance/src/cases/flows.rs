//! End-to-end flows through the facade and the controller, as agents and operators drive them.

use std::time::Duration as StdDuration;

use chrono::Duration;
use phoenix_core::agent::{Agent, Heartbeat};
use phoenix_core::experiment::{ActorKind, Phase, TargetState};
use phoenix_core::ids::AgentId;
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::{LeaseRef, RemovalMode, TaskKind, TaskPayload, TaskState, priority};
use phoenix_core::{Controller, Phoenix};

use crate::TestBackend;
use crate::fixtures::{enroll, new_experiment, operator, phoenix};
use crate::history::{self, HistoryConfig};

/// Long-polls once as `agent` and answers every task with `report`; returns the kinds seen.
async fn serve(p: &Phoenix, agent: AgentId, succeed: bool) -> Vec<TaskKind> {
    let tasks = p
        .wait_for_tasks(agent, 8, StdDuration::from_millis(500))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    for leased in tasks {
        kinds.push(leased.task.kind());
        let lease = LeaseRef {
            task_id: leased.task.id,
            token: leased.lease_token,
        };
        let report = if succeed {
            TaskReport::Succeeded {
                result: Some(serde_json::json!({"message": "done"})),
            }
        } else {
            TaskReport::Failed {
                error: "collector refused the config".to_owned(),
                retryable: true,
            }
        };
        p.report_task(agent, lease, report).await.unwrap();
    }
    kinds
}

async fn heartbeat_all(p: &Phoenix, agents: &[&Agent]) {
    for a in agents {
        p.heartbeat(a.id, Heartbeat::default()).await.unwrap();
    }
}

/// Create, start, deploy through long-polls, run, elapse, judge: Completed with a verdict,
/// and a log that tells the story.
pub async fn flow_experiment_runs_to_completion(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let controller = Controller::new(p.clone());
    let a = enroll(&p, "host-a").await;
    let b = enroll(&p, "host-b").await;
    let e = p
        .create_experiment(new_experiment("flow"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    assert_eq!(serve(&p, a.id, true).await, vec![TaskKind::DeployPipelines]);
    assert_eq!(p.experiment(e.id).await.unwrap().phase, Phase::Deploying);
    assert_eq!(serve(&p, b.id, true).await, vec![TaskKind::DeployPipelines]);
    let running = p.experiment(e.id).await.unwrap();
    assert_eq!(running.phase, Phase::Running);
    assert!(
        running
            .targets
            .iter()
            .all(|t| t.state == TargetState::Deployed)
    );
    // Not yet due: the controller leaves it running.
    backend.advance(Duration::seconds(20));
    heartbeat_all(&p, &[&a, &b]).await;
    controller.tick().await.unwrap();
    assert_eq!(p.experiment(e.id).await.unwrap().phase, Phase::Running);
    backend.advance(Duration::seconds(41));
    heartbeat_all(&p, &[&a, &b]).await;
    let report = controller.tick().await.unwrap();
    assert_eq!(report.agents_lost, 0);
    let done = p.experiment(e.id).await.unwrap();
    assert_eq!(done.phase, Phase::Completed);
    assert!(done.verdict.is_some());
    assert!(done.finished_at.is_some());
    let phases: Vec<Phase> = p
        .experiment_events(e.id, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|ev| ev.to)
        .collect();
    assert_eq!(
        phases,
        vec![
            Phase::Created,
            Phase::Deploying,
            Phase::Deploying,
            Phase::Running,
            Phase::Analyzing,
            Phase::Completed
        ]
    );
}

/// Graceful rollback waits for every agent's confirmation; instant rollback is immediate
/// with top priority; both record who, why, and what each agent said.
pub async fn flow_rollback_graceful_and_instant(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let a = enroll(&p, "host-a").await;
    for mode in [RemovalMode::Graceful, RemovalMode::Instant] {
        let e = p
            .create_experiment(new_experiment("rb"), &operator())
            .await
            .unwrap();
        p.start(e.id, &operator()).await.unwrap();
        serve(&p, a.id, true).await;
        let rolled = p
            .rollback(
                e.id,
                mode,
                &operator(),
                Some("p99 latency regressed".to_owned()),
            )
            .await
            .unwrap();
        let record = rolled.rollback.clone().unwrap();
        assert_eq!(record.mode, mode);
        assert_eq!(record.actor.kind, ActorKind::User);
        assert_eq!(record.reason.as_deref(), Some("p99 latency regressed"));
        assert_eq!(record.from, Phase::Running);
        let tasks = p
            .wait_for_tasks(a.id, 8, StdDuration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1);
        let TaskPayload::RemovePipeline { mode: sent, .. } = &tasks[0].task.payload else {
            panic!("expected a removal, got {:?}", tasks[0].task.payload);
        };
        assert_eq!(*sent, mode);
        match mode {
            RemovalMode::Graceful => {
                assert_eq!(rolled.phase, Phase::RollingBack);
                assert_eq!(tasks[0].task.priority, priority::ROLLBACK);
            }
            RemovalMode::Instant => {
                assert_eq!(rolled.phase, Phase::RolledBack);
                assert_eq!(tasks[0].task.priority, priority::INSTANT_ROLLBACK);
            }
        }
        let lease = LeaseRef {
            task_id: tasks[0].task.id,
            token: tasks[0].lease_token,
        };
        p.report_task(
            a.id,
            lease,
            TaskReport::Succeeded {
                result: Some(serde_json::json!({"message": "baseline serving; candidate removed"})),
            },
        )
        .await
        .unwrap();
        let after = p.experiment(e.id).await.unwrap();
        assert_eq!(after.phase, Phase::RolledBack);
        assert_eq!(after.targets[0].state, TargetState::Finished);
        assert_eq!(
            after.targets[0].detail.as_deref(),
            Some("baseline serving; candidate removed")
        );
    }
}

/// An agent that stops heartbeating is lost; below `min_agents` the experiment fails with
/// a stated reason and the survivor is told to tear down.
pub async fn flow_lost_agent_fails_experiment(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let controller = Controller::new(p.clone());
    let a = enroll(&p, "host-a").await;
    let b = enroll(&p, "host-b").await;
    let mut request = new_experiment("loss");
    request.spec.min_agents = 2;
    let e = p.create_experiment(request, &operator()).await.unwrap();
    p.start(e.id, &operator()).await.unwrap();
    serve(&p, a.id, true).await;
    serve(&p, b.id, true).await;
    assert_eq!(p.experiment(e.id).await.unwrap().phase, Phase::Running);
    backend.advance(Duration::seconds(31));
    heartbeat_all(&p, &[&a]).await;
    let report = controller.tick().await.unwrap();
    assert_eq!(report.agents_lost, 1);
    let failed = p.experiment(e.id).await.unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    assert!(failed.failure_reason.as_deref().unwrap().contains("host-b"));
    assert_eq!(failed.target(b.id).unwrap().state, TargetState::Lost);
    assert_eq!(serve(&p, a.id, true).await, vec![TaskKind::RemovePipeline]);
    assert_eq!(
        p.experiment(e.id)
            .await
            .unwrap()
            .target(a.id)
            .unwrap()
            .state,
        TargetState::Finished
    );
}

/// A deploy that keeps failing is retried with backoff, dead-lettered, and fails the
/// experiment.
pub async fn flow_dead_lettered_deploy_fails_experiment(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let a = enroll(&p, "host-a").await;
    let e = p
        .create_experiment(new_experiment("dl"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    let mut attempts = 0;
    while p.experiment(e.id).await.unwrap().phase == Phase::Deploying {
        backend.advance(Duration::minutes(10));
        p.heartbeat(a.id, Heartbeat::default()).await.unwrap();
        if !serve(&p, a.id, false).await.is_empty() {
            attempts += 1;
        }
        assert!(attempts <= 5, "dead-lettered after max attempts");
    }
    assert_eq!(attempts, 5);
    let failed = p.experiment(e.id).await.unwrap();
    assert_eq!(failed.phase, Phase::Failed);
    assert!(
        failed
            .failure_reason
            .unwrap()
            .contains("collector refused the config")
    );
    let dead = p
        .tasks(
            &phoenix_core::task::TaskFilter {
                experiment_id: Some(e.id),
                states: vec![TaskState::DeadLettered],
                ..Default::default()
            },
            &phoenix_core::page::PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 1);
}

/// If a task's completion is stored but its fact never applied (the process died in
/// between), the controller's next tick repairs it.
pub async fn flow_controller_repairs_missed_task_outcome(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let controller = Controller::new(p.clone());
    let a = enroll(&p, "host-a").await;
    let e = p
        .create_experiment(new_experiment("repair"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    let claimed = backend
        .stores()
        .queue
        .claim(a.id, 1, Duration::seconds(30))
        .await
        .unwrap();
    let lease = LeaseRef {
        task_id: claimed[0].task.id,
        token: claimed[0].lease_token,
    };
    // Straight to the queue: no fact applied.
    backend.stores().queue.complete(&lease, None).await.unwrap();
    assert_eq!(p.experiment(e.id).await.unwrap().phase, Phase::Deploying);
    controller.tick().await.unwrap();
    assert_eq!(p.experiment(e.id).await.unwrap().phase, Phase::Running);
    // Idempotent: another tick changes nothing.
    let version = p.experiment(e.id).await.unwrap().version;
    controller.tick().await.unwrap();
    assert_eq!(p.experiment(e.id).await.unwrap().version, version);
}

/// A small history check (the full 10,000-task run has its own test per backend).
pub async fn flow_history_check_small(backend: &dyn TestBackend) {
    let report = history::run(backend, &HistoryConfig::with_tasks(500)).await;
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.deaths > 0,
        "the run must exercise deaths: {report:?}"
    );
    assert_eq!(report.stale_rejected, report.deaths);
}
