//! `POST /agents/matching`: the live agents a selector picks, which are exactly those an
//! experiment started with that selector targets.

use std::collections::BTreeMap;

use phoenix_client::api::ErrorCode;
use phoenix_client::api::agent::{AgentRegistration, Heartbeat};
use phoenix_client::api::experiment::TargetSelector;
use phoenix_client::api::token::Role;

use crate::harness::{Backend, ENROLL, TestServer, new_experiment};

crate::backends!(a_selector_picks_the_agents_start_targets);

fn selector(labels: &[(&str, &str)], hosts: &[&str]) -> TargetSelector {
    TargetSelector {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
    }
}

async fn a_selector_picks_the_agents_start_targets(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let viewer = server.user(Role::Viewer).await;
    let operator = server.user(Role::Operator).await;
    let mut ids = BTreeMap::new();
    for (host, env) in [("web-2", "prod"), ("web-1", "prod"), ("db-1", "staging")] {
        let enrolled = server
            .anonymous()
            .enroll(
                ENROLL,
                &AgentRegistration {
                    host: host.to_owned(),
                    version: "test".to_owned(),
                    os: "linux".to_owned(),
                    labels: BTreeMap::from([("env".to_owned(), env.to_owned())]),
                    ..AgentRegistration::default()
                },
            )
            .await
            .unwrap();
        server
            .client(&enrolled.credential)
            .heartbeat(&Heartbeat::default())
            .await
            .unwrap();
        ids.insert(host, enrolled.agent.id);
    }
    let hosts = |s: &TargetSelector| {
        let viewer = &viewer;
        let s = s.clone();
        async move {
            viewer
                .match_agents(&s)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|a| a.host)
                .collect::<Vec<_>>()
        }
    };
    // Empty: every live agent, by host name.
    assert_eq!(hosts(&selector(&[], &[])).await, ["db-1", "web-1", "web-2"]);
    assert_eq!(
        hosts(&selector(&[("env", "prod")], &[])).await,
        ["web-1", "web-2"]
    );
    // Labels and hosts both apply; a host is named by its name or its agent id.
    let by_id = ids["web-2"].to_string();
    assert_eq!(
        hosts(&selector(&[("env", "prod")], &["web-1", "db-1", &by_id])).await,
        ["web-1", "web-2"]
    );
    assert!(hosts(&selector(&[("env", "qa")], &[])).await.is_empty());
    // A revoked agent is no longer picked.
    server.admin().revoke_agent(ids["db-1"]).await.unwrap();
    assert_eq!(hosts(&selector(&[], &[])).await, ["web-1", "web-2"]);

    // Exactly the agents start targets.
    let mut request = new_experiment("matching");
    request.spec.targets = selector(&[("env", "prod")], &["web-2"]);
    let picked = viewer.match_agents(&request.spec.targets).await.unwrap();
    let created = operator.create_experiment(&request).await.unwrap();
    let started = operator.start_experiment(created.id).await.unwrap();
    let targeted: Vec<_> = started.targets.iter().map(|t| t.agent_id).collect();
    let matched: Vec<_> = picked.items.iter().map(|a| a.id).collect();
    assert_eq!(targeted, matched);
    assert_eq!(matched, [ids["web-2"]]);

    // A bad selector is a 422 naming the field, checked as an experiment's targets are.
    let bad = viewer
        .match_agents(&selector(&[("env\u{1}", "prod")], &[""]))
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(422));
    assert_eq!(bad.code(), Some(ErrorCode::ValidationFailed));
    let fields: Vec<String> = bad
        .api_error()
        .and_then(|e| e.details.fields.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("labels.env")),
        "{fields:?}"
    );
    assert!(fields.iter().any(|f| f == "hosts[0]"), "{fields:?}");
    // Without a token: 401.
    let anonymous = server.anonymous().match_agents(&selector(&[], &[])).await;
    assert_eq!(anonymous.unwrap_err().status(), Some(401));
    server.stop().await;
}
