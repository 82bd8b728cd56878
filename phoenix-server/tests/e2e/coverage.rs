//! The fleet views' host set on every backend: coverage, the snapshot retention of hosts
//! no longer live, and the on-demand snapshot refresh.

use std::collections::BTreeMap;

use chrono::Duration;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::measure::{CardinalitySnapshot, MetricsReport, SnapshotSeries};
use phoenix_client::api::task::TaskKind;
use phoenix_client::api::token::Role;

use crate::harness::{Backend, TestServer};

crate::backends!(coverage_retention_and_refresh);

async fn coverage_retention_and_refresh(backend: Backend) {
    let server = TestServer::start_on(backend, Default::default()).await;
    let viewer = server.user(Role::Viewer).await;
    let operator = server.user(Role::Operator).await;
    let a = server.agent("cov-a").await;
    let b = server.agent("cov-b").await;
    let now = a
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap()
        .server_time;
    let receipt = a
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(CardinalitySnapshot {
                agent_id: a.id,
                source: phoenix_client::api::measure::SnapshotSource::Input,
                host: "cov-a".to_owned(),
                taken_at: now,
                interval_secs: 60,
                series: (0..5)
                    .map(|i| SnapshotSeries {
                        metric: "node_cpu_seconds_total".to_owned(),
                        labels: BTreeMap::from([("cpu".to_owned(), i.to_string())]),
                        points: 4,
                        value: None,
                    })
                    .collect(),
            }),
        })
        .await
        .unwrap();
    assert!(receipt.snapshot_stored);

    // One of two live hosts reports: 50 %, and every view says so.
    let flow = viewer.cost_flow(None, &["host"]).await.unwrap();
    let c = &flow.coverage;
    assert_eq!(
        (c.hosts, c.live_hosts, c.reporting, c.reporting_live),
        (2, 2, 1, 1)
    );
    assert_eq!(c.percent, Some(50.0));
    assert_eq!(c.oldest_snapshot_at, Some(now));
    assert_eq!(flow.hosts, 1);
    let card = viewer.cardinality(&["metric"], None, None).await.unwrap();
    assert_eq!(card.coverage.hosts, 2);
    assert_eq!(card.coverage.reporting, 1);
    // 5 series scraped every 15 s: 20 points per minute.
    assert_eq!(card.points_per_minute, 20);

    // An on-demand refresh asks every live agent once.
    let refresh = operator.refresh_snapshots().await.unwrap();
    assert_eq!((refresh.requested, refresh.already_pending), (2, 0));
    let again = operator.refresh_snapshots().await.unwrap();
    assert_eq!((again.requested, again.already_pending), (0, 2));
    assert!(viewer.refresh_snapshots().await.is_err(), "viewers may not");
    let task = b.one_task().await;
    assert_eq!(task.task.kind, TaskKind::CollectSnapshot);

    // Both hosts lost: the one with a snapshot stays while the snapshot is within the
    // retention (default 15 minutes), then leaves every view.
    server.advance(Duration::seconds(60));
    server.tick().await;
    let flow = viewer.cost_flow(None, &["host"]).await.unwrap();
    let c = &flow.coverage;
    assert_eq!(
        (c.hosts, c.live_hosts, c.reporting, c.reporting_live),
        (1, 0, 1, 0)
    );
    assert_eq!(c.percent, None);
    assert!(c.oldest_snapshot_age_secs.unwrap() >= 60);
    server.advance(Duration::minutes(15));
    server.tick().await;
    let flow = viewer.cost_flow(None, &["host"]).await.unwrap();
    let c = &flow.coverage;
    assert_eq!(
        (c.hosts, c.live_hosts, c.reporting, c.reporting_live),
        (0, 0, 0, 0)
    );
    assert_eq!(flow.hosts, 0);
    assert_eq!(
        viewer
            .cardinality(&["metric"], None, None)
            .await
            .unwrap()
            .total_series,
        0
    );
    server.stop().await;
}
