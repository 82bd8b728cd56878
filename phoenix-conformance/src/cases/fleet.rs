//! The fleet views served from each replica's fleet cache agree with the uncached
//! computation over the stored snapshots.

use std::collections::BTreeMap;

use chrono::Duration;
use phoenix_core::Phoenix;
use phoenix_core::agent::Agent;
use phoenix_core::cardinality::{AnalysisOptions, Dimension};
use phoenix_core::measure::{
    CardinalitySnapshot, PackedSnapshot, ReportedSnapshot, SnapshotSeries, SnapshotSource,
};
use phoenix_core::phoenix::{CardinalityView, CostFlowView, Coverage, PhoenixConfig};

use crate::TestBackend;
use crate::fixtures::{config, enroll};

fn with_staleness(staleness: Duration) -> PhoenixConfig {
    PhoenixConfig {
        fleet_view_staleness: staleness,
        ..config()
    }
}

/// A snapshot of `agent` with `series` HTTP series over a few services and namespaces,
/// taken now.
fn snapshot(
    backend: &dyn TestBackend,
    agent: &Agent,
    series: usize,
    salt: usize,
) -> CardinalitySnapshot {
    CardinalitySnapshot {
        agent_id: agent.id,
        source: SnapshotSource::Input,
        host: agent.host.clone(),
        taken_at: backend.clock().now(),
        interval_secs: 60,
        series: (0..series)
            .map(|i| SnapshotSeries {
                metric: ["http_requests_total", "process.cpu.time"][i % 2].to_owned(),
                labels: BTreeMap::from([
                    ("service.name".to_owned(), format!("svc-{}", (i + salt) % 3)),
                    ("k8s.namespace.name".to_owned(), format!("ns-{}", i % 2)),
                    ("route".to_owned(), format!("/r/{}", (i * 7 + salt) % 11)),
                    ("host.name".to_owned(), agent.host.clone()),
                ]),
                points: 1 + (i % 3) as u64,
                value: Some(i as f64),
            })
            .collect(),
    }
}

