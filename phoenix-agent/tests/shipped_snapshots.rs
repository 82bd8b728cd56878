//! Raw vs shipped: the real server (in-process on 127.0.0.1:0) and two real
//! `phoenix-agent` processes (native runtime). A pipeline quick-deployed on one host makes
//! that host report, on the server's snapshot schedule, a second snapshot of what the
//! pipeline ships beside its input; the store holds both sources for that host and the
//! input alone for the other, and the cost view compares the shipping host's raw input
//! with its shipped output (fewer series, priced lower), stating its coverage.

use std::collections::BTreeMap;

use phoenix_api::deployment::NewDeployment;
use phoenix_api::experiment::TargetSelector;
use phoenix_core::PhoenixConfig;
use phoenix_core::measure::SnapshotSource;
use phoenix_core::pipeline::PipelineRef;

mod support;
use support::stand::{Stand, eventually};

/// The server's snapshot interval (told to agents in heartbeat answers).
const SNAPSHOT_SECS: i64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_pipeline_reports_what_it_ships_beside_the_raw_input() {
    let stand = Stand::start(PhoenixConfig {
        heartbeat_interval: chrono::Duration::seconds(1),
        safety_poll: chrono::Duration::milliseconds(200),
        snapshot_interval: chrono::Duration::seconds(SNAPSHOT_SECS),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (&stand.client, &stand.phoenix);
    let dirs = tempfile::tempdir().unwrap();
    let _shipping = stand.agent(&dirs.path().join("a"), "ship-a").spawn();
    let _raw_only = stand.agent(&dirs.path().join("b"), "ship-b").spawn();

    // Before anything is deployed, both hosts report their input and nothing shipped.
    let flow = eventually("both hosts to report", 60, async || {
        let flow = client.cost_flow(None, &["host"]).await.ok()?;
        (flow.coverage.reporting_live == 2).then_some(flow)
    })
    .await;
    assert_eq!(flow.coverage.reporting_shipped, 0);
    assert!(flow.shipped.is_none());

    // Aggregate the processes of one host: it ships one series per executable and metric.
    client
        .create_deployment(&NewDeployment {
            name: "aggregate ship-a".to_owned(),
            pipeline: Some(PipelineRef::new("aggregate").into()),
            rollback_to: None,
            selector: TargetSelector {
                labels: BTreeMap::new(),
                hosts: vec!["ship-a".to_owned()],
            },
            experiment_id: None,
            strategy: Default::default(),
        })
        .await
        .unwrap();

    let flow = eventually(
        "the deployed host to report what it ships",
        90,
        async || {
            let flow = client
                .cost_flow(Some("generic-per-million"), &["host"])
                .await
                .ok()?;
            flow.shipped.is_some().then_some(flow)
        },
    )
    .await;
    let shipped = flow.shipped.as_ref().unwrap();
    assert_eq!(flow.coverage.reporting, 2);
    assert_eq!(flow.coverage.reporting_shipped, 1);
    assert_eq!(shipped.hosts, 1);
    assert!(
        shipped.raw.series > shipped.shipped.series && shipped.shipped.series > 0,
        "raw {} vs shipped {}",
        shipped.raw.series,
        shipped.shipped.series
    );
    assert!(shipped.raw.points_per_minute > shipped.shipped.points_per_minute);
    let money = |m: &str| m.parse::<f64>().unwrap();
    assert!(
        money(&shipped.raw.cost.gross_monthly) > money(&shipped.shipped.cost.gross_monthly),
        "{shipped:#?}"
    );
    assert!(shipped.series_reduction_pct.unwrap() > 0.0);
    assert!(shipped.cost_reduction_pct.unwrap() > 0.0);
    // The compared raw side is the shipping host's input only, not the fleet's.
    assert!(shipped.raw.series < flow.total_series);
    assert_eq!(shipped.raw.cost.hosts, 1);

    // The store holds one snapshot per host and source: both for ship-a, the input for
    // ship-b. The shipped series are what the aggregation leaves: no process id.
    let stored = phoenix.snapshots().await.unwrap();
    let mut sources: Vec<(String, SnapshotSource)> =
        stored.iter().map(|s| (s.host.clone(), s.source)).collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            ("ship-a".to_owned(), SnapshotSource::Input),
            ("ship-a".to_owned(), SnapshotSource::Shipped),
            ("ship-b".to_owned(), SnapshotSource::Input),
        ]
    );
    let out = stored
        .iter()
        .find(|s| s.source == SnapshotSource::Shipped)
        .unwrap();
    assert_eq!(
        out.interval_secs,
        u32::try_from(SNAPSHOT_SECS).unwrap(),
        "the shipped snapshot is on the server's schedule"
    );
    assert!(
        out.series
            .iter()
            .all(|s| !s.labels.contains_key("process.pid")),
        "the aggregated output still carries process ids"
    );

    stand.stop().await;
}
