//! Inputs no store can hold alike (NUL characters, control characters, over-long text,
//! integers beyond `bigint`, times beyond the clock window, absurd agent figures) are
//! refused by the facade with the same field errors on every backend, and change nothing.

use std::collections::BTreeMap;

use chrono::Duration;
use phoenix_core::agent::{ActivePipeline, AgentRegistration, Heartbeat, PipelineHealth};
use phoenix_core::auth::Role;
use phoenix_core::experiment::TargetSelector;
use phoenix_core::inputs::MAX_STORABLE_INT;
use phoenix_core::measure::{CardinalitySnapshot, HostStats, PackedSnapshot, SnapshotSeries};
use phoenix_core::page::PageRequest;
use phoenix_core::phoenix::{DeploymentRequest, TaskReport};
use phoenix_core::pipeline::PipelineRef;
use phoenix_core::store::{AppendReport, ExperimentFilter};
use phoenix_core::task::{LeaseRef, RemovalMode, TaskState};
use phoenix_core::{PhoenixError, deployment::RolloutStrategy};

use crate::TestBackend;
use crate::fixtures::{enroll, new_experiment, operator, phoenix, sample, snapshot_task};

/// The paths of a refusal; panics unless it is a field-error refusal.
fn refused<T: std::fmt::Debug>(result: Result<T, PhoenixError>) -> Vec<String> {
    match result {
        Err(PhoenixError::Validation(errors)) => {
            errors.errors.into_iter().map(|e| e.path).collect()
        }
        other => panic!("expected field errors, got {other:?}"),
    }
}

