//! The fleet's cost view with nothing deployed: the real server (in-process on
//! 127.0.0.1:0) and three real `phoenix-agent` processes, one of them with a real
//! node_exporter (Debian's `prometheus-node-exporter`, on loopback on a free port) as a
//! scrape input. Every host reports on the server's schedule; the cost flow shows every
//! host, node_exporter's series priced at their scrape interval, coverage 100 %; a host
//! made lost leaves the view after the snapshot retention and its snapshot is deleted.
//!
//! node_exporter: `PHOENIX_NODE_EXPORTER` or `/usr/bin/prometheus-node-exporter`
//! (`scripts/node-exporter` installs it); without it the test skips loudly, or fails under
//! `PHOENIX_REQUIRE_NODE_EXPORTER=1`.

use std::path::PathBuf;
use std::process::Stdio;

use phoenix_core::PhoenixConfig;
use tokio::process::{Child, Command};

mod support;
use support::stand::{Stand, eventually};

/// The server's snapshot interval (told to agents in heartbeat answers).
const SNAPSHOT_SECS: i64 = 30;
/// node_exporter's scrape interval on the agent.
const SCRAPE_SECS: u64 = 15;

fn node_exporter() -> Option<PathBuf> {
    let path = std::env::var_os("PHOENIX_NODE_EXPORTER").map_or_else(
        || PathBuf::from("/usr/bin/prometheus-node-exporter"),
        PathBuf::from,
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("PHOENIX_REQUIRE_NODE_EXPORTER").as_deref() != Ok("1"),
        "node_exporter is required (PHOENIX_REQUIRE_NODE_EXPORTER=1) but {} is missing: run scripts/node-exporter",
        path.display()
    );
    eprintln!(
        "SKIPPED: node_exporter not found at {} (scripts/node-exporter installs it); fleet snapshot test not run",
        path.display()
    );
    None
}

fn start_agent(
    stand: &Stand,
    state_dir: &std::path::Path,
    name: &str,
    scrape: Option<&str>,
) -> Child {
    let scrape_interval = SCRAPE_SECS.to_string();
    let mut agent = stand
        .agent(state_dir, name)
        .args(["--scrape-interval-secs", &scrape_interval]);
    if let Some(target) = scrape {
        agent = agent.args(["--scrape", target]);
    }
    agent.spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_host_reports_with_nothing_deployed_and_lost_hosts_leave_after_retention() {
    let Some(exporter) = node_exporter() else {
        return;
    };
    let port = support::harness::free_port();
    let _exporter = Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node_exporter starts");
    let target = format!("127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("node_exporter to serve /metrics", 30, async || {
        http.get(format!("http://{target}/metrics"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;

    let retention = chrono::Duration::seconds(5);
    let stand = Stand::start(PhoenixConfig {
        heartbeat_interval: chrono::Duration::seconds(1),
        safety_poll: chrono::Duration::milliseconds(200),
        snapshot_interval: chrono::Duration::seconds(SNAPSHOT_SECS),
        snapshot_retention: retention,
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (&stand.client, &stand.phoenix);
    let dirs = tempfile::tempdir().unwrap();
    let _a = start_agent(&stand, &dirs.path().join("a"), "snap-a", Some(&target));
    let _b = start_agent(&stand, &dirs.path().join("b"), "snap-b", None);
    let mut c = start_agent(&stand, &dirs.path().join("c"), "snap-c", None);

    // Nothing is deployed anywhere, yet every host reports.
    let flow = eventually("every host to report", 60, async || {
        let flow = client.cost_flow(None, &["metric", "host"]).await.ok()?;
        (flow.coverage.live_hosts == 3 && flow.coverage.reporting_live == 3).then_some(flow)
    })
    .await;
    assert_eq!(flow.coverage.hosts, 3);
    assert_eq!(flow.coverage.reporting, 3);
    assert_eq!(flow.coverage.percent, Some(100.0));
    assert_eq!(flow.hosts, 3);
    assert!(flow.coverage.oldest_snapshot_age_secs.unwrap() < 60);
    let by_host = flow
        .cost_flow
        .flows
        .iter()
        .find(|f| f.dimension == "host")
        .unwrap();
    let mut hosts: Vec<&str> = by_host.groups.iter().map(|g| g.value.as_str()).collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["snap-a", "snap-b", "snap-c"]);
    // node_exporter's series are priced (under a model without a free allotment, which
    // three hosts stay within on the default one).
    let priced = client
        .cost_flow(Some("generic-per-million"), &["metric"])
        .await
        .unwrap();
    assert_eq!(priced.coverage.hosts, 3);
    let by_metric = priced
        .cost_flow
        .flows
        .iter()
        .find(|f| f.dimension == "metric")
        .unwrap();
    let node: Vec<_> = by_metric
        .groups
        .iter()
        .filter(|g| g.value.starts_with("node_"))
        .collect();
    assert!(
        !node.is_empty(),
        "no node_exporter metric in {by_metric:#?}"
    );
    assert!(
        node.iter().any(|g| g.monthly.parse::<f64>().unwrap() > 0.0),
        "node_exporter's series are not priced: {node:#?}"
    );

    // Points per minute follow each input's interval, not the snapshot's: node_load1 is one
    // series scraped every 15 s (4 per minute); processes are collected every 10 s.
    let report = client
        .cardinality(&["metric"], Some(1000), None)
        .await
        .unwrap();
    // The cardinality view reads the same host set.
    assert_eq!(report.hosts, flow.hosts);
    assert_eq!(report.coverage.hosts, flow.coverage.hosts);
    assert_eq!(report.coverage.reporting, flow.coverage.reporting);
    assert_eq!(report.coverage.live_hosts, flow.coverage.live_hosts);
    let metric = |name: &str| {
        report.breakdowns[0]
            .groups
            .iter()
            .find(|g| g.value == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let load = metric("node_load1");
    assert_eq!(load.series, 1);
    assert_eq!(load.points_per_minute, 60 / SCRAPE_SECS);
    let memory = metric("process.memory.usage");
    assert_eq!(memory.points_per_minute, memory.series * 6);
    let stored = phoenix.snapshots().await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(
        stored
            .iter()
            .all(|s| s.interval_secs == u32::try_from(SNAPSHOT_SECS).unwrap())
    );

    // A host made lost leaves the view once its snapshot is older than the retention, and
    // the controller deletes the snapshot.
    c.kill().await.unwrap();
    let flow = eventually("the lost host to leave the view", 60, async || {
        let flow = client.cost_flow(None, &["host"]).await.ok()?;
        (flow.coverage.hosts == 2).then_some(flow)
    })
    .await;
    assert_eq!(flow.coverage.live_hosts, 2);
    assert_eq!(flow.coverage.reporting, 2);
    assert_eq!(flow.coverage.percent, Some(100.0));
    let hosts: Vec<&str> = flow.cost_flow.flows[0]
        .groups
        .iter()
        .map(|g| g.value.as_str())
        .collect();
    assert!(!hosts.contains(&"snap-c"), "{hosts:?}");
    eventually("the lost host's snapshot to be deleted", 30, async || {
        (phoenix.snapshots().await.unwrap().len() == 2).then_some(())
    })
    .await;

    stand.stop().await;
}
