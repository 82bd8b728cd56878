//! What an experiment admits, as each role sees it: `allowed_actions`, `terminal`,
//! `resting` and `ahead` on the wire, and the phase catalogue. Every action offered is
//! sent and accepted; every action not offered is refused.

use phoenix_client::api::ErrorCode;
use phoenix_client::api::experiment::{ExperimentAction, Phase};
use phoenix_client::api::token::Role;
use phoenix_client::{ExperimentQuery, TaskQuery};

use crate::harness::{Backend, TestServer, new_experiment};

crate::backends!(
    created_offers_start_stop_and_delete_to_operators_only,
    stop_from_created_then_delete,
    running_offers_stop_and_rollback,
    the_phase_catalogue_is_the_state_machine,
);

async fn created_offers_start_stop_and_delete_to_operators_only(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let viewer = server.user(Role::Viewer).await;
    let created = operator
        .create_experiment(&new_experiment("offers"))
        .await
        .unwrap();
    let expected = [
        ExperimentAction::Start,
        ExperimentAction::Stop,
        ExperimentAction::Delete,
    ];
    assert_eq!(created.allowed_actions, expected);
    assert!(!created.terminal && !created.resting);
    assert_eq!(
        created.ahead,
        [
            Phase::Deploying,
            Phase::Running,
            Phase::Analyzing,
            Phase::Completed
        ]
    );
    assert_eq!(
        server
            .admin()
            .get_experiment(created.id)
            .await
            .unwrap()
            .allowed_actions,
        expected
    );
    // A viewer is offered nothing, in the list as in the experiment, and is refused.
    let seen = viewer.get_experiment(created.id).await.unwrap();
    assert_eq!(seen.allowed_actions, []);
    let listed = viewer
        .list_experiments(&ExperimentQuery::default())
        .await
        .unwrap();
    assert!(listed.items.iter().all(|e| e.allowed_actions.is_empty()));
    let listed = operator
        .list_experiments(&ExperimentQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items[0].allowed_actions, expected);
    let refused = viewer.stop_experiment(created.id, None).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    let refused = viewer.delete_experiment(created.id).await.unwrap_err();
    assert_eq!(refused.status(), Some(403));
    // Nothing changed.
    let same = operator.get_experiment(created.id).await.unwrap();
    assert_eq!(
        (same.phase, same.version),
        (Phase::Created, created.version)
    );
    server.stop().await;
}

async fn stop_from_created_then_delete(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let created = operator
        .create_experiment(&new_experiment("never started"))
        .await
        .unwrap();
    assert!(created.allows(ExperimentAction::Stop));
    let stopped = operator
        .stop_experiment(created.id, Some("not needed".to_owned()))
        .await
        .unwrap();
    // Nothing was deployed, so nothing to wait for: stopped at once, no task sent.
    assert_eq!(stopped.phase, Phase::Stopped);
    assert!(stopped.terminal && !stopped.resting);
    assert_eq!(stopped.ahead, []);
    assert_eq!(stopped.allowed_actions, [ExperimentAction::Delete]);
    let tasks = operator
        .list_tasks(&TaskQuery {
            experiment_id: Some(created.id),
            ..TaskQuery::default()
        })
        .await
        .unwrap();
    assert!(tasks.items.is_empty());
    // Not offered, and refused: stopping again, starting.
    let again = operator
        .stop_experiment(created.id, None)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::Conflict));
    let start = operator.start_experiment(created.id).await.unwrap_err();
    assert_eq!(start.code(), Some(ErrorCode::Conflict));
    operator.delete_experiment(created.id).await.unwrap();
    let gone = operator.get_experiment(created.id).await.unwrap_err();
    assert_eq!(gone.code(), Some(ErrorCode::NotFound));
    server.stop().await;
}

async fn running_offers_stop_and_rollback(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let agent = server.agent("web-actions").await;
    let created = operator
        .create_experiment(&new_experiment("running offers"))
        .await
        .unwrap();
    let deploying = operator.start_experiment(created.id).await.unwrap();
    assert_eq!(deploying.phase, Phase::Deploying);
    assert_eq!(deploying.allowed_actions, [ExperimentAction::Stop]);
    agent.ack_next().await;
    let running = operator.get_experiment(created.id).await.unwrap();
    assert_eq!(running.phase, Phase::Running);
    assert_eq!(
        running.allowed_actions,
        [ExperimentAction::Stop, ExperimentAction::Rollback]
    );
    assert_eq!(running.ahead, [Phase::Analyzing, Phase::Completed]);
    // Not offered, and refused.
    let delete = operator.delete_experiment(created.id).await.unwrap_err();
    assert_eq!(delete.code(), Some(ErrorCode::Conflict));
    let stopping = operator.stop_experiment(created.id, None).await.unwrap();
    assert_eq!(stopping.phase, Phase::Stopping);
    assert_eq!(stopping.allowed_actions, []);
    assert_eq!(stopping.ahead, [Phase::Stopped]);
    server.stop().await;
}

async fn the_phase_catalogue_is_the_state_machine(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let viewer = server.user(Role::Viewer).await;
    let phases = viewer.experiment_phases().await.unwrap();
    let names: Vec<Phase> = phases.iter().map(|p| p.phase).collect();
    let core: Vec<Phase> = phoenix_core::experiment::Phase::ALL
        .into_iter()
        .map(Into::into)
        .collect();
    assert_eq!(names, core);
    let terminal: Vec<Phase> = phases
        .iter()
        .filter(|p| p.terminal)
        .map(|p| p.phase)
        .collect();
    assert_eq!(terminal, [Phase::Stopped, Phase::RolledBack, Phase::Failed]);
    let resting: Vec<Phase> = phases
        .iter()
        .filter(|p| p.resting)
        .map(|p| p.phase)
        .collect();
    assert_eq!(resting, [Phase::Completed, Phase::Promoted]);
    let promoting = phases.iter().find(|p| p.phase == Phase::Promoting).unwrap();
    assert!(promoting.active);
    assert_eq!(promoting.ahead, [Phase::Promoted]);
    let refused = server.anonymous().experiment_phases().await.unwrap_err();
    assert_eq!(refused.status(), Some(401));
    server.stop().await;
}
