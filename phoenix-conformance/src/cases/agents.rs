//! Agents and user tokens.

use chrono::Duration;
use phoenix_core::PhoenixError;
use phoenix_core::agent::{
    ActivePipeline, AgentFilter, AgentStatus, Heartbeat, PipelineHealth, RefusedReports, SecretHash,
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

/// Every refused agent report is counted on the agent, atomically, with the last reason and
/// time; accepted reports, heartbeats and other agents leave the count alone.
pub async fn agents_refused_reports_counted(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    let other = enroll(&p, "web-2").await;
    assert_eq!(agent.refused, RefusedReports::default());
    let registry = backend.stores().agents;

    // A refused heartbeat (CPU above 100%) counts once, with its field path.
    let mut heartbeat = Heartbeat::default();
    heartbeat.resources.cpu_pct = 250.0;
    assert!(matches!(
        p.heartbeat(agent.id, heartbeat).await,
        Err(PhoenixError::Validation(_))
    ));
    let read = p.agent(agent.id).await.unwrap();
    assert_eq!(read.refused.count, 1);
    let reason = read.refused.last_reason.clone().unwrap();
    assert!(reason.starts_with("resources.cpu_pct: "), "{reason}");
    let first_at = read.refused.last_at.unwrap();
    assert!((first_at - backend.clock().now()).num_seconds().abs() <= 1);

    // An accepted heartbeat neither resets nor counts.
    p.heartbeat(agent.id, Heartbeat::default()).await.unwrap();
    assert_eq!(p.agent(agent.id).await.unwrap().refused, read.refused);

    // Concurrent refusals each count (the store's primitive is atomic).
    backend.advance(Duration::seconds(5));
    let later = backend.clock().now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let registry = registry.clone();
            let id = agent.id;
            tokio::spawn(async move {
                registry
                    .record_refusal(id, &format!("reason {i}"), later)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (2..=17).collect::<Vec<u64>>(),
        "each call saw its own count"
    );
    let read = p.agent(agent.id).await.unwrap();
    assert_eq!(read.refused.count, 17);
    assert!(read.refused.last_reason.unwrap().starts_with("reason "));
    assert_eq!(read.refused.last_at, Some(later));
    // A heartbeat after refusals keeps the counter (it writes other fields only).
    let hb = p.heartbeat(agent.id, Heartbeat::default()).await.unwrap();
    assert_eq!(hb.refused.count, 17);

    // The listing carries it too; the other agent was never refused.
    let page = p
        .agents(&AgentFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    let listed = |id| {
        page.items
            .iter()
            .find(|a| a.id == id)
            .unwrap()
            .refused
            .clone()
    };
    assert_eq!(listed(agent.id).count, 17);
    assert_eq!(listed(other.id), RefusedReports::default());

    let missing = registry
        .record_refusal(phoenix_core::ids::AgentId::new(), "x", later)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "{missing:?}"
    );
}
