//! Health, readiness, metrics, WebSocket edges and graceful shutdown.

use std::time::Duration;

use phoenix_client::api::token::Role;
use phoenix_client::api::ws::{ClientMessage, ServerMessage, Topic};

use crate::harness::{PROMPT, TestServer, new_experiment};

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = TestServer::start().await;
    let anyone = server.anonymous();
    assert_eq!(anyone.healthz().await.unwrap().status, "ok");
    assert_eq!(anyone.readyz().await.unwrap().status, "ok");
    let agent = server.agent("m-1").await;
    let operator = server.user(Role::Operator).await;
    let exp = operator
        .create_experiment(&new_experiment("m"))
        .await
        .unwrap();
    operator.start_experiment(exp.id).await.unwrap();
    let _ = agent;
    let text = anyone.server_metrics().await.unwrap();
    for needle in [
        "phoenix_http_requests_total{",
        "route=\"/api/v1/experiments/{id}/start\"",
        "phoenix_queue_tasks{state=\"pending\"} 1",
        "phoenix_experiments{phase=\"deploying\"} 1",
        "phoenix_agents{status=\"healthy\"} 1",
        "phoenix_long_polls_waiting",
        "phoenix_lease_expiries_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn websocket_ping_unsubscribe_and_bad_messages() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let operator = server.user(Role::Operator).await;
    let mut sub = viewer.subscribe(&[Topic::Experiments]).await.unwrap();
    sub.send(&ClientMessage::Ping { id: 7 }).await.unwrap();
    loop {
        match tokio::time::timeout(PROMPT, sub.next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(ServerMessage::Pong { id }) => {
                assert_eq!(id, 7);
                break;
            }
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // Created experiments show up as progress on the experiments topic.
    let exp = operator
        .create_experiment(&new_experiment("ws"))
        .await
        .unwrap();
    match tokio::time::timeout(PROMPT, sub.next_event())
        .await
        .unwrap()
        .unwrap()
    {
        Some(ServerMessage::Progress { event, .. }) => assert_eq!(event.experiment_id, exp.id),
        other => panic!("{other:?}"),
    }
    sub.send(&ClientMessage::Unsubscribe {
        topics: vec![Topic::Experiments],
    })
    .await
    .unwrap();
    // Garbage gets an error message, not a disconnect.
    let raw = serde_json::json!({"type": "dance"});
    let bad: ClientMessage = match serde_json::from_value(raw) {
        Ok(m) => m,
        Err(_) => ClientMessage::Ping { id: 8 },
    };
    sub.send(&bad).await.unwrap();
    sub.close().await.unwrap();

    // Unauthenticated WebSocket upgrades are refused.
    let anonymous = server.anonymous().subscribe(&[Topic::Agents]).await;
    assert!(anonymous.is_err());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_releases_long_polls_and_drains() {
    let mut server = TestServer::start().await;
    let agent = server.agent("sd-1").await;
    let poll = {
        let client = agent.client.clone();
        tokio::spawn(async move { client.poll_tasks(Some(Duration::from_secs(60)), None).await })
    };
    while server.phoenix.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    let done = server.begin_stop();
    let released = tokio::time::timeout(PROMPT, poll)
        .await
        .expect("the long-poll is released on shutdown")
        .unwrap()
        .unwrap();
    assert!(released.is_empty());
    tokio::time::timeout(PROMPT, done)
        .await
        .expect("the server drains")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn oversized_websocket_messages_close_the_connection() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let mut sub = viewer.subscribe(&[Topic::Agents]).await.unwrap();
    // 400 topics of ~45 bytes: past the 16 KiB message cap.
    let topics = (0..400)
        .map(|_| Topic::Experiment(uuid::Uuid::now_v7()))
        .collect();
    sub.send(&ClientMessage::Subscribe { topics })
        .await
        .unwrap();
    let closed = tokio::time::timeout(PROMPT, async {
        loop {
            match sub.next().await {
                Ok(Some(ServerMessage::Heartbeat { .. })) => {}
                Ok(Some(other)) => return Some(other),
                Ok(None) | Err(_) => return None,
            }
        }
    })
    .await
    .expect("the server closes the connection");
    assert!(closed.is_none(), "got {closed:?}");
    server.stop().await;
}

#[tokio::test]
async fn websocket_on_a_second_listener() {
    let store = phoenix_core::MemoryStore::new();
    let phoenix = phoenix_core::Phoenix::new(
        store.stores(),
        std::sync::Arc::new(phoenix_core::clock::SystemClock),
        phoenix_core::PhoenixConfig::default(),
    );
    let admin = "phx_user_second-listener-0123456789";
    let state = phoenix_server::AppState::new(
        phoenix,
        phoenix_server::ServerConfig {
            admin_token: Some(admin.to_owned()),
            controller: false,
            ..phoenix_server::ServerConfig::default()
        },
    );
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let main_base = format!("http://{}", main.local_addr().unwrap());
    let ws_base = format!("http://{}", ws.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(phoenix_server::serve_state(
        main,
        state,
        phoenix_server::ServeOptions {
            ws_listener: Some(ws),
        },
        async move {
            let _ = rx.await;
        },
    ));
    let client = phoenix_client::Client::new(&main_base)
        .unwrap()
        .with_token(admin);
    while client.whoami().await.is_err() {
        tokio::task::yield_now().await;
    }
    let ws_client = phoenix_client::Client::new(&ws_base)
        .unwrap()
        .with_token(admin);
    let mut sub = ws_client.subscribe(&[Topic::Experiments]).await.unwrap();
    let exp = client
        .create_experiment(&new_experiment("second"))
        .await
        .unwrap();
    match tokio::time::timeout(PROMPT, sub.next_event())
        .await
        .unwrap()
        .unwrap()
    {
        Some(ServerMessage::Progress { event, .. }) => assert_eq!(event.experiment_id, exp.id),
        other => panic!("{other:?}"),
    }
    // The second listener serves nothing but the WebSocket.
    assert_eq!(ws_client.whoami().await.unwrap_err().status(), Some(404));
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}