/// Experiments, tokens, agents and deployments: text no store can hold alike is refused.
pub async fn inputs_bad_text_refused_alike(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let mut request = new_experiment("nul\0name");
    request.description = "line one\nline two\0".to_owned();
    request.spec.targets.labels = BTreeMap::from([("env\0".to_owned(), "prod\u{7}".to_owned())]);
    request.spec.targets.hosts = vec!["x".repeat(257)];
    request.spec.critical_processes = vec!["ssh\u{1b}d".to_owned()];
    assert_eq!(
        refused(p.create_experiment(request, &operator()).await),
        [
            "name",
            "description",
            "spec.critical_processes[0]",
            "spec.targets.labels.env\\0",
            "spec.targets.labels.env\\0",
            "spec.targets.hosts[0]",
        ]
    );
    let page = p
        .experiments(&ExperimentFilter::default(), &PageRequest::with_limit(10))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing stored: {:?}", page.items);

    assert_eq!(
        refused(p.create_token("ci\0", Role::Viewer, "conformance").await),
        ["name"]
    );
    assert!(
        backend
            .stores()
            .tokens
            .list_tokens()
            .await
            .unwrap()
            .is_empty()
    );

    let registration = AgentRegistration {
        host: "web\0".to_owned(),
        labels: BTreeMap::from([("k".to_owned(), "v\0".to_owned())]),
        version: "1".to_owned(),
        capabilities: vec!["native\0".to_owned()],
        os: "linux".to_owned(),
    };
    assert_eq!(
        refused(p.enroll(registration).await),
        ["host", "labels.k", "capabilities[0]"]
    );
    assert!(p.fleet().await.unwrap().is_empty(), "no agent enrolled");

    let created = p
        .create_experiment(new_experiment("kept"), &operator())
        .await
        .unwrap();
    assert_eq!(
        refused(
            p.stop(created.id, &operator(), Some("because\0".to_owned()))
                .await
        ),
        ["reason"]
    );
    assert_eq!(
        refused(
            p.rollback(
                created.id,
                RemovalMode::Instant,
                &operator(),
                Some("x".repeat(1025))
            )
            .await
        ),
        ["reason"]
    );
    assert_eq!(
        p.experiment(created.id).await.unwrap(),
        created,
        "unchanged"
    );

    let deployment = DeploymentRequest {
        name: "roll\0out".to_owned(),
        pipeline: Some(PipelineRef::new("baseline")),
        rollback_to: None,
        selector: TargetSelector {
            labels: BTreeMap::new(),
            hosts: vec!["web\u{7f}".to_owned()],
        },
        experiment_id: None,
        strategy: RolloutStrategy::default(),
    };
    assert_eq!(
        refused(p.create_deployment(deployment, &operator()).await),
        ["name", "selector.hosts[0]"]
    );
    assert!(
        p.deployments(&PageRequest::with_limit(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Agent reports: figures beyond their bounds, integers beyond `bigint`, times outside
/// the clock window and text no store can hold are refused; the largest storable
/// sequence number is stored by every backend.
pub async fn inputs_absurd_agent_reports_refused_alike(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    let now = backend.clock().now();

    let heartbeat = Heartbeat {
        resources: HostStats {
            memory_used_bytes: u64::MAX,
            memory_total_bytes: 1 << 30,
            process_count: 1 << 23,
            cpu_pct: 250.0,
            ..HostStats::default()
        },
        pipelines: vec![ActivePipeline {
            name: "fleet".to_owned(),
            experiment_id: None,
            template: "baseline".to_owned(),
            config_hash: "hash\0".to_owned(),
            health: PipelineHealth::Unhealthy,
            detail: Some("crashed\0".to_owned()),
        }],
        started_at: Some(now + Duration::days(2)),
    };
    assert_eq!(
        refused(p.heartbeat(agent.id, heartbeat).await),
        [
            "resources.cpu_pct",
            "resources.memory_used_bytes",
            "resources.process_count",
            "pipelines[0].config_hash",
            "pipelines[0].detail",
            "started_at"
        ]
    );
    // Nothing changes but the refused-report counter.
    let after = p.agent(agent.id).await.unwrap();
    assert_eq!(after.refused.count, 1);
    assert_eq!(
        phoenix_core::agent::Agent {
            refused: agent.refused.clone(),
            ..after
        },
        agent,
        "unchanged"
    );

    let experiment = p
        .create_experiment(new_experiment("measured"), &operator())
        .await
        .unwrap();
    let mut overflow = sample(now, experiment.id, agent.id, 1);
    overflow.seq = MAX_STORABLE_INT + 1;
    let mut absurd = sample(now, experiment.id, agent.id, 2);
    absurd.baseline.series = u64::MAX;
    absurd.candidate.fidelity.memory_pct = Some(101.0);
    absurd.interval_secs = 0;
    absurd.baseline.series_by_metric = BTreeMap::from([("cpu\0".to_owned(), 1)]);
    let mut ancient = sample(now, experiment.id, agent.id, 3);
    ancient.taken_at = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    assert_eq!(
        refused(
            p.ingest_samples(agent.id, &[overflow, absurd, ancient])
                .await
        ),
        [
            "samples[0].seq",
            "samples[1].interval_secs",
            "samples[1].baseline.series",
            "samples[1].baseline.series_by_metric.cpu\\0",
            "samples[1].candidate.fidelity.memory_pct",
            "samples[2].taken_at",
        ]
    );
    assert!(
        backend
            .stores()
            .metrics
            .samples(experiment.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let snapshot = CardinalitySnapshot {
        agent_id: agent.id,
        source: phoenix_core::measure::SnapshotSource::Input,
        host: "web-1".to_owned(),
        taken_at: now + Duration::hours(1),
        interval_secs: 10,
        series: vec![SnapshotSeries {
            metric: "process.cpu.time\0".to_owned(),
            labels: BTreeMap::from([("process.pid".to_owned(), "1\0".to_owned())]),
            points: u64::MAX,
            value: None,
        }],
    };
    assert_eq!(
        refused(
            p.report_metrics(agent.id, &[], Some((&snapshot).into()))
                .await
        ),
        [
            "snapshot.taken_at",
            "snapshot.series[0].metric",
            "snapshot.series[0].labels.process.pid",
            "snapshot.series[0].points"
        ]
    );
    // Packed (as agents send it), the same faults are refused, each string's once.
    let packed = PackedSnapshot::pack(&snapshot);
    assert_eq!(
        refused(
            p.report_metrics(agent.id, &[], Some((&packed).into()))
                .await
        ),
        [
            "packed_snapshot.taken_at",
            "packed_snapshot.strings[0]",
            "packed_snapshot.strings[2]",
            "packed_snapshot.points[0]"
        ]
    );
    // And the packed form's own shape: columns of one entry per series, indexes in
    // range, keys ascending and distinct, every string used once.
    let mut shape = PackedSnapshot::pack(&CardinalitySnapshot {
        taken_at: now,
        series: vec![SnapshotSeries {
            metric: "up".to_owned(),
            labels: BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned()),
            ]),
            points: 1,
            value: None,
        }],
        ..snapshot.clone()
    });
    shape.points.push(1);
    assert_eq!(
        refused(p.report_metrics(agent.id, &[], Some((&shape).into())).await),
        ["packed_snapshot.points"]
    );
    shape.points.pop();
    shape.labels[0] = vec![3, 4, 1, 2];
    shape.strings.push("unused".to_owned());
    shape.strings.push("up".to_owned());
    assert_eq!(
        refused(p.report_metrics(agent.id, &[], Some((&shape).into())).await),
        [
            "packed_snapshot.labels[0]",
            "packed_snapshot.strings[5]",
            "packed_snapshot.strings[6]"
        ]
    );
    assert_eq!(
        backend.stores().metrics.snapshot(agent.id).await.unwrap(),
        None
    );
    // Heartbeat, samples, four reports: six refused reports counted.
    assert_eq!(p.agent(agent.id).await.unwrap().refused.count, 6);

    // The bounds are what every store holds: the largest sequence number is stored alike.
    let mut largest = sample(now, experiment.id, agent.id, 1);
    largest.seq = MAX_STORABLE_INT;
    largest.taken_at = now;
    assert_eq!(
        backend
            .stores()
            .metrics
            .append_samples(std::slice::from_ref(&largest))
            .await
            .unwrap(),
        AppendReport {
            inserted: 1,
            duplicates: 0
        }
    );
    assert_eq!(
        backend
            .stores()
            .metrics
            .samples(experiment.id, 10)
            .await
            .unwrap(),
        [largest]
    );
}

/// Task reports whose error or result no store can hold are refused; the lease is kept.
pub async fn inputs_task_reports_refused_alike(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    backend
        .stores()
        .queue
        .enqueue(&[snapshot_task(agent.id)])
        .await
        .unwrap();
    let leased = p
        .wait_for_tasks(agent.id, 1, std::time::Duration::ZERO)
        .await
        .unwrap();
    let [leased] = leased.as_slice() else {
        panic!("one task claimed: {leased:?}");
    };
    let lease = LeaseRef {
        task_id: leased.task.id,
        token: leased.lease_token,
    };
    let failed = TaskReport::Failed {
        error: "collector exited\0".to_owned(),
        retryable: true,
    };
    assert_eq!(
        refused(p.report_task(agent.id, lease, failed).await),
        ["error"]
    );
    let long = TaskReport::Failed {
        error: "e".repeat(4097),
        retryable: true,
    };
    assert_eq!(
        refused(p.report_task(agent.id, lease, long).await),
        ["error"]
    );
    let nul_result = TaskReport::Succeeded {
        result: Some(serde_json::json!({"series": 3, "note": ["a\u{0}b"]})),
    };
    assert_eq!(
        refused(p.report_task(agent.id, lease, nul_result).await),
        ["result"]
    );
    let task = backend.stores().queue.get(leased.task.id).await.unwrap();
    assert_eq!(task.state, TaskState::Leased);
    assert_eq!(task.attempts, leased.task.attempts);
    assert_eq!(task.last_error, None);
    // The lease still holds: a storable report succeeds.
    let done = TaskReport::Succeeded {
        result: Some(serde_json::json!({"series": 3, "note": "tab\tand\nnewline"})),
    };
    let receipt = p.report_task(agent.id, lease, done).await.unwrap();
    assert_eq!(receipt.task.state, TaskState::Succeeded);
}

/// Samples in bounds but impossible for the host that sent them (more series than its
/// snapshot allows, or far above its own recent samples) are refused alike, change
/// nothing, and count on the agent.
pub async fn inputs_implausible_samples_refused_alike(backend: &dyn TestBackend) {
    use phoenix_core::plausibility::{SNAPSHOT_FACTOR, SNAPSHOT_SLACK_SERIES};
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    let experiment = p
        .create_experiment(new_experiment("plausible"), &operator())
        .await
        .unwrap();
    p.start(experiment.id, &operator()).await.unwrap();
    let now = backend.clock().now();
    let snapshot = CardinalitySnapshot {
        agent_id: agent.id,
        source: phoenix_core::measure::SnapshotSource::Input,
        host: "web-1".to_owned(),
        taken_at: now,
        interval_secs: 10,
        series: (0..200)
            .map(|i| SnapshotSeries {
                metric: format!("process.cpu.time{i}"),
                labels: BTreeMap::new(),
                points: 1,
                value: None,
            })
            .collect(),
    };
    let limit = 200 * SNAPSHOT_FACTOR + SNAPSHOT_SLACK_SERIES;
    // Five honest samples (baseline ~1,003 series, candidate 100 series and 200 points).
    let honest: Vec<_> = (1..=5)
        .map(|seq| sample(now, experiment.id, agent.id, seq))
        .collect();
    p.report_metrics(agent.id, &honest, Some((&snapshot).into()))
        .await
        .unwrap();
    let stored = || async {
        backend
            .stores()
            .metrics
            .samples(experiment.id, 100)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(stored().await, 5);

    // A million baseline series: beyond the snapshot and the agent's own history.
    let mut liar = sample(now, experiment.id, agent.id, 6);
    liar.baseline.series = 1_000_000;
    let errors = match p.report_metrics(agent.id, &[liar], None).await {
        Err(PhoenixError::Validation(e)) => e.errors,
        other => panic!("expected field errors, got {other:?}"),
    };
    let found: Vec<(&str, bool, bool)> = errors
        .iter()
        .map(|e| {
            (
                e.path.as_str(),
                e.message.contains("snapshot"),
                e.message.contains("median"),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("samples[0].baseline.series", true, false),
            ("samples[0].baseline.series", false, true)
        ]
    );
    // Just above the snapshot's allowance: the snapshot check alone.
    let mut over = sample(now, experiment.id, agent.id, 7);
    over.candidate.series = limit + 1;
    assert_eq!(
        refused(p.ingest_samples(agent.id, &[over]).await),
        ["samples[0].candidate.series"]
    );
    // 100 x the median data points is accepted, one more is not.
    let mut points = sample(now, experiment.id, agent.id, 8);
    points.candidate.points = 200 * 100 + 1;
    assert_eq!(
        refused(p.ingest_samples(agent.id, &[points.clone()]).await),
        ["samples[0].candidate.points"]
    );
    assert_eq!(stored().await, 5, "nothing stored");
    let read = p.agent(agent.id).await.unwrap();
    assert_eq!(read.refused.count, 3);
    assert!(
        read.refused
            .last_reason
            .as_deref()
            .unwrap()
            .starts_with("samples[0].candidate.points: implausible"),
        "{:?}",
        read.refused.last_reason
    );
    points.candidate.points = 200 * 100;
    p.ingest_samples(agent.id, &[points]).await.unwrap();
    assert_eq!(stored().await, 6);
}

/// The churn figures of a sample (`active_series`, `hour_distinct_series`) are stored with
/// it and read back intact on every backend, absent ones included (older agents); one
/// below the sample's own series or above its series plus the agent's tracking cap is
/// refused with the same field errors, and the report changes nothing but the refusal
/// counter.
pub async fn inputs_churn_figures_round_trip_and_bounded(backend: &dyn TestBackend) {
    use phoenix_core::cost::churn::MAX_TRACKED_SERIES;
    let p = phoenix(backend);
    let agent = enroll(&p, "web-1").await;
    let experiment = p
        .create_experiment(new_experiment("churn"), &operator())
        .await
        .unwrap();
    p.start(experiment.id, &operator()).await.unwrap();
    let now = backend.clock().now();
    let cap = MAX_TRACKED_SERIES as u64;
    let mut churning = sample(now, experiment.id, agent.id, 1);
    churning.baseline.active_series = Some(churning.baseline.series);
    churning.baseline.hour_distinct_series = Some(churning.baseline.series + cap);
    churning.candidate.active_series = Some(500);
    churning.candidate.hour_distinct_series = Some(1_200);
    let older_agent = sample(now, experiment.id, agent.id, 2);
    assert_eq!(older_agent.candidate.active_series, None);
    p.ingest_samples(agent.id, &[churning.clone(), older_agent.clone()])
        .await
        .unwrap();
    let stored = || async {
        backend
            .stores()
            .metrics
            .samples(experiment.id, 100)
            .await
            .unwrap()
    };
    assert_eq!(stored().await, [churning, older_agent], "stored intact");

    let mut below = sample(now, experiment.id, agent.id, 3);
    below.candidate.active_series = Some(below.candidate.series - 1);
    below.candidate.hour_distinct_series = Some(below.candidate.series);
    let mut above = sample(now, experiment.id, agent.id, 4);
    above.baseline.hour_distinct_series = Some(above.baseline.series + cap + 1);
    above.candidate.active_series = Some(u64::MAX);
    assert_eq!(
        refused(p.ingest_samples(agent.id, &[below, above]).await),
        [
            "samples[0].candidate.active_series",
            "samples[1].baseline.hour_distinct_series",
            "samples[1].candidate.active_series",
        ]
    );
    assert_eq!(
        stored().await.len(),
        2,
        "nothing of the refused report stored"
    );
    assert_eq!(p.agent(agent.id).await.unwrap().refused.count, 1);
}
