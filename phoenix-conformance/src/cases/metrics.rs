//! Measurements, snapshots and quick deployments.

use std::collections::BTreeMap;

use chrono::DateTime;

use phoenix_core::deployment::{Deployment, DeploymentState, RolloutStrategy};
use phoenix_core::experiment::TargetSelector;
use phoenix_core::ids::{AgentId, DeploymentId, ExperimentId};
use phoenix_core::measure::{CardinalitySnapshot, PackedSnapshot, SnapshotSeries, SnapshotSource};
use phoenix_core::page::PageRequest;
use phoenix_core::pipeline::{PipelineRef, RenderContext, TemplateRegistry};
use phoenix_core::store::{AppendReport, BusEvent, SnapshotVersion, StoreError};
use phoenix_core::task::{EnqueueResult, TaskFilter, TaskState};

use crate::TestBackend;
use crate::fixtures::{sample, snapshot_task};

/// Samples are stored once per (experiment, agent, seq) and read back in time order.
pub async fn metric_samples_idempotent_and_ordered(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    let mut rx = backend.stores().bus.subscribe();
    let e = ExperimentId::new();
    let a = AgentId::new();
    let b = AgentId::new();
    let start = backend.clock().now();
    let batch = vec![
        sample(start, e, a, 2),
        sample(start, e, b, 1),
        sample(start, e, a, 1),
    ];
    assert_eq!(
        m.append_samples(&batch).await.unwrap(),
        AppendReport {
            inserted: 3,
            duplicates: 0
        }
    );
    let retry = vec![sample(start, e, a, 2), sample(start, e, a, 3)];
    assert_eq!(
        m.append_samples(&retry).await.unwrap(),
        AppendReport {
            inserted: 1,
            duplicates: 1
        }
    );
    let stored = m.samples(e, 100).await.unwrap();
    let keys: Vec<_> = stored.iter().map(|s| (s.agent_id, s.seq)).collect();
    let mut expected = vec![(a, 1), (b, 1), (a, 2), (a, 3)];
    // (a,1) and (b,1) share a timestamp: ties order by agent id.
    if b < a {
        expected.swap(0, 1);
    }
    assert_eq!(keys, expected);
    assert_eq!(stored[2], batch[0], "stored intact");
    assert_eq!(m.samples(e, 2).await.unwrap().len(), 2);
    assert!(m.samples(ExperimentId::new(), 10).await.unwrap().is_empty());
    let announced = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            if let Ok(BusEvent::KpisUpdated { experiment_id }) = rx.recv().await {
                return experiment_id;
            }
        }
    })
    .await
    .expect("KpisUpdated within 10 s");
    assert_eq!(announced, e);
}

