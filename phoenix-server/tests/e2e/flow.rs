//! Experiment life cycles through the real HTTP API.

use chrono::Duration;
use phoenix_client::TaskQuery;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::experiment::{
    ExperimentAction, Phase, PromoteRequest, RollbackRequest, VerdictOutcome,
};
use phoenix_client::api::task::{RemovalMode, TaskKind, TaskState};
use phoenix_client::api::token::Role;
use phoenix_client::api::{ErrorCode, experiment::Cause};
use phoenix_core::task::TaskPayload;

use crate::harness::{Backend, TestServer, new_experiment, next_phase, subscribe};

crate::backends!(
    create_start_run_judge_force_promote_then_graceful_rollback,
    instant_rollback_ends_at_once_with_top_priority_removal,
    stop_tears_down_then_delete,
    stale_lease_is_refused_and_second_poll_replaces_first,
);

async fn create_start_run_judge_force_promote_then_graceful_rollback(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let viewer = server.user(Role::Viewer).await;
    let agent = server.agent("web-1").await;

    let created = operator
        .create_experiment(&new_experiment("topk on web"))
        .await
        .unwrap();
    assert_eq!(created.phase, Phase::Created);
    let mut ws = subscribe(&viewer, &created).await;

    let started = operator.start_experiment(created.id).await.unwrap();
    assert_eq!(started.phase, Phase::Deploying);
    assert_eq!(started.targets.len(), 1);
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Created, Phase::Deploying)
    );

    // The agent long-polls the deploy task through the API and acknowledges it.
    let deploy = agent.one_task().await;
    assert_eq!(deploy.task.kind, TaskKind::DeployPipelines);
    assert_eq!(deploy.task.experiment_id, Some(created.id));
    match deploy.task.payload_core().unwrap() {
        TaskPayload::DeployPipelines {
            baseline,
            candidate,
            ..
        } => {
            assert_eq!(baseline.template, "baseline");
            assert_eq!(candidate.template, "topk");
        }
        other => panic!("unexpected payload {other:?}"),
    }
    // Extending the lease with its token works.
    let extended = agent.client.extend_task(&deploy).await.unwrap();
    assert!(extended.lease_expires_at.is_some());
    agent.client.complete_task(&deploy, None).await.unwrap();
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Deploying, Phase::Running)
    );

    // The run ends: time moves (the store's single clock), the agent stays alive.
    server.advance(Duration::seconds(61));
    agent.client.heartbeat(&Heartbeat::default()).await.unwrap();
    server.tick().await;
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Running, Phase::Analyzing)
    );
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Analyzing, Phase::Completed)
    );
    let completed = viewer.get_experiment(created.id).await.unwrap();
    let verdict = completed.verdict.clone().expect("a verdict");
    assert_ne!(verdict.outcome, VerdictOutcome::Pass);
    // What each role is offered is what the server accepts below.
    assert!(completed.resting && !completed.terminal);
    assert_eq!(completed.allowed_actions, []);
    let offered = |e: &phoenix_client::api::experiment::Experiment| e.allowed_actions.clone();
    assert_eq!(
        offered(&operator.get_experiment(created.id).await.unwrap()),
        [ExperimentAction::Rollback]
    );
    assert_eq!(
        offered(&server.admin().get_experiment(created.id).await.unwrap()),
        [ExperimentAction::Rollback, ExperimentAction::ForcePromote]
    );

    // Promotion without a pass is refused for an operator; forcing needs an admin.
    let refused = operator
        .promote_experiment(created.id, &PromoteRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Conflict));
    let forced = PromoteRequest {
        force: true,
        reason: Some("ship it".to_owned()),
    };
    let denied = operator
        .promote_experiment(created.id, &forced)
        .await
        .unwrap_err();
    assert_eq!(denied.status(), Some(403));
    let promoting = server
        .admin()
        .promote_experiment(created.id, &forced)
        .await
        .unwrap();
    assert_eq!(promoting.phase, Phase::Promoting);
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Completed, Phase::Promoting)
    );
    let replace = agent.ack_next().await;
    assert_eq!(replace.task.kind, TaskKind::ReplacePipeline);
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Promoting, Phase::Promoted)
    );

    // Graceful rollback of the promotion: the baseline is restored on every agent.
    let rolling = operator
        .rollback_experiment(
            created.id,
            &RollbackRequest {
                mode: RemovalMode::Graceful,
                reason: Some("p99 regression".to_owned()),
            },
        )
        .await
        .unwrap();
    assert_eq!(rolling.phase, Phase::RollingBack);
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::Promoted, Phase::RollingBack)
    );
    agent.ack_next().await;
    assert_eq!(
        next_phase(&mut ws).await,
        (Phase::RollingBack, Phase::RolledBack)
    );

    let done = viewer.get_experiment(created.id).await.unwrap();
    let provenance = done.rollback.expect("rollback provenance");
    assert_eq!(provenance.mode, RemovalMode::Graceful);
    assert_eq!(provenance.reason.as_deref(), Some("p99 regression"));
    assert_eq!(provenance.from, Phase::Promoted);

    // The event log tells the whole story, in order, across pages.
    let mut causes = Vec::new();
    let mut cursor = None;
    loop {
        let page = viewer
            .experiment_events(created.id, cursor, Some(3))
            .await
            .unwrap();
        causes.extend(page.items.iter().map(|e| (e.cause, e.to)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(causes.first(), Some(&(Cause::Created, Phase::Created)));
    assert!(causes.contains(&(Cause::Rollback, Phase::RollingBack)));
    assert_eq!(causes.last().map(|c| c.1), Some(Phase::RolledBack));
    server.stop().await;
}

async fn instant_rollback_ends_at_once_with_top_priority_removal(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let agent = server.agent("web-2").await;
    let exp = operator
        .create_experiment(&new_experiment("instant"))
        .await
        .unwrap();
    operator.start_experiment(exp.id).await.unwrap();
    agent.ack_next().await;
    assert_eq!(
        operator.get_experiment(exp.id).await.unwrap().phase,
        Phase::Running
    );
    let rolled = operator
        .rollback_experiment(
            exp.id,
            &RollbackRequest {
                mode: RemovalMode::Instant,
                reason: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(rolled.phase, Phase::RolledBack);
    let removal = agent.one_task().await;
    assert_eq!(removal.task.kind, TaskKind::RemovePipeline);
    assert_eq!(
        removal.task.priority,
        phoenix_core::task::priority::INSTANT_ROLLBACK
    );
    match removal.task.payload_core().unwrap() {
        TaskPayload::RemovePipeline { mode, .. } => {
            assert_eq!(mode, phoenix_core::task::RemovalMode::Instant);
        }
        other => panic!("unexpected payload {other:?}"),
    }
    // Terminal: a second rollback is refused and nothing changes.
    let again = operator
        .rollback_experiment(
            exp.id,
            &RollbackRequest {
                mode: RemovalMode::Graceful,
                reason: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(409));
    server.stop().await;
}

async fn stop_tears_down_then_delete(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let agent = server.agent("web-3").await;
    let exp = operator
        .create_experiment(&new_experiment("stop me"))
        .await
        .unwrap();
    let mut ws = subscribe(&operator, &exp).await;
    operator.start_experiment(exp.id).await.unwrap();
    agent.ack_next().await;
    // Deleting a running experiment is refused.
    let refused = operator.delete_experiment(exp.id).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Conflict));
    let stopping = operator
        .stop_experiment(exp.id, Some("enough".to_owned()))
        .await
        .unwrap();
    assert_eq!(stopping.phase, Phase::Stopping);
    let teardown = agent.ack_next().await;
    assert_eq!(teardown.task.kind, TaskKind::RemovePipeline);
    let phases: Vec<_> = [
        next_phase(&mut ws).await,
        next_phase(&mut ws).await,
        next_phase(&mut ws).await,
        next_phase(&mut ws).await,
    ]
    .into_iter()
    .map(|(_, to)| to)
    .collect();
    assert_eq!(
        phases,
        [
            Phase::Deploying,
            Phase::Running,
            Phase::Stopping,
            Phase::Stopped
        ]
    );
    // Tasks are visible to operators, filtered.
    let done = operator
        .list_tasks(&TaskQuery {
            experiment_id: Some(exp.id),
            states: vec![TaskState::Succeeded],
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(done.items.len(), 2);
    operator.delete_experiment(exp.id).await.unwrap();
    let gone = operator.get_experiment(exp.id).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::NotFound));
    server.stop().await;
}

async fn stale_lease_is_refused_and_second_poll_replaces_first(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let agent = server.agent("web-4").await;

    // One outstanding poll per agent: a second poll ends the first with 204.
    let first = {
        let client = agent.client.clone();
        tokio::spawn(async move {
            client
                .poll_tasks(Some(std::time::Duration::from_secs(30)), None)
                .await
        })
    };
    // Let the first poll register before the second arrives.
    while server.phoenix.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    let exp = operator
        .create_experiment(&new_experiment("lease"))
        .await
        .unwrap();
    let second = {
        let client = agent.client.clone();
        tokio::spawn(async move {
            client
                .poll_tasks(Some(std::time::Duration::from_secs(30)), None)
                .await
        })
    };
    let first = tokio::time::timeout(crate::harness::PROMPT, first)
        .await
        .expect("the first poll is released")
        .unwrap()
        .unwrap();
    assert!(first.is_empty());
    operator.start_experiment(exp.id).await.unwrap();
    let tasks = tokio::time::timeout(crate::harness::PROMPT, second)
        .await
        .expect("the second poll gets the task")
        .unwrap()
        .unwrap();
    assert_eq!(tasks.len(), 1);
    let mut stale = tasks[0].clone();
    stale.lease_token = uuid::Uuid::new_v4();
    let refused = agent.client.complete_task(&stale, None).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::LeaseLost));
    assert_eq!(refused.status(), Some(409));
    // Another agent cannot report on it at all.
    let other = server.agent("web-5").await;
    let foreign = other
        .client
        .complete_task(&tasks[0], None)
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Some(ErrorCode::NotFound));
    agent.client.complete_task(&tasks[0], None).await.unwrap();
    server.stop().await;
}
