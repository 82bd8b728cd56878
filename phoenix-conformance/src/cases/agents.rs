//! Agents and user tokens.

use chrono::Duration;
use phoenix_core::PhoenixError;
use phoenix_core::agent::{
    ActivePipeline, AgentFilter, AgentStatus, Heartbeat, PipelineHealth, SecretHash,
};
use phoenix_core::auth::Role;
use phoenix_core::page::PageRequest;
use phoenix_core::store::StoreError;

use crate::TestBackend;
use crate::fixtures::{enroll, phoenix};

/// Enrollment hands out a credential that authenticates until revoked; wrong secrets and
/// unknown agents do not.
pub async fn agent_enroll_authenticate_revoke(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let registration = phoenix_core::agent::AgentRegistration {
        host: "web-1".to_owned(),
        version: "1.0".to_owned(),
        os: "linux".to_owned(),
        ..Default::default()
    };
    let (agent, credential) = p.enroll(registration).await.unwrap();
    let token = credential.to_token();
    assert_eq!(p.authenticate_agent(&token).await.unwrap().id, agent.id);
    let stored = backend.stores().agents.secret_hash(agent.id).await.unwrap();
    assert_ne!(stored.0, credential.secret, "the secret is stored hashed");
    assert_eq!(stored, SecretHash::of(&credential.secret));
    let mut wrong = credential.clone();
    wrong.secret.push('x');
    assert!(matches!(
        p.authenticate_agent(&wrong.to_token()).await,
        Err(PhoenixError::Unauthenticated)
    ));
    let mut stranger = credential.clone();
    stranger.agent_id = phoenix_core::ids::AgentId::new();
    assert!(matches!(
        p.authenticate_agent(&stranger.to_token()).await,
        Err(PhoenixError::Unauthenticated)
    ));
    assert!(matches!(
        p.authenticate_agent("garbage").await,
        Err(PhoenixError::Unauthenticated)
    ));
    let bad = p
        .enroll(phoenix_core::agent::AgentRegistration::default())
        .await
        .unwrap_err();
    assert!(
        matches!(bad, PhoenixError::Validation(_)),
        "empty host is refused"
    );
    p.revoke_agent(agent.id).await.unwrap();
    p.revoke_agent(agent.id).await.unwrap();
    assert!(matches!(
        p.authenticate_agent(&token).await,
        Err(PhoenixError::Unauthenticated)
    ));
    assert!(matches!(
        backend.stores().agents.register(&agent, &stored).await,
        Err(StoreError::Conflict { .. })
    ));
}

/// Heartbeats update the record; `mark_lost` only wins against an unchanged heartbeat.
pub async fn agent_heartbeat_and_conditional_loss(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    let mut hb = Heartbeat::default();
    hb.resources.cpu_pct = 12.5;
    hb.resources.process_count = 321;
    hb.pipelines.push(ActivePipeline {
        name: "fleet".to_owned(),
        experiment_id: None,
        template: "topk".to_owned(),
        config_hash: "abc".to_owned(),
        health: PipelineHealth::Unhealthy,
        detail: Some("crash loop".to_owned()),
    });
    backend.advance(Duration::seconds(5));
    let updated = p.heartbeat(agent.id, hb.clone()).await.unwrap();
    assert_eq!(updated.status, AgentStatus::Degraded);
    assert_eq!(updated.resources.process_count, 321);
    assert_eq!(updated.pipelines, hb.pipelines);
    assert!(updated.last_heartbeat > agent.last_heartbeat);
    let read = p.agent(agent.id).await.unwrap();
    assert_eq!(read.last_heartbeat, updated.last_heartbeat);
    let agents = backend.stores().agents;
    // A loss decided on an older heartbeat loses the race.
    assert!(
        !agents
            .mark_lost(agent.id, agent.last_heartbeat)
            .await
            .unwrap()
    );
    assert_eq!(
        p.agent(agent.id).await.unwrap().status,
        AgentStatus::Degraded
    );
    assert!(
        agents
            .mark_lost(agent.id, updated.last_heartbeat)
            .await
            .unwrap()
    );
    assert!(
        !agents
            .mark_lost(agent.id, updated.last_heartbeat)
            .await
            .unwrap(),
        "idempotent"
    );
    assert_eq!(p.agent(agent.id).await.unwrap().status, AgentStatus::Lost);
    // A lost agent that heartbeats again is back.
    let back = p.heartbeat(agent.id, Heartbeat::default()).await.unwrap();
    assert_eq!(back.status, AgentStatus::Healthy);
    assert!(matches!(
        p.heartbeat(phoenix_core::ids::AgentId::new(), Heartbeat::default())
            .await,
        Err(PhoenixError::Store(StoreError::NotFound { .. }))
    ));
}

/// Agents list newest first with cursors; filters by status and revocation.
pub async fn agent_list_paginates_and_filters(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(enroll(&p, &format!("host-{i}")).await.id);
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::with_limit(3);
    loop {
        let batch = p.agents(&AgentFilter::default(), &page).await.unwrap();
        seen.extend(batch.items.iter().map(|a| a.id));
        match batch.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let last_hb = p.agent(ids[0]).await.unwrap().last_heartbeat;
    backend
        .stores()
        .agents
        .mark_lost(ids[0], last_hb)
        .await
        .unwrap();
    p.revoke_agent(ids[1]).await.unwrap();
    let lost = p
        .agents(
            &AgentFilter {
                statuses: vec![AgentStatus::Lost],
                include_revoked: false,
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(
        lost.items.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    let visible = p
        .agents(&AgentFilter::default(), &PageRequest::first())
        .await
        .unwrap();
    assert_eq!(
        visible.items.len(),
        6,
        "revoked agents are hidden by default"
    );
    let all = p
        .agents(
            &AgentFilter {
                statuses: vec![],
                include_revoked: true,
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 7);
}

/// User tokens are stored hashed, found by secret, and revocable.
pub async fn token_create_find_revoke(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let (token, secret) = p.create_token("ci", Role::Operator, "admin").await.unwrap();
    assert_ne!(token.hash.0, secret);
    assert_eq!(p.authenticate_user(&secret).await.unwrap().id, token.id);
    assert!(matches!(
        p.authenticate_user("phx_user_nope").await,
        Err(PhoenixError::Unauthenticated)
    ));
    let bootstrap = p
        .ensure_token("admin", Role::Admin, "phx_user_bootstrap-secret")
        .await
        .unwrap();
    let again = p
        .ensure_token("admin", Role::Admin, "phx_user_bootstrap-secret")
        .await
        .unwrap();
    assert_eq!(bootstrap.id, again.id, "ensure is idempotent");
    let stores = backend.stores();
    assert!(matches!(
        stores.tokens.create_token(&token).await,
        Err(StoreError::Conflict { .. })
    ));
    let list = stores.tokens.list_tokens().await.unwrap();
    assert_eq!(list.len(), 2);
    stores.tokens.revoke_token(token.id).await.unwrap();
    assert!(matches!(
        p.authenticate_user(&secret).await,
        Err(PhoenixError::Unauthenticated)
    ));
    assert!(
        stores
            .tokens
            .list_tokens()
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == token.id && t.revoked)
    );
    assert!(matches!(
        stores
            .tokens
            .revoke_token(phoenix_core::ids::ExperimentId::new().0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}