/// `recent_samples`: one agent's samples of one experiment, highest seq first, however
/// they arrived.
pub async fn metric_recent_samples_per_agent(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    let e = ExperimentId::new();
    let (a, b) = (AgentId::new(), AgentId::new());
    let start = backend.clock().now();
    m.append_samples(&[sample(start, e, a, 3), sample(start, e, b, 9)])
        .await
        .unwrap();
    m.append_samples(&[sample(start, e, a, 1), sample(start, e, a, 4)])
        .await
        .unwrap();
    m.append_samples(&[sample(start, e, a, 2), sample(start, e, a, 4)])
        .await
        .unwrap();
    let seqs = |v: Vec<phoenix_core::measure::MeasurementSample>| {
        v.iter().map(|s| (s.agent_id, s.seq)).collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(m.recent_samples(e, a, 3).await.unwrap()),
        [(a, 4), (a, 3), (a, 2)]
    );
    assert_eq!(seqs(m.recent_samples(e, b, 10).await.unwrap()), [(b, 9)]);
    let all = m.recent_samples(e, a, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[1], sample(start, e, a, 3), "stored intact");
    assert!(
        m.recent_samples(ExperimentId::new(), a, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The latest snapshot per agent replaces the previous one.
pub async fn metric_snapshots_latest_per_agent(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    let a = AgentId::new();
    let b = AgentId::new();
    let snap = |agent: AgentId, n: usize| {
        PackedSnapshot::pack(&CardinalitySnapshot {
            agent_id: agent,
            source: SnapshotSource::Input,
            host: format!("h-{agent}"),
            taken_at: backend.clock().now(),
            interval_secs: 10,
            series: (0..n)
                .map(|i| SnapshotSeries {
                    metric: "process.memory.usage".to_owned(),
                    labels: BTreeMap::from([("process.pid".to_owned(), i.to_string())]),
                    points: 1,
                    value: None,
                })
                .collect(),
        })
    };
    m.put_snapshot(&snap(a, 3)).await.unwrap();
    m.put_snapshot(&snap(b, 1)).await.unwrap();
    m.put_snapshot(&snap(a, 5)).await.unwrap();
    let all = m.snapshots().await.unwrap();
    assert_eq!(all.len(), 2);
    let mut ids = vec![a, b];
    ids.sort();
    assert_eq!(all.iter().map(|s| s.agent_id).collect::<Vec<_>>(), ids);
    assert_eq!(m.snapshot(a).await.unwrap().unwrap().len(), 5);
    assert!(m.snapshot(AgentId::new()).await.unwrap().is_none());
}

/// Deleting snapshots removes exactly the agents named, counts only those that had one,
/// and is idempotent; a later snapshot of a deleted agent is stored again.
pub async fn metric_snapshots_delete(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    let (a, b, c) = (AgentId::new(), AgentId::new(), AgentId::new());
    let snap = |agent: AgentId| {
        PackedSnapshot::pack(&CardinalitySnapshot {
            agent_id: agent,
            source: SnapshotSource::Input,
            host: format!("h-{agent}"),
            taken_at: backend.clock().now(),
            interval_secs: 60,
            series: vec![SnapshotSeries {
                metric: "node_load1".to_owned(),
                labels: BTreeMap::new(),
                points: 4,
                value: None,
            }],
        })
    };
    for agent in [a, b, c] {
        m.put_snapshot(&snap(agent)).await.unwrap();
    }
    assert_eq!(m.delete_snapshots(&[]).await.unwrap(), 0);
    assert_eq!(
        m.delete_snapshots(&[a, c, AgentId::new()]).await.unwrap(),
        2
    );
    assert_eq!(m.delete_snapshots(&[a, c]).await.unwrap(), 0);
    let left = m.snapshots().await.unwrap();
    assert_eq!(left.iter().map(|s| s.agent_id).collect::<Vec<_>>(), vec![b]);
    assert!(m.snapshot(a).await.unwrap().is_none());
    assert_eq!(m.snapshot(b).await.unwrap().unwrap().points[0], 4);
    m.put_snapshot(&snap(a)).await.unwrap();
    assert_eq!(m.snapshots().await.unwrap().len(), 2);
}

/// One current snapshot per agent and source: a shipped output replaces only the agent's
/// shipped output, the input only its input; `snapshot` is the input; the list holds
/// both, ordered by agent then source (input first); deleting an agent removes all its
/// sources and counts each.
pub async fn metric_snapshots_per_source(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    let (a, b) = (AgentId::new(), AgentId::new());
    let snap = |agent: AgentId, source: SnapshotSource, n: usize| {
        PackedSnapshot::pack(&CardinalitySnapshot {
            agent_id: agent,
            source,
            host: format!("h-{agent}"),
            taken_at: backend.clock().now(),
            interval_secs: 60,
            series: (0..n)
                .map(|i| SnapshotSeries {
                    metric: "process.memory.usage".to_owned(),
                    labels: BTreeMap::from([("process.pid".to_owned(), i.to_string())]),
                    points: 6,
                    value: None,
                })
                .collect(),
        })
    };
    m.put_snapshot(&snap(a, SnapshotSource::Shipped, 2))
        .await
        .unwrap();
    // A shipped output alone is no input.
    assert!(m.snapshot(a).await.unwrap().is_none());
    m.put_snapshot(&snap(a, SnapshotSource::Input, 9))
        .await
        .unwrap();
    m.put_snapshot(&snap(b, SnapshotSource::Input, 4))
        .await
        .unwrap();
    // Replacing the shipped output leaves the input alone, and the other way round.
    m.put_snapshot(&snap(a, SnapshotSource::Shipped, 3))
        .await
        .unwrap();
    let input = m.snapshot(a).await.unwrap().unwrap();
    assert_eq!(input.source, SnapshotSource::Input);
    assert_eq!(input.len(), 9);
    m.put_snapshot(&snap(a, SnapshotSource::Input, 8))
        .await
        .unwrap();
    let all = m.snapshots().await.unwrap();
    let mut expected = vec![
        (a, SnapshotSource::Input, 8),
        (a, SnapshotSource::Shipped, 3),
        (b, SnapshotSource::Input, 4),
    ];
    expected.sort_by_key(|(agent, source, _)| (*agent, *source));
    assert_eq!(
        all.iter()
            .map(|s| (s.agent_id, s.source, s.len()))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(all, {
        let mut v = vec![
            snap(a, SnapshotSource::Input, 8),
            snap(a, SnapshotSource::Shipped, 3),
            snap(b, SnapshotSource::Input, 4),
        ];
        v.sort_by_key(|s| (s.agent_id, s.source));
        // Times are the backend clock's at each call; compare the rest.
        for (stored, want) in all.iter().zip(v.iter_mut()) {
            want.taken_at = stored.taken_at;
        }
        v
    });
    // Retention removes every source of the agents named, each counted.
    assert_eq!(m.delete_snapshots(&[a]).await.unwrap(), 2);
    assert_eq!(m.delete_snapshots(&[a]).await.unwrap(), 0);
    let left = m.snapshots().await.unwrap();
    assert_eq!(
        left.iter()
            .map(|s| (s.agent_id, s.source))
            .collect::<Vec<_>>(),
        vec![(b, SnapshotSource::Input)]
    );
    m.put_snapshot(&snap(b, SnapshotSource::Shipped, 1))
        .await
        .unwrap();
    assert_eq!(m.delete_snapshots(&[a, b]).await.unwrap(), 2);
    assert!(m.snapshots().await.unwrap().is_empty());
}

/// Snapshot versions: one per stored snapshot (agent and source), ordered by agent id then
/// source, with its `taken_at` and interval; a changed snapshot gets a new version and the
/// others (the other source of the same agent included) keep theirs; `snapshots_of` hands
/// each body out with the version `snapshot_versions` reports; a deleted agent leaves both
/// reads with all its sources.
pub async fn metric_snapshot_versions_follow_writes(backend: &dyn TestBackend) {
    let m = backend.stores().metrics;
    assert!(m.snapshot_versions().await.unwrap().is_empty());
    assert!(
        m.snapshots_of(&[(AgentId::new(), SnapshotSource::Input)])
            .await
            .unwrap()
            .is_empty()
    );
    let (a, b) = (AgentId::new(), AgentId::new());
    let taken_at = DateTime::from_timestamp(backend.clock().now().timestamp(), 0).unwrap();
    let snap = |agent: AgentId, source: SnapshotSource, points: u64| {
        PackedSnapshot::pack(&CardinalitySnapshot {
            agent_id: agent,
            source,
            host: format!("h-{agent}"),
            taken_at,
            interval_secs: 60,
            series: vec![SnapshotSeries {
                metric: "node_load1".to_owned(),
                labels: BTreeMap::from([("cpu".to_owned(), "0".to_owned())]),
                points,
                value: None,
            }],
        })
    };
    let (input, shipped) = (SnapshotSource::Input, SnapshotSource::Shipped);
    m.put_snapshot(&snap(a, input, 1)).await.unwrap();
    m.put_snapshot(&snap(b, input, 1)).await.unwrap();
    m.put_snapshot(&snap(a, shipped, 1)).await.unwrap();
    let mut keys = vec![(a, input), (a, shipped), (b, input)];
    keys.sort();
    let first = m.snapshot_versions().await.unwrap();
    assert_eq!(
        first
            .iter()
            .map(|v| (v.agent_id, v.source))
            .collect::<Vec<_>>(),
        keys
    );
    assert!(
        first
            .iter()
            .all(|v| v.taken_at == taken_at && v.interval_secs == 60)
    );

    // Bodies come with the versions listed, ordered, unknown keys skipped, repeats once.
    let got = m
        .snapshots_of(&[
            (b, input),
            (AgentId::new(), input),
            (a, shipped),
            (a, input),
            (b, input),
            (b, shipped),
        ])
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|v| (v.snapshot.agent_id, v.snapshot.source))
            .collect::<Vec<_>>(),
        keys
    );
    for (listed, fetched) in first.iter().zip(&got) {
        assert_eq!(listed.version, fetched.version);
        assert_eq!(fetched.snapshot, snap(listed.agent_id, listed.source, 1));
    }
    assert!(m.snapshots_of(&[]).await.unwrap().is_empty());

    // A new shipped snapshot of `a` changes that version only.
    m.put_snapshot(&snap(a, shipped, 2)).await.unwrap();
    let second = m.snapshot_versions().await.unwrap();
    let version = |list: &[SnapshotVersion], agent: AgentId, source: SnapshotSource| {
        list.iter()
            .find(|v| v.agent_id == agent && v.source == source)
            .map(|v| v.version)
    };
    assert_ne!(version(&second, a, shipped), version(&first, a, shipped));
    assert_eq!(version(&second, a, input), version(&first, a, input));
    assert_eq!(version(&second, b, input), version(&first, b, input));
    let fetched = m.snapshots_of(&[(a, shipped)]).await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(Some(fetched[0].version), version(&second, a, shipped));
    assert_eq!(fetched[0].snapshot.points[0], 2);

    // Deleted: every source of `a` leaves both reads; stored again, it is listed again.
    assert_eq!(m.delete_snapshots(&[a]).await.unwrap(), 2);
    let third = m.snapshot_versions().await.unwrap();
    assert_eq!(
        third
            .iter()
            .map(|v| (v.agent_id, v.source))
            .collect::<Vec<_>>(),
        vec![(b, input)]
    );
    assert!(
        m.snapshots_of(&[(a, input), (a, shipped)])
            .await
            .unwrap()
            .is_empty()
    );
    m.put_snapshot(&snap(a, input, 3)).await.unwrap();
    assert_eq!(m.snapshot_versions().await.unwrap().len(), 2);
}

/// Deployments are created with their first tasks and updated by compare-and-set.
pub async fn deployment_create_and_compare_and_set(backend: &dyn TestBackend) {
    let stores = backend.stores();
    let agent = AgentId::new();
    let pipeline = PipelineRef::new("topk");
    let rendered = TemplateRegistry::builtin()
        .render(&pipeline, &RenderContext::default())
        .unwrap();
    let now = backend.clock().now();
    let mut deployment = Deployment {
        id: DeploymentId::new(),
        name: "fleet topk".to_owned(),
        pipeline,
        rendered,
        selector: TargetSelector::default(),
        experiment_id: None,
        strategy: RolloutStrategy::default(),
        state: DeploymentState::Rolling,
        targets: Vec::new(),
        version: 1,
        created_by: "conformance".to_owned(),
        created_at: now,
        updated_at: now,
        last_error: None,
        rollback_pipeline: None,
    };
    let mut first = snapshot_task(agent);
    first.payload = phoenix_core::task::TaskPayload::ReplacePipeline {
        experiment_id: None,
        deployment_id: Some(deployment.id),
        op_seq: 1,
        pipeline: deployment.rendered.clone(),
    };
    let results = stores
        .deployments
        .create_deployment(&deployment, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(results, vec![EnqueueResult::Enqueued { id: first.id }]);
    assert!(matches!(
        stores.deployments.create_deployment(&deployment, &[]).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        stores
            .deployments
            .get_deployment(deployment.id)
            .await
            .unwrap(),
        deployment
    );
    deployment.version = 2;
    deployment.state = DeploymentState::Paused;
    stores
        .deployments
        .update_deployment(&deployment, true, &[])
        .await
        .unwrap();
    let cancelled = stores
        .queue
        .list(
            &TaskFilter {
                deployment_id: Some(deployment.id),
                ..TaskFilter::default()
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(cancelled.items[0].state, TaskState::Cancelled);
    // Stale update.
    let mut stale = deployment.clone();
    stale.state = DeploymentState::Rolling;
    assert!(matches!(
        stores
            .deployments
            .update_deployment(&stale, false, &[])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        stores
            .deployments
            .get_deployment(deployment.id)
            .await
            .unwrap()
            .state,
        DeploymentState::Paused
    );
    let listed = stores
        .deployments
        .list_deployments(&PageRequest::first())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(matches!(
        stores.deployments.get_deployment(DeploymentId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}
