//! Cost history through the API: recorded by the controller from the cost page's host
//! set, read back by range, refused with a clear 4xx on bad input, and kept across a
//! server restart on PostgreSQL and Redis.

use std::collections::BTreeMap;

use phoenix_client::HistoryParams;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::analysis::{FigureBasis, HistoryBreakdown, HistoryGranularity};
use phoenix_client::api::measure::{CardinalitySnapshot, MetricsReport, SnapshotSeries};
use phoenix_client::api::token::Role;
use phoenix_server::ServerConfig;

use crate::harness::{ADMIN, Backend, TestServer};

async fn record_one(server: &TestServer) {
    let agent = server.agent("hist-a").await;
    let now = agent
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap()
        .server_time;
    let receipt = agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(CardinalitySnapshot {
                agent_id: agent.id,
                host: "hist-a".to_owned(),
                taken_at: now,
                interval_secs: 60,
                source: Default::default(), // the host's input
                series: (0..6)
                    .map(|i| SnapshotSeries {
                        metric: if i < 4 { "node_cpu" } else { "up" }.to_owned(),
                        labels: BTreeMap::from([("cpu".to_owned(), i.to_string())]),
                        points: 1,
                        value: None,
                    })
                    .collect(),
            }),
        })
        .await
        .unwrap();
    assert!(receipt.snapshot_stored);
    server.tick().await;
}

fn params() -> HistoryParams {
    HistoryParams {
        granularity: Some(HistoryGranularity::Hour),
        breakdown: Some(HistoryBreakdown::Metric),
        pricing_model: Some("generic-per-million".to_owned()),
        ..HistoryParams::default()
    }
}

#[tokio::test]
async fn history_is_recorded_read_and_bad_input_refused() {
    let server = TestServer::start().await;
    record_one(&server).await;
    let viewer = server.user(Role::Viewer).await;
    let h = viewer.cost_history(&params()).await.unwrap();
    assert_eq!(h.points.len(), 1, "{h:?}");
    let p = &h.points[0];
    assert_eq!((p.observations, p.hosts, p.total.series), (1, 1, 6));
    assert_eq!(p.total.monthly_cost.as_deref(), Some("0.000300"));
    let groups: Vec<_> = p
        .groups
        .iter()
        .map(|g| (g.key.as_str(), g.series))
        .collect();
    assert_eq!(groups, [("node_cpu", 4), ("up", 2)]);
    assert_eq!(h.currency, "USD");
    let monthly = h.monthly.unwrap();
    assert_eq!(monthly.basis, FigureBasis::Projected);
    assert_eq!(monthly.amount, "0.000300");
    assert_eq!(h.yearly.unwrap().amount, "0.003600");
    assert!(h.markers.is_empty());

    // The same tick again records nothing new.
    server.tick().await;
    let again = viewer.cost_history(&params()).await.unwrap();
    assert_eq!(again.points[0].observations, 1);

    let status = |r: Result<_, phoenix_client::ClientError>| r.unwrap_err().status();
    let now = chrono::Utc::now();
    let backwards = HistoryParams {
        from: Some(now),
        to: Some(now - chrono::Duration::hours(1)),
        ..params()
    };
    assert_eq!(status(viewer.cost_history(&backwards).await), Some(422));
    let too_long = HistoryParams {
        from: Some(now - chrono::Duration::days(60)),
        to: Some(now),
        ..params()
    };
    assert_eq!(status(viewer.cost_history(&too_long).await), Some(422));
    let unknown_model = HistoryParams {
        pricing_model: Some("nope".to_owned()),
        ..params()
    };
    assert_eq!(status(viewer.cost_history(&unknown_model).await), Some(422));
    let raw = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/cost/history?granularity=week",
            server.base
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let anonymous = server.anonymous().cost_history(&params()).await;
    assert_eq!(status(anonymous), Some(401));
    server.stop().await;
}

async fn survives_a_restart(backend: Backend) {
    let first = TestServer::start_on(backend.clone(), ServerConfig::default()).await;
    record_one(&first).await;
    let before = first
        .user(Role::Viewer)
        .await
        .cost_history(&params())
        .await
        .unwrap();
    assert_eq!(before.points.len(), 1);
    first.stop_keep_data().await;

    let second = TestServer::start_on(backend, ServerConfig::default()).await;
    let after = second
        .user(Role::Viewer)
        .await
        .cost_history(&params())
        .await
        .unwrap();
    assert_eq!(
        after.points, before.points,
        "the rollups outlive the process"
    );
    assert_eq!(after.points[0].total.series, 6);
    second.stop().await;
}

#[tokio::test]
async fn postgres_history_survives_a_restart() {
    if let Some(backend) = Backend::postgres() {
        survives_a_restart(backend).await;
    }
}

#[tokio::test]
async fn redis_history_survives_a_restart() {
    if let Some(backend) = Backend::redis() {
        survives_a_restart(backend).await;
    }
}
