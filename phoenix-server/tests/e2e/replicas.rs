//! Two server instances on one shared store: work started through one reaches an agent
//! long-polling the other, and WebSocket clients of either see every event.

use std::time::Duration;

use phoenix_client::api::experiment::Phase;
use phoenix_client::api::task::TaskKind;
use phoenix_client::api::token::Role;
use phoenix_server::ServerConfig;

use crate::harness::{Backend, PROMPT, TestServer, new_experiment, next_phase, subscribe};

#[tokio::test]
async fn redis_experiment_started_on_a_reaches_agent_polling_b() {
    if let Some(backend) = Backend::redis() {
        two_replicas(backend).await;
    }
}

#[tokio::test]
async fn postgres_experiment_started_on_a_reaches_agent_polling_b() {
    if let Some(backend) = Backend::postgres() {
        two_replicas(backend).await;
    }
}

async fn two_replicas(backend: Backend) {
    let a = TestServer::start_on(backend.clone(), ServerConfig::default()).await;
    let b = TestServer::start_on(backend, ServerConfig::default()).await;
    let operator_a = a.user(Role::Operator).await;
    // The agent enrolls and polls through B only.
    let agent = b.agent("replica-1").await;
    let viewer_b = b.user(Role::Viewer).await;

    let exp = operator_a
        .create_experiment(&new_experiment("cross-replica"))
        .await
        .unwrap();
    let mut ws_b = subscribe(&viewer_b, &exp).await;

    let poll = {
        let client = agent.client.clone();
        tokio::spawn(async move { client.poll_tasks(Some(Duration::from_secs(30)), None).await })
    };
    while b.phoenix.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    operator_a.start_experiment(exp.id).await.unwrap();
    // B's long-poll is woken by A's commit through the store's bus (not by its 2 s safety
    // poll: the wait is 30 s, and the answer must come well before the timeout below).
    let tasks = tokio::time::timeout(PROMPT, poll)
        .await
        .expect("delivered across replicas")
        .unwrap()
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task.kind, TaskKind::DeployPipelines);
    agent.client.complete_task(&tasks[0], None).await.unwrap();

    // A WebSocket client on B sees the phase changes A and B caused, in order.
    assert_eq!(
        next_phase(&mut ws_b).await,
        (Phase::Created, Phase::Deploying)
    );
    assert_eq!(
        next_phase(&mut ws_b).await,
        (Phase::Deploying, Phase::Running)
    );
    assert_eq!(
        operator_a.get_experiment(exp.id).await.unwrap().phase,
        Phase::Running
    );
    b.stop_keep_data().await;
    a.stop().await;
}