/// What `snapshot` would ship after a pipeline that drops `route`: one series per
/// (metric, service, namespace), one point each.
fn shipped(
    backend: &dyn TestBackend,
    agent: &Agent,
    series: usize,
    salt: usize,
) -> CardinalitySnapshot {
    let input = snapshot(backend, agent, series, salt);
    let mut out: Vec<SnapshotSeries> = input
        .series
        .iter()
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.remove("route");
            SnapshotSeries {
                metric: s.metric.clone(),
                labels,
                points: 1,
                value: None,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
    out.dedup_by(|a, b| a.metric == b.metric && a.labels == b.labels);
    CardinalitySnapshot {
        source: SnapshotSource::Shipped,
        series: out,
        ..input
    }
}

/// Coverage without the instant and the age derived from it (two reads a moment apart).
fn timeless(c: &Coverage) -> Coverage {
    Coverage {
        computed_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        oldest_snapshot_age_secs: None,
        ..c.clone()
    }
}

fn same_flow(cached: &CostFlowView, uncached: &CostFlowView) {
    assert_eq!(cached.cost_flow, uncached.cost_flow);
    assert_eq!(cached.recommendations, uncached.recommendations);
    assert_eq!(cached.total_series, uncached.total_series);
    assert_eq!(cached.hosts, uncached.hosts);
    assert_eq!(cached.shipped, uncached.shipped);
    assert_eq!(timeless(&cached.coverage), timeless(&uncached.coverage));
    // Asked after the uncached one with no staleness allowed: computed after it.
    assert!(cached.coverage.computed_at >= uncached.coverage.computed_at);
}

fn same_report(cached: &CardinalityView, uncached: &CardinalityView) {
    assert_eq!(cached.report, uncached.report);
    assert_eq!(timeless(&cached.coverage), timeless(&uncached.coverage));
}

/// Both replicas' views equal the uncached computation.
async fn check(replicas: &[&Phoenix]) {
    let options = AnalysisOptions {
        breakdowns: vec![Dimension::Metric, Dimension::Service, Dimension::Host],
        ..AnalysisOptions::default()
    };
    for p in replicas {
        for allow_changed in [false, true] {
            let uncached = p
                .cost_flow_uncached(None, Vec::new(), allow_changed)
                .await
                .unwrap();
            let cached = p.cost_flow(None, Vec::new(), allow_changed).await.unwrap();
            same_flow(&cached, &uncached);
        }
        let uncached = p
            .cardinality_report_uncached(&options, Some("grafana-cloud-pro"))
            .await
            .unwrap();
        let cached = p
            .cardinality_report(&options, Some("grafana-cloud-pro"))
            .await
            .unwrap();
        same_report(&cached, &uncached);
    }
}

/// Two replicas (two facades with their own caches; on a database, each on its own
/// store handle) answer every fleet view exactly as the uncached computation (raw vs
/// shipped included) while input and shipped snapshots are added, replaced, stop being
/// current, leave by retention and are deleted.
pub async fn fleet_views_match_uncached_across_replicas(backend: &dyn TestBackend) {
    let stores_b = backend.replica().await.unwrap_or_else(|| backend.stores());
    let a = Phoenix::new(
        backend.stores(),
        backend.clock(),
        with_staleness(Duration::zero()),
    );
    let b = Phoenix::new(stores_b, backend.clock(), with_staleness(Duration::zero()));
    // Empty fleet.
    check(&[&a, &b]).await;

    let mut agents = Vec::new();
    for h in 0..4 {
        agents.push(enroll(&a, &format!("fleet-host-{h}")).await);
    }
    for (i, agent) in agents.iter().enumerate().take(3) {
        let replica = if i % 2 == 0 { &a } else { &b };
        replica
            .report_metrics(
                agent.id,
                &[],
                Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
                    backend,
                    agent,
                    20 + i * 5,
                    i,
                )))),
            )
            .await
            .unwrap();
    }
    check(&[&a, &b]).await;
    assert_eq!(a.cost_flow(None, Vec::new(), false).await.unwrap().hosts, 3);

    // Two hosts report what they ship (through either replica): raw vs shipped on them.
    a.report_metrics(
        agents[0].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&shipped(
            backend, &agents[0], 20, 0,
        )))),
    )
    .await
    .unwrap();
    b.report_metrics(
        agents[2].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&shipped(
            backend, &agents[2], 30, 2,
        )))),
    )
    .await
    .unwrap();
    check(&[&a, &b]).await;
    let flow = b.cost_flow(None, Vec::new(), false).await.unwrap();
    assert_eq!(flow.coverage.reporting_shipped, 2);
    assert_eq!(flow.shipped.as_ref().map(|s| s.hosts), Some(2));

    // Replaced (through the other replica) and added.
    b.report_metrics(
        agents[0].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agents[0], 31, 9,
        )))),
    )
    .await
    .unwrap();
    a.report_metrics(
        agents[3].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agents[3], 12, 4,
        )))),
    )
    .await
    .unwrap();
    check(&[&a, &b]).await;

    // A new input more than one interval after agent 2's shipped output: that output is
    // no longer what it ships.
    backend.advance(Duration::seconds(61));
    a.report_metrics(
        agents[2].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agents[2], 30, 5,
        )))),
    )
    .await
    .unwrap();
    check(&[&a, &b]).await;
    assert_eq!(
        a.cost_flow(None, Vec::new(), false)
            .await
            .unwrap()
            .coverage
            .reporting_shipped,
        1
    );

    // A revoked host stays within the retention, then leaves the views, then is deleted.
    a.revoke_agent(agents[1].id).await.unwrap();
    check(&[&a, &b]).await;
    assert_eq!(b.cost_flow(None, Vec::new(), false).await.unwrap().hosts, 4);
    backend.advance(a.config().snapshot_retention + Duration::seconds(1));
    check(&[&a, &b]).await;
    assert_eq!(b.cost_flow(None, Vec::new(), false).await.unwrap().hosts, 3);
    assert_eq!(a.prune_snapshots().await.unwrap(), 1);
    check(&[&a, &b]).await;
    // Deleted while both caches hold it, and a fresh one of another host.
    backend
        .stores()
        .metrics
        .delete_snapshots(&[agents[2].id])
        .await
        .unwrap();
    b.report_metrics(
        agents[3].id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agents[3], 17, 1,
        )))),
    )
    .await
    .unwrap();
    check(&[&a, &b]).await;
    let flow = a.cost_flow(None, Vec::new(), false).await.unwrap();
    assert_eq!(flow.hosts, 2);
    assert_eq!(flow.total_series, 31 + 17);
}

/// With a staleness bound, a view may be served from the memo until the bound, states the
/// instant it was computed for, and is never older than the bound.
pub async fn fleet_views_state_their_instant_within_staleness(backend: &dyn TestBackend) {
    let bound = Duration::seconds(10);
    let p = Phoenix::new(backend.stores(), backend.clock(), with_staleness(bound));
    let agent = enroll(&p, "fleet-stale-0").await;
    p.report_metrics(
        agent.id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agent, 10, 0,
        )))),
    )
    .await
    .unwrap();
    let first = p.cost_flow(None, Vec::new(), false).await.unwrap();
    assert_eq!(first.total_series, 10);
    let t0 = first.coverage.computed_at;

    // A new snapshot: the memo may still be served, and then says when it is from.
    p.report_metrics(
        agent.id,
        &[],
        Some(ReportedSnapshot::Packed(&PackedSnapshot::pack(&snapshot(
            backend, &agent, 14, 0,
        )))),
    )
    .await
    .unwrap();
    let second = p.cost_flow(None, Vec::new(), false).await.unwrap();
    if second.coverage.computed_at == t0 {
        assert_eq!(second.total_series, 10);
    } else {
        assert_eq!(second.total_series, 14);
    }
    assert!(backend.clock().now() - second.coverage.computed_at <= bound);

    // Past the bound, the view is recomputed before it is answered.
    backend.advance(bound + Duration::seconds(1));
    let third = p.cost_flow(None, Vec::new(), false).await.unwrap();
    assert!(third.coverage.computed_at > t0);
    assert!(backend.clock().now() - third.coverage.computed_at <= bound);
    assert_eq!(third.total_series, 14);
    let uncached = p.cost_flow_uncached(None, Vec::new(), false).await.unwrap();
    assert_eq!(third.cost_flow, uncached.cost_flow);
    assert_eq!(third.recommendations, uncached.recommendations);
    assert_eq!(timeless(&third.coverage), timeless(&uncached.coverage));
}
