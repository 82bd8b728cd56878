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

/// The health history: one point per heartbeat with what it reported, oldest first,
/// capped per agent at the append (also across replicas), read by time and limit, pruned
/// by age; unknown agents have none and cannot get one.
pub async fn agent_health_history_bounded(backend: &dyn TestBackend) {
    use phoenix_core::agent::HealthPoint;
    use phoenix_core::store::MAX_HEALTH_POINTS_PER_AGENT;

    let p = phoenix(backend);
    let agents = backend.stores().agents;
    let a = enroll(&p, "web-1").await;
    let b = enroll(&p, "web-2").await;
    let start = backend.clock().now();
    let since_enroll = start - Duration::minutes(1);
    // `enroll` heartbeats once: one point.
    let first = agents.health_history(a.id, since_enroll, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, AgentStatus::Healthy);

    // Every heartbeat adds one point carrying what it reported and the status it implied.
    let mut hb = Heartbeat::default();
    hb.resources.cpu_pct = 42.5;
    hb.resources.agent_rss_bytes = 12_345_678;
    hb.resources.agent_cpu_pct = 1.25;
    for (i, health) in [
        PipelineHealth::Healthy,
        PipelineHealth::Starting,
        PipelineHealth::Unhealthy,
    ]
    .into_iter()
    .enumerate()
    {
        hb.pipelines.push(ActivePipeline {
            name: format!("p{i}"),
            experiment_id: None,
            template: "topk".to_owned(),
            config_hash: "abc".to_owned(),
            health,
            detail: None,
        });
    }
    backend.advance(Duration::seconds(10));
    p.heartbeat(a.id, hb.clone()).await.unwrap();
    let history = p.agent_health(a.id, 100).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    let last = &history[1];
    assert_eq!(last.status, AgentStatus::Degraded);
    assert_eq!(
        (
            last.pipelines_healthy,
            last.pipelines_starting,
            last.pipelines_unhealthy
        ),
        (1, 1, 1)
    );
    assert_eq!(last.resources, hb.resources);
    assert!(last.at > start && last.at <= backend.clock().now());
    assert!(history[0].at < history[1].at, "oldest first");
    assert_eq!(
        agents
            .health_history(b.id, since_enroll, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Unknown agents: nothing to read, nothing appended.
    let stranger = phoenix_core::ids::AgentId::new();
    assert!(matches!(
        agents
            .append_health(stranger, &HealthPoint::of(&hb, start))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(
        agents
            .health_history(stranger, since_enroll, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        p.agent_health(stranger, 10).await,
        Err(PhoenixError::Store(StoreError::NotFound { .. }))
    ));

    // The cap holds at the append: the newest points stay, in order. Half of the appends
    // go through a second replica when the backend has one.
    let replica = backend.replica().await;
    let base = backend.clock().now() + Duration::seconds(1);
    let extra = MAX_HEALTH_POINTS_PER_AGENT + 5;
    for i in 0..extra {
        let mut point = HealthPoint::of(&Heartbeat::default(), base + Duration::seconds(i as i64));
        point.resources.process_count = i as u64;
        let store = match &replica {
            Some(r) if i % 2 == 1 => r.agents.clone(),
            _ => agents.clone(),
        };
        store.append_health(a.id, &point).await.unwrap();
    }
    let kept = agents
        .health_history(a.id, since_enroll, usize::MAX)
        .await
        .unwrap();
    assert_eq!(kept.len(), MAX_HEALTH_POINTS_PER_AGENT);
    let counts: Vec<u64> = kept.iter().map(|p| p.resources.process_count).collect();
    let expected: Vec<u64> = (5..extra as u64).collect();
    assert_eq!(counts, expected, "the newest points, oldest first");
    // A limit gives the newest; `since` cuts the older ones.
    let newest = agents.health_history(a.id, since_enroll, 3).await.unwrap();
    let newest: Vec<u64> = newest.iter().map(|p| p.resources.process_count).collect();
    assert_eq!(
        newest,
        vec![extra as u64 - 3, extra as u64 - 2, extra as u64 - 1]
    );
    let recent = agents
        .health_history(a.id, base + Duration::seconds(extra as i64 - 2), 100)
        .await
        .unwrap();
    assert_eq!(recent.len(), 2);

    // Retention: points before the cut go, on every agent; again is a no-op.
    let cut = base + Duration::seconds(100);
    let pruned = agents.prune_health(cut).await.unwrap();
    // Agent a: points 5..=99 (95) before the cut; agent b: its enrollment point.
    assert_eq!(pruned, 95 + 1);
    assert_eq!(agents.prune_health(cut).await.unwrap(), 0);
    let left = agents
        .health_history(a.id, since_enroll, usize::MAX)
        .await
        .unwrap();
    assert_eq!(left.len(), extra - 100);
    assert!(left.iter().all(|p| p.at >= cut));
    assert!(
        agents
            .health_history(b.id, since_enroll, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
