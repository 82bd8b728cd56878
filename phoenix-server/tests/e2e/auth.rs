//! The auth matrix: 401 and 403 exactly where they belong.

use phoenix_client::api::ErrorCode;
use phoenix_client::api::agent::{AgentRegistration, Heartbeat};
use phoenix_client::api::experiment::PromoteRequest;
use phoenix_client::api::token::{NewToken, Role};
use phoenix_server::ServerConfig;

use crate::harness::{Backend, ENROLL, TestServer, new_experiment};

crate::backends!(user_routes_by_role_and_credential_kind);

fn status<T: std::fmt::Debug>(r: Result<T, phoenix_client::ClientError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e
            .status()
            .unwrap_or_else(|| panic!("not an API error: {e:?}")),
    }
}

async fn user_routes_by_role_and_credential_kind(backend: Backend) {
    let server = TestServer::start_on(backend, ServerConfig::default()).await;
    let viewer = server.user(Role::Viewer).await;
    let operator = server.user(Role::Operator).await;
    let admin = server.admin();
    let agent = server.agent("auth-1").await;
    let nobody = server.anonymous();
    let wrong = server.client("phx_user_not-a-real-token");

    // Missing and unknown credentials: 401 everywhere.
    assert_eq!(
        status(nobody.list_experiments(&Default::default()).await),
        401
    );
    assert_eq!(
        status(wrong.list_experiments(&Default::default()).await),
        401
    );
    let missing = nobody.fleet_status().await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::Unauthenticated));

    // Reading: every role.
    for client in [&viewer, &operator, &admin] {
        assert_eq!(
            status(client.list_experiments(&Default::default()).await),
            200
        );
        assert_eq!(status(client.fleet_status().await), 200);
    }
    // Writing experiments: operator and admin, not viewer.
    assert_eq!(
        status(viewer.create_experiment(&new_experiment("v")).await),
        403
    );
    let exp = operator
        .create_experiment(&new_experiment("o"))
        .await
        .unwrap();
    assert_eq!(
        status(admin.create_experiment(&new_experiment("a")).await),
        200
    );
    assert_eq!(status(viewer.start_experiment(exp.id).await), 403);
    assert_eq!(status(viewer.stop_experiment(exp.id, None).await), 403);
    assert_eq!(status(viewer.delete_experiment(exp.id).await), 403);
    // Forced promotion and tokens: admin only.
    let forced = PromoteRequest {
        force: true,
        reason: None,
    };
    assert_eq!(
        status(operator.promote_experiment(exp.id, &forced).await),
        403
    );
    let new_token = NewToken {
        name: "ci".to_owned(),
        role: Role::Viewer,
    };
    assert_eq!(status(viewer.create_token(&new_token).await), 403);
    assert_eq!(status(operator.create_token(&new_token).await), 403);
    assert_eq!(status(operator.list_tokens().await), 403);
    assert_eq!(status(admin.list_tokens().await), 200);
    assert_eq!(status(operator.revoke_agent(agent.id).await), 403);

    // An agent credential on a user route: 403 (valid, wrong kind).
    let as_user = server.client(&agent.credential);
    let refused = as_user
        .list_experiments(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    // A user token on an agent route: 403 as well.
    for client in [&viewer, &admin] {
        let r = client.heartbeat(&Heartbeat::default()).await.unwrap_err();
        assert_eq!(r.code(), Some(ErrorCode::Forbidden));
        assert_eq!(
            status(
                client
                    .poll_tasks(Some(std::time::Duration::from_secs(0)), None)
                    .await
            ),
            403
        );
    }
    // Agent routes without or with a bad credential: 401.
    assert_eq!(status(nobody.heartbeat(&Heartbeat::default()).await), 401);
    let forged = server.client(&format!("phx_agent.{}.forged", agent.id));
    assert_eq!(status(forged.heartbeat(&Heartbeat::default()).await), 401);

    // Enrollment: wrong token 401; the right one works.
    let registration = AgentRegistration {
        host: "auth-2".to_owned(),
        ..AgentRegistration::default()
    };
    assert_eq!(
        status(nobody.enroll("wrong-enrollment-token", &registration).await),
        401
    );
    assert_eq!(status(nobody.enroll(ENROLL, &registration).await), 200);

    // Revocation: the agent's credential stops working at once.
    admin.revoke_agent(agent.id).await.unwrap();
    assert_eq!(
        status(agent.client.heartbeat(&Heartbeat::default()).await),
        401
    );

    // A revoked user token stops working at once.
    let created = admin.create_token(&new_token).await.unwrap();
    let ci = server.client(&created.secret);
    assert_eq!(status(ci.whoami().await), 200);
    admin.revoke_token(created.token.id).await.unwrap();
    assert_eq!(status(ci.whoami().await), 401);
    // The configured bootstrap token cannot be revoked through the API.
    let tokens = admin.list_tokens().await.unwrap();
    let bootstrap = tokens
        .items
        .iter()
        .find(|t| t.created_by == "configuration")
        .unwrap();
    assert_eq!(status(admin.revoke_token(bootstrap.id).await), 409);
    server.stop().await;
}

#[tokio::test]
async fn enrollment_without_configured_token_is_forbidden() {
    let mut server = TestServer::start().await;
    // A second server whose configuration has no enrollment token.
    let state = phoenix_server::AppState::new(
        server.phoenix.clone(),
        ServerConfig {
            controller: false,
            ..ServerConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(phoenix_server::serve_state(
        listener,
        state,
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let client = phoenix_client::Client::new(&base).unwrap();
    let err = loop {
        match client
            .enroll(
                ENROLL,
                &AgentRegistration {
                    host: "x".to_owned(),
                    ..AgentRegistration::default()
                },
            )
            .await
        {
            Err(phoenix_client::ClientError::Transport(_)) => tokio::task::yield_now().await,
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
    server.begin_stop().await.unwrap().unwrap();
}

#[tokio::test]
async fn agent_rate_limit_answers_429_with_retry_after() {
    let server = TestServer::start_with(ServerConfig {
        agent_rate_per_sec: 0.01,
        agent_rate_burst: 3,
        ..ServerConfig::default()
    })
    .await;
    // Enrollment's heartbeat in the harness used one request.
    let agent = server.agent("busy").await;
    agent.client.heartbeat(&Heartbeat::default()).await.unwrap();
    agent.client.heartbeat(&Heartbeat::default()).await.unwrap();
    let limited = agent
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap_err();
    assert_eq!(limited.code(), Some(ErrorCode::RateLimited));
    match limited {
        phoenix_client::ClientError::Api {
            status,
            retry_after,
            error,
        } => {
            assert_eq!(status, 429);
            assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
            assert!(error.details.retry_after_secs.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Another agent is not affected.
    let calm = server.agent("calm").await;
    calm.client.heartbeat(&Heartbeat::default()).await.unwrap();
    server.stop().await;
}
