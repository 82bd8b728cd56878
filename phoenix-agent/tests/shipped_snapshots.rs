//! Raw vs shipped: the real server (in-process on 127.0.0.1:0) and two real
//! `phoenix-agent` processes (native runtime). A pipeline quick-deployed on one host makes
//! that host report, on the server's snapshot schedule, a second snapshot of what the
//! pipeline ships beside its input; the store holds both sources for that host and the
//! input alone for the other, and the cost view compares the shipping host's raw input
//! with its shipped output (fewer series, priced lower), stating its coverage.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use phoenix_api::deployment::NewDeployment;
use phoenix_api::experiment::TargetSelector;
use phoenix_client::Client;
use phoenix_core::clock::SystemClock;
use phoenix_core::measure::SnapshotSource;
use phoenix_core::pipeline::PipelineRef;
use phoenix_core::{MemoryStore, Phoenix, PhoenixConfig};
use phoenix_server::config::ServerConfig;
use tokio::process::{Child, Command};

const ADMIN: &str = "phx_admin_ship_0123456789abcdef";
const ENROLL: &str = "phx_enroll_ship_0123456789abcdef";
/// The server's snapshot interval (told to agents in heartbeat answers).
const SNAPSHOT_SECS: i64 = 3;

fn start_agent(server: &str, state_dir: &Path, name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_phoenix-agent"))
        .args(["--server", server, "--enrollment-token", ENROLL])
        .arg("--state-dir")
        .arg(state_dir)
        .args([
            "--listen",
            "off",
            "--host-name",
            name,
            "--heartbeat-interval-secs",
            "1",
            "--poll-wait-secs",
            "2",
            "--backoff-initial-ms",
            "100",
            "--backoff-max-ms",
            "1000",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent binary starts")
}

async fn eventually<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_pipeline_reports_what_it_ships_beside_the_raw_input() {
    let phoenix = Phoenix::new(
        MemoryStore::new().stores(),
        Arc::new(SystemClock),
        PhoenixConfig {
            heartbeat_interval: chrono::Duration::seconds(1),
            safety_poll: chrono::Duration::milliseconds(200),
            snapshot_interval: chrono::Duration::seconds(SNAPSHOT_SECS),
            ..PhoenixConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(phoenix_server::serve_with(
        listener,
        phoenix.clone(),
        ServerConfig {
            admin_token: Some(ADMIN.to_owned()),
            enrollment_token: Some(ENROLL.to_owned()),
            controller_interval_ms: 100,
            agent_rate_per_sec: 1000.0,
            agent_rate_burst: 1000,
            ..ServerConfig::default()
        },
        phoenix_server::ServeOptions::default(),
        async {
            let _ = server_stopped.await;
        },
    ));
    let client = Client::new(&base).unwrap().with_token(ADMIN);
    let dirs = tempfile::tempdir().unwrap();
    let _shipping = start_agent(&base, &dirs.path().join("a"), "ship-a");
    let _raw_only = start_agent(&base, &dirs.path().join("b"), "ship-b");

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

    let _ = stop_server.send(());
    let _ = server.await;
}
