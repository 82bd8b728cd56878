//! Requests mean what they say: unknown fields are a 422 naming the field, absurd agent
//! figures are a 422 naming theirs, and in both cases nothing is stored, on every backend.

use phoenix_client::ExperimentQuery;
use phoenix_client::api::task::TaskState;
use phoenix_client::api::{ErrorBody, ErrorCode};
use phoenix_core::ids::ExperimentId;
use serde_json::json;

use crate::harness::{ADMIN, Backend, TestServer, new_experiment};

crate::backends!(
    unknown_fields_are_422_naming_the_field,
    absurd_agent_reports_are_422_naming_the_figure,
);

/// POSTs `body` as JSON with `token`; the status and the error body.
async fn post(
    server: &TestServer,
    token: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, ErrorBody) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("the error shape"))
}

/// The field paths of a 422.
fn fields(status: u16, body: &ErrorBody) -> Vec<String> {
    assert_eq!(
        (status, body.error.code),
        (422, ErrorCode::ValidationFailed),
        "{body:?}"
    );
    body.error
        .details
        .fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

fn experiment_body(extra: &serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::to_value(new_experiment("strict")).unwrap();
    for (k, v) in extra.as_object().unwrap() {
        body["spec"][k] = v.clone();
    }
    body
}

async fn unknown_fields_are_422_naming_the_field(backend: Backend) {
    let server = TestServer::start_on(backend, phoenix_server::ServerConfig::default()).await;
    let experiments = "/api/v1/experiments";
    // A selector spelt `label` would otherwise have been stored as "every agent".
    let body = experiment_body(&json!({"targets": {"label": {"env": "prod"}}}));
    let (s, b) = post(&server, ADMIN, experiments, &body).await;
    assert_eq!(fields(s, &b), ["spec.targets.label"]);
    let body = experiment_body(&json!({"auto_rolback": true}));
    let (s, b) = post(&server, ADMIN, experiments, &body).await;
    assert_eq!(fields(s, &b), ["spec.auto_rolback"]);
    let body = experiment_body(&json!({"criteria": [
        {"kpi": "fidelity_pct", "comparison": "at_least", "threshold": 80, "critcal": true}
    ]}));
    let (s, b) = post(&server, ADMIN, experiments, &body).await;
    assert_eq!(fields(s, &b), ["spec.criteria[0].critcal"]);
    // A KPI no agent measures is refused, with the reason.
    let body = experiment_body(&json!({"criteria": [
        {"kpi": "agent_rss_overhead_pct", "comparison": "at_most", "threshold": 20, "critical": true}
    ]}));
    let (s, b) = post(&server, ADMIN, experiments, &body).await;
    assert_eq!(fields(s, &b), ["spec.criteria[0].kpi"]);
    let why = &b.error.details.fields.as_ref().unwrap()[0].message;
    assert!(why.contains("not measured"), "{why}");
    let mut body = serde_json::to_value(new_experiment("strict")).unwrap();
    body["owner"] = json!("someone else");
    let (s, b) = post(&server, ADMIN, experiments, &body).await;
    assert_eq!(fields(s, &b), ["owner"]);
    let admin = server.admin();
    let page = admin
        .list_experiments(&ExperimentQuery::default())
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing stored: {:?}", page.items);

    // Quick deployments, tokens, commands.
    let deployment = json!({
        "name": "roll", "pipeline": {"template": "baseline"},
        "selector": {"label": {"env": "prod"}}
    });
    let (s, b) = post(&server, ADMIN, "/api/v1/pipelines/deployments", &deployment).await;
    assert_eq!(fields(s, &b), ["selector.label"]);
    assert!(
        admin
            .list_deployments(None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let token = json!({"name": "ci", "role": "viewer", "admin": true});
    let (s, b) = post(&server, ADMIN, "/api/v1/tokens", &token).await;
    assert_eq!(fields(s, &b), ["admin"]);
    let created = admin
        .create_experiment(&new_experiment("kept"))
        .await
        .unwrap();
    let (s, b) = post(
        &server,
        ADMIN,
        &format!("/api/v1/experiments/{}/rollback", created.id),
        &json!({"mode": "instant", "why": "x"}),
    )
    .await;
    assert_eq!(fields(s, &b), ["why"]);

    // Agent requests.
    let agent = server.agent("web-1").await;
    let before = admin.get_agent(agent.id).await.unwrap();
    let credential = agent.credential.as_str();
    let (s, b) = post(
        &server,
        credential,
        "/api/v1/agent/heartbeat",
        &json!({"resources": {"cpu_pct": 1.0, "cpu": 2.0}}),
    )
    .await;
    assert_eq!(fields(s, &b), ["resources.cpu"]);
    assert_eq!(
        admin.get_agent(agent.id).await.unwrap(),
        before,
        "unchanged"
    );
    let (s, b) = post(
        &server,
        credential,
        "/api/v1/agent/metrics",
        &json!({"samples": [], "snapshots": []}),
    )
    .await;
    assert_eq!(fields(s, &b), ["snapshots"]);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/agent/enroll", server.base))
        .bearer_auth(crate::harness::ENROLL)
        .json(&json!({"host": "web-2", "hostname": "web-2"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: ErrorBody = resp.json().await.unwrap();
    assert_eq!(fields(status, &body), ["hostname"]);

    // A task report with an unknown field leaves the task leased.
    admin.start_experiment(created.id).await.unwrap();
    let task = agent.one_task().await;
    let (s, b) = post(
        &server,
        credential,
        &format!("/api/v1/agent/tasks/{}/status", task.task.id),
        &json!({"lease_token": task.lease_token, "status": "succeeded", "results": {}}),
    )
    .await;
    assert_eq!(fields(s, &b), ["results"]);
    assert_eq!(
        admin.get_task(task.task.id).await.unwrap().state,
        TaskState::Leased
    );
    // Re-driving a task that is not dead-lettered or failed: its state forbids it, 409 as
    // the operation documents (found by scripts/schemathesis on a cancelled task).
    let err = admin.redrive_task(task.task.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    server.stop().await;
}

async fn absurd_agent_reports_are_422_naming_the_figure(backend: Backend) {
    let server = TestServer::start_on(backend, phoenix_server::ServerConfig::default()).await;
    let admin = server.admin();
    let agent = server.agent("web-1").await;
    let experiment = admin
        .create_experiment(&new_experiment("measured"))
        .await
        .unwrap();
    let now = admin.get_agent(agent.id).await.unwrap().last_heartbeat;
    let stats = |series: u64| json!({"series": series, "points": series, "bytes": 40});
    let sample =
        |seq: u64, baseline: serde_json::Value, taken_at: chrono::DateTime<chrono::Utc>| {
            json!({
                "experiment_id": experiment.id, "agent_id": agent.id, "seq": seq,
                "taken_at": taken_at, "interval_secs": 10,
                "baseline": baseline, "candidate": stats(10),
                "host": {"cpu_pct": 5.0}
            })
        };
    // 2^64-1 baseline series would read as a 100 % reduction.
    let report = json!({"samples": [
        sample(1, stats(u64::MAX), now),
        sample(u64::MAX, stats(100), now),
        sample(3, stats(100), now + chrono::Duration::days(365)),
    ]});
    let (s, b) = post(&server, &agent.credential, "/api/v1/agent/metrics", &report).await;
    assert_eq!(
        fields(s, &b),
        [
            "samples[0].baseline.series",
            "samples[0].baseline.points",
            "samples[1].seq",
            "samples[2].taken_at"
        ]
    );
    let stored = server
        .phoenix
        .stores()
        .metrics
        .samples(ExperimentId(experiment.id), 10)
        .await
        .unwrap();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let heartbeat = json!({"resources": {"cpu_pct": 1e300, "process_count": u64::MAX}});
    let (s, b) = post(
        &server,
        &agent.credential,
        "/api/v1/agent/heartbeat",
        &heartbeat,
    )
    .await;
    assert_eq!(
        fields(s, &b),
        ["resources.cpu_pct", "resources.process_count"]
    );
    let snapshot = json!({"snapshot": {
        "agent_id": agent.id, "host": "web-1", "taken_at": now, "interval_secs": 0,
        "series": [{"metric": "process.cpu.time\u{0}", "points": 1}]
    }});
    let (s, b) = post(
        &server,
        &agent.credential,
        "/api/v1/agent/metrics",
        &snapshot,
    )
    .await;
    assert_eq!(
        fields(s, &b),
        ["snapshot.interval_secs", "snapshot.series[0].metric"]
    );
    assert_eq!(
        server
            .phoenix
            .stores()
            .metrics
            .snapshot(phoenix_core::ids::AgentId(agent.id))
            .await
            .unwrap(),
        None
    );
    // The three refused reports are counted on the agent, in the agent view and the fleet.
    let read = admin.get_agent(agent.id).await.unwrap();
    assert_eq!(read.refused_reports, 3);
    assert_eq!(
        read.last_refusal_reason.as_deref(),
        Some("snapshot.interval_secs: must be between 1 and 86400 (and 1 more)")
    );
    assert!(read.last_refusal_at.is_some());
    let fleet = admin.fleet_status().await.unwrap();
    assert_eq!(
        (
            fleet.summary.refused_reports,
            fleet.summary.agents_with_refused_reports
        ),
        (3, 1)
    );
    let listed = fleet.agents.iter().find(|a| a.id == agent.id).unwrap();
    assert_eq!(listed.refused_reports, 3);
    server.stop().await;
}
