//! Quick deployments: staged rollout, pause at the first error, resume, rollback.

use phoenix_client::DeploymentCommand;
use phoenix_client::api::ErrorCode;
use phoenix_client::api::deployment::{
    DeploymentAction, DeploymentState, NewDeployment, RolloutStrategy,
};
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::task::TaskKind;
use phoenix_client::api::token::Role;
use phoenix_core::task::TaskPayload;

use crate::harness::{Backend, TestAgent, TestServer};

crate::backends!(staged_rollout_pauses_resumes_and_rolls_back);

async fn staged_rollout_pauses_resumes_and_rolls_back(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let operator = server.user(Role::Operator).await;
    let viewer = server.user(Role::Viewer).await;
    let agents: Vec<TestAgent> = [
        server.agent("fleet-1").await,
        server.agent("fleet-2").await,
        server.agent("fleet-3").await,
    ]
    .into();
    let request = NewDeployment {
        name: "topk everywhere".to_owned(),
        pipeline: Some(PipelineRef::new("topk")),
        rollback_to: None,
        selector: Default::default(),
        experiment_id: None,
        strategy: RolloutStrategy {
            initial_batch: 1,
            growth_factor: 2,
            max_batch: 10,
        },
    };
    let denied = viewer.create_deployment(&request).await.unwrap_err();
    assert_eq!(denied.status(), Some(403));
    let created = operator.create_deployment(&request).await.unwrap();
    assert_eq!(created.state, DeploymentState::Rolling);
    assert_eq!(created.progress.total, 3);
    assert_eq!(created.progress.in_progress, 1);
    assert_eq!(created.progress.pending, 2);
    // What may be done now, for the caller's role (core's `allowed_actions`).
    assert_eq!(
        created.allowed_actions,
        [DeploymentAction::Pause, DeploymentAction::Rollback]
    );

    // Which agent got the first batch?
    let first = created
        .targets
        .iter()
        .find(|t| t.batch == Some(0))
        .unwrap()
        .agent_id;
    let by_id = |id| agents.iter().find(|a| a.id == id).unwrap();
    let task = by_id(first).one_task().await;
    assert_eq!(task.task.kind, TaskKind::ReplacePipeline);
    assert_eq!(task.task.deployment_id, Some(created.id));
    // The first error pauses the rollout.
    by_id(first)
        .client
        .fail_task(&task, "collector did not start", false)
        .await
        .unwrap();
    let paused = viewer.get_deployment(created.id).await.unwrap();
    assert_eq!(paused.state, DeploymentState::Paused);
    assert_eq!(paused.progress.errors, 1);
    assert!(paused.allowed_actions.is_empty(), "a viewer may do nothing");
    assert_eq!(
        operator
            .get_deployment(created.id)
            .await
            .unwrap()
            .allowed_actions,
        [DeploymentAction::Resume, DeploymentAction::Rollback]
    );
    assert!(
        paused
            .last_error
            .unwrap()
            .contains("collector did not start")
    );
    let illegal = operator
        .deployment_command(created.id, DeploymentCommand::Pause)
        .await
        .unwrap_err();
    assert_eq!(illegal.code(), Some(ErrorCode::Conflict));

    // Resume: the failed agent is retried with the next batch (2 agents).
    let resumed = operator
        .deployment_command(created.id, DeploymentCommand::Resume)
        .await
        .unwrap();
    assert_eq!(resumed.state, DeploymentState::Rolling);
    assert_eq!(resumed.progress.in_progress, 2);
    let mut acked = Vec::new();
    for t in resumed.targets.iter().filter(|t| t.batch == Some(1)) {
        by_id(t.agent_id).ack_next().await;
        acked.push(t.agent_id);
    }
    // The last agent in its own batch.
    let rolling = viewer.get_deployment(created.id).await.unwrap();
    let last = rolling
        .targets
        .iter()
        .find(|t| t.batch == Some(2))
        .expect("a third batch")
        .agent_id;
    by_id(last).ack_next().await;
    let done = viewer.get_deployment(created.id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Completed);
    assert_eq!(done.progress.completed, 3);

    // Rollback restores the previous pipeline (baseline) everywhere.
    let rolling_back = operator
        .deployment_command(created.id, DeploymentCommand::Rollback)
        .await
        .unwrap();
    assert_eq!(rolling_back.state, DeploymentState::RollingBack);
    for agent in &agents {
        let task = agent.ack_next().await;
        match task.task.payload_core().unwrap() {
            TaskPayload::ReplacePipeline { pipeline, .. } => {
                assert_eq!(pipeline.template, "baseline");
            }
            other => panic!("{other:?}"),
        }
    }
    let rolled = viewer.get_deployment(created.id).await.unwrap();
    assert_eq!(rolled.state, DeploymentState::RolledBack);
    assert_eq!(rolled.progress.rolled_back, 3);
    let page = operator.list_deployments(None, None).await.unwrap();
    assert!(
        page.items[0].allowed_actions.is_empty(),
        "rolled back: nothing left"
    );
    let page = viewer.list_deployments(None, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let unknown = viewer
        .get_deployment(uuid::Uuid::now_v7())
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some(ErrorCode::NotFound));
    server.stop().await;
}
