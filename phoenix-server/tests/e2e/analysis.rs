//! KPIs, cost, cardinality and pipelines through the API, on data an agent reported.

use std::collections::BTreeMap;

use chrono::Duration;
use phoenix_client::api::ErrorCode;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::analysis::Undefined;
use phoenix_client::api::experiment::{KpiName, Phase};
use phoenix_client::api::measure::{
    CardinalitySnapshot, HostStats, MeasurementSample, MetricsReport, PackedSnapshot,
    SnapshotSeries, VariantStats,
};
use phoenix_client::api::pipeline::{PipelineRef, PreviewRequest, RenderRequest};
use phoenix_client::api::token::Role;

use crate::harness::{TestServer, new_experiment};

fn stats(series: u64) -> VariantStats {
    VariantStats {
        series,
        points: series,
        bytes: series * 40,
        ..VariantStats::default()
    }
}

fn snapshot(agent: uuid::Uuid, at: chrono::DateTime<chrono::Utc>) -> CardinalitySnapshot {
    let mut series = Vec::new();
    for pid in 0..50 {
        for metric in ["process.cpu.time", "process.memory.usage"] {
            series.push(SnapshotSeries {
                metric: metric.to_owned(),
                labels: BTreeMap::from([
                    ("process.pid".to_owned(), pid.to_string()),
                    (
                        "process.executable.name".to_owned(),
                        format!("exe{}", pid % 5),
                    ),
                    ("service.name".to_owned(), "web".to_owned()),
                ]),
                points: 1,
                value: None,
            });
        }
    }
    CardinalitySnapshot {
        agent_id: agent,
        source: phoenix_client::api::measure::SnapshotSource::Input,
        host: "kpi-1".to_owned(),
        taken_at: at,
        interval_secs: 10,
        series,
    }
}

fn preview_request(
    template: &str,
    exposition: Option<String>,
    agent_id: Option<uuid::Uuid>,
) -> PreviewRequest {
    PreviewRequest {
        pipeline: PipelineRef::new(template),
        critical_processes: Vec::new(),
        critical_metrics: Vec::new(),
        exposition,
        interval_secs: None,
        agent_id,
        pricing_model: None,
    }
}

#[tokio::test]
async fn reported_measurements_become_kpis_cost_and_cardinality() {
    let server = TestServer::start().await;
    let operator = server.user(Role::Operator).await;
    let viewer = server.user(Role::Viewer).await;
    let agent = server.agent("kpi-1").await;
    let exp = operator
        .create_experiment(&new_experiment("kpis"))
        .await
        .unwrap();
    operator.start_experiment(exp.id).await.unwrap();
    agent.ack_next().await;
    let running = viewer.get_experiment(exp.id).await.unwrap();
    assert_eq!(running.phase, Phase::Running);

    // Nothing measured yet: KPIs say why they have no value.
    let empty = viewer.experiment_kpis(exp.id).await.unwrap();
    assert_eq!(empty.kpis.samples.judged, 0);
    assert!(empty.kpis.kpis.iter().all(|k| k.value.is_none()));
    assert!(
        empty
            .kpis
            .kpis
            .iter()
            .any(|k| k.undefined == Some(Undefined::NoSamples))
    );

    // The agent reports 6 samples (baseline 400 series, candidate 40) and a snapshot.
    let start = running.running_since.unwrap();
    let samples: Vec<MeasurementSample> = (1..=6)
        .map(|seq| MeasurementSample {
            experiment_id: exp.id,
            agent_id: agent.id,
            seq,
            taken_at: start + Duration::seconds(i64::try_from(seq).unwrap() * 10),
            interval_secs: 10,
            baseline: stats(400),
            candidate: stats(40),
            host: HostStats::default(),
            queries: None,
        })
        .collect();
    let receipt = agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: samples.clone(),
            snapshot: Some(snapshot(agent.id, start)),
        })
        .await
        .unwrap();
    assert_eq!((receipt.inserted, receipt.duplicates), (6, 0));
    assert!(receipt.snapshot_stored);
    // A retried report is not new data.
    let again = agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples,
            snapshot: None,
        })
        .await
        .unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 6));
    // Samples for an experiment that does not target the agent are refused with paths.
    let other = operator
        .create_experiment(&new_experiment("other"))
        .await
        .unwrap();
    let mut foreign = MetricsReport::default();
    foreign.samples.push(MeasurementSample {
        experiment_id: other.id,
        agent_id: agent.id,
        seq: 1,
        taken_at: start,
        interval_secs: 10,
        baseline: stats(1),
        candidate: stats(1),
        host: HostStats::default(),
        queries: None,
    });
    let refused = agent.client.report_metrics(&foreign).await.unwrap_err();
    assert_eq!(refused.status(), Some(422));

    let report = viewer.experiment_kpis(exp.id).await.unwrap();
    assert_eq!(report.kpis.samples.judged, 6);
    let cardinality = report
        .kpis
        .kpis
        .iter()
        .find(|k| k.kpi == KpiName::CardinalityReductionPct)
        .unwrap();
    assert!((cardinality.value.unwrap() - 90.0).abs() < 1e-9);
    assert_eq!(report.kpis.per_host.len(), 1);

    let cost = viewer.cost_analysis(exp.id, Some(100)).await.unwrap();
    let measured = cost.measured.expect("priced");
    assert!(measured.baseline.quantity > measured.candidate.quantity);
    let fleet = cost.fleet.expect("projected");
    assert_eq!(fleet.fleet_hosts, 100);
    assert_eq!(fleet.measured_hosts, 1);

    let card = viewer
        .cardinality(&["metric", "label:process.executable.name"], Some(10), None)
        .await
        .unwrap();
    assert_eq!(card.hosts, 1);
    assert_eq!(card.total_series, 100);
    assert_eq!(card.breakdowns.len(), 2);
    let bad = viewer.cardinality(&["sideways"], None, None).await;
    assert!(bad.is_ok() || bad.unwrap_err().code() == Some(ErrorCode::BadRequest));
    let unknown_model = viewer
        .cost_flow(Some("no-such-model"), &[])
        .await
        .unwrap_err();
    assert_eq!(unknown_model.status(), Some(422));
    let flow = viewer.cost_flow(None, &["metric"]).await.unwrap();
    assert_eq!(flow.total_series, 100);
    let total: u32 = flow.cost_flow.flows[0]
        .groups
        .iter()
        .map(|g| g.basis_points)
        .sum();
    assert_eq!(total, 10_000);

    // Time passes; the run is judged from these samples.
    server.advance(Duration::seconds(61));
    agent.client.heartbeat(&Heartbeat::default()).await.unwrap();
    server.tick().await;
    let judged = viewer.experiment_kpis(exp.id).await.unwrap();
    assert_eq!(judged.phase, Phase::Completed);
    assert!(judged.verdict.is_some());
    server.stop().await;
}

#[tokio::test]
async fn templates_render_validate_and_preview() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let templates = viewer.templates().await.unwrap();
    let topk = templates
        .items
        .iter()
        .find(|t| t.name == "topk")
        .expect("topk template");
    assert!(!topk.params.is_empty());

    let render = viewer
        .render_pipeline(&RenderRequest {
            pipeline: PipelineRef::new("topk"),
            critical_processes: vec!["postgres".to_owned()],
            critical_metrics: Vec::new(),
        })
        .await
        .unwrap();
    assert!(render.validation.valid, "{:?}", render.validation.issues);
    assert!(!render.rendered.collector_yaml.is_empty());

    // Bad parameters: 422 with the parameter's path.
    let err = viewer
        .render_pipeline(&RenderRequest {
            pipeline: PipelineRef::new("topk").with_param("k", serde_json::json!(-5)),
            critical_processes: Vec::new(),
            critical_metrics: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    let fields = err.api_error().unwrap().details.fields.clone().unwrap();
    assert!(fields.iter().any(|f| f.path.contains("k")), "{fields:?}");

    let valid = viewer
        .validate_pipeline(&render.rendered.collector_yaml)
        .await
        .unwrap();
    assert!(valid.valid);
    let invalid = viewer
        .validate_pipeline("receivers: [unclosed")
        .await
        .unwrap();
    assert!(!invalid.valid);
    assert!(!invalid.issues.is_empty());

    let mut exposition = String::new();
    for pid in 0..30 {
        exposition.push_str(&format!(
            "process_cpu_time{{process_pid=\"{pid}\",process_executable_name=\"p{pid}\"}} {}\n",
            pid * 10
        ));
    }
    let preview = viewer
        .preview_pipeline(&preview_request("baseline", Some(exposition), None))
        .await
        .unwrap();
    assert_eq!(preview.input.series, 30);
    assert!(preview.cost.is_none() && preview.snapshot.is_none());
    let missing = viewer
        .preview_pipeline(&preview_request("topk", None, None))
        .await
        .unwrap_err();
    assert_eq!(missing.status(), Some(422));
    server.stop().await;
}

/// 50 processes with CPU and memory values, as a current agent sends its snapshot.
fn snapshot_with_values(
    agent: uuid::Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> CardinalitySnapshot {
    let mut s = snapshot(agent, at);
    for (i, series) in s.series.iter_mut().enumerate() {
        series.points = 6;
        series.value = Some(if series.metric == "process.cpu.time" {
            (i * i) as f64
        } else {
            1e6 * (i + 1) as f64
        });
    }
    s.interval_secs = 60;
    s
}

#[tokio::test]
async fn preview_on_an_agents_snapshot_priced() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let agent = server.agent("kpi-1").await;
    let at = agent
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap()
        .server_time;
    let status = |e: phoenix_client::ClientError| (e.status(), e);
    let fields_of = |e: &phoenix_client::ClientError| {
        e.api_error()
            .and_then(|a| a.details.fields.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.path)
            .collect::<Vec<_>>()
    };

    // Unknown agent: 404. No snapshot yet: 409 saying so.
    let (code, _) = status(
        viewer
            .preview_pipeline(&preview_request("topk", None, Some(uuid::Uuid::now_v7())))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Some(404));
    let (code, e) = status(
        viewer
            .preview_pipeline(&preview_request("topk", None, Some(agent.id)))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Some(409));
    assert!(e.to_string().contains("no cardinality snapshot"), "{e}");

    // Both sources, or an interval with an agent: 422 at the fields.
    let both = viewer
        .preview_pipeline(&preview_request(
            "topk",
            Some("up 1\n".to_owned()),
            Some(agent.id),
        ))
        .await
        .unwrap_err();
    assert_eq!(both.status(), Some(422));
    assert_eq!(fields_of(&both), ["exposition", "agent_id"]);
    let mut with_interval = preview_request("topk", None, Some(agent.id));
    with_interval.interval_secs = Some(10);
    let e = viewer.preview_pipeline(&with_interval).await.unwrap_err();
    assert_eq!(fields_of(&e), ["interval_secs"]);

    // A snapshot without values (an older agent): what ranks by value is refused, the
    // rest previews.
    let stored = agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(snapshot(agent.id, at)),
        })
        .await
        .unwrap();
    assert!(stored.snapshot_stored);
    let e = viewer
        .preview_pipeline(&preview_request("topk", None, Some(agent.id)))
        .await
        .unwrap_err();
    assert_eq!(fields_of(&e), ["agent_id"]);
    let why = &e.api_error().unwrap().details.fields.as_ref().unwrap()[0].message;
    assert!(why.contains("ranks series by value"), "{why}");
    let plain = viewer
        .preview_pipeline(&preview_request("baseline", None, Some(agent.id)))
        .await
        .unwrap();
    assert_eq!(plain.input.series, 100);
    assert_eq!(plain.fidelity.cpu_pct, None, "no value, no fidelity");

    // A current agent's snapshot: topk on it, priced.
    agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(snapshot_with_values(agent.id, at)),
        })
        .await
        .unwrap();
    let mut priced = preview_request("topk", None, Some(agent.id));
    priced.pipeline = PipelineRef::new("topk").with_param("k", serde_json::json!(5));
    priced.pricing_model = Some("generic-per-million".to_owned());
    let p = viewer.preview_pipeline(&priced).await.unwrap();
    let snap = p.snapshot.as_ref().expect("ran on the snapshot");
    assert_eq!((snap.agent_id, snap.interval_secs), (agent.id, 60));
    assert_eq!(snap.host, "kpi-1");
    assert_eq!(p.input.series, 100);
    assert!(p.output.series < p.input.series, "{:?}", p.output);
    let cpu = p.fidelity.cpu_pct.expect("values give fidelity");
    assert!(cpu > 0.0 && cpu < 100.0, "{cpu}");
    let cost = p.cost.as_ref().expect("priced");
    assert_eq!(cost.pricing_model, "generic-per-million");
    // 100 series x 6 points a minute.
    assert!(
        cost.input.usage_basis.contains("kpi-1"),
        "{}",
        cost.input.usage_basis
    );
    let month = |s: &str| s.parse::<f64>().unwrap();
    assert!(
        month(&cost.output.per_month) < month(&cost.input.per_month),
        "{cost:?}"
    );
    assert!(cost.reduction_pct.unwrap() > 0.0);

    // An unknown pricing model: 422 at the field, nothing else changes.
    let mut unknown = priced.clone();
    unknown.pricing_model = Some("no-such-model".to_owned());
    let e = viewer.preview_pipeline(&unknown).await.unwrap_err();
    assert_eq!(fields_of(&e), ["pricing_model"]);

    // A pasted sample is priced with its interval, and needs one to be.
    let text: String = (0..30)
        .map(|pid| format!("process_cpu_time{{process_pid=\"{pid}\"}} {pid}\n"))
        .collect();
    let mut pasted = preview_request("baseline", Some(text), None);
    pasted.pricing_model = Some("generic-per-million".to_owned());
    let e = viewer.preview_pipeline(&pasted).await.unwrap_err();
    assert_eq!(fields_of(&e), ["interval_secs"]);
    pasted.interval_secs = Some(15);
    let p = viewer.preview_pipeline(&pasted).await.unwrap();
    assert!(p.snapshot.is_none());
    assert!(p.cost.unwrap().input.quantity > 0);
    server.stop().await;
}

#[tokio::test]
async fn agent_health_history_over_the_api() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let agent = server.agent("health-1").await;
    for cpu in [10.0, 20.0, 30.0] {
        server.advance(Duration::seconds(10));
        let mut hb = Heartbeat::default();
        hb.resources.cpu_pct = cpu;
        hb.resources.agent_rss_bytes = 50_000_000;
        agent.client.heartbeat(&hb).await.unwrap();
    }
    let health = viewer.agent_health(agent.id, None).await.unwrap();
    assert_eq!(health.agent_id, agent.id);
    assert_eq!(health.max_points, 360);
    assert_eq!(health.retention_secs, 3600);
    // The enrollment's heartbeat and three more, oldest first.
    let cpus: Vec<f64> = health.items.iter().map(|p| p.resources.cpu_pct).collect();
    assert_eq!(cpus, [0.0, 10.0, 20.0, 30.0]);
    assert!(health.items.windows(2).all(|w| w[0].at < w[1].at));
    let newest = viewer.agent_health(agent.id, Some(2)).await.unwrap();
    assert_eq!(newest.items.len(), 2);
    assert_eq!(newest.items[1].resources.cpu_pct, 30.0);
    // Past the retention the controller prunes them.
    server.advance(Duration::hours(2));
    server.tick().await;
    assert!(
        viewer
            .agent_health(agent.id, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Unknown agent 404; a limit out of range 4xx.
    let e = viewer
        .agent_health(uuid::Uuid::now_v7(), None)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let e = viewer.agent_health(agent.id, Some(0)).await.unwrap_err();
    assert!(matches!(e.status(), Some(400 | 422)), "{e}");
    server.stop().await;
}

/// The cost flow's recommendations keep the stored query inventory answering: an action that
/// would change a query is offered only with `allow_changed_queries`, listing the query and
/// why; each recommendation names the queries it keeps.
#[tokio::test]
async fn cost_flow_recommendations_keep_the_query_inventory() {
    use phoenix_client::api::query::{NewQuerySource, SourceKind};

    let server = TestServer::start().await;
    let operator = server.user(Role::Operator).await;
    let viewer = server.user(Role::Viewer).await;
    let agent = server.agent("kpi-1").await;
    let now = agent
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap()
        .server_time;
    agent
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(snapshot(agent.id, now)),
        })
        .await
        .unwrap();
    let drops = |flow: &phoenix_client::api::analysis::CostFlowReport, metric: &str| {
        flow.recommendations
            .iter()
            .find(|r| {
                r.action.label.as_deref() == Some("process.pid") && r.action.metrics == [metric]
            })
            .cloned()
    };
    let model = Some("generic-per-million");

    // No inventory: the pid is dropped from the memory series, and nothing is said of queries.
    let blind = viewer.cost_flow(model, &["metric"]).await.unwrap();
    let memory = drops(&blind, "process.memory.usage").expect("recommended without queries");
    assert!(memory.queries.is_none());

    // An alert whose output carries the pid, and a total per executable.
    operator
        .import_query_source(&NewQuerySource {
            name: "procs.promql".to_owned(),
            kind: SourceKind::PromqlList,
            content: "process_memory_usage > 1e9\nsum by (process_executable_name) (rate(process_cpu_time_total[5m]))\n".to_owned(),
        })
        .await
        .unwrap();
    let kept = viewer.cost_flow(model, &["metric"]).await.unwrap();
    assert!(drops(&kept, "process.memory.usage").is_none());
    let cpu = drops(&kept, "process.cpu.time").expect("the per-executable total keeps answering");
    let q = cpu.queries.expect("listed against the inventory");
    assert_eq!((q.kept, q.untouched, q.unobserved), (1, 1, 0));
    assert_eq!(q.kept_queries, ["procs.promql:2"]);
    assert!(q.changed.is_empty());
    assert!(kept.recommendations.iter().all(|r| r.queries.is_some()));

    // Allowed, the change is offered with the query it changes and how.
    let loose = viewer
        .cost_flow_with(model, &["metric"], true)
        .await
        .unwrap();
    let memory = drops(&loose, "process.memory.usage").expect("offered when changes are allowed");
    let changed = memory.queries.unwrap().changed;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].name, "procs.promql:1");
    assert!(
        changed[0].reasons[0].contains("`process_pid`"),
        "{changed:?}"
    );

    // A flag that is not a boolean is a 400.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/metrics/cost-flow?allow_changed_queries=sometimes",
            server.base
        ))
        .bearer_auth(crate::harness::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    server.stop().await;
}

/// A snapshot reported packed (what agents send) or spelled out (agents before packing)
/// is the same snapshot to every view; a report with both is refused, and so is a packed
/// snapshot whose columns disagree, with the field named and nothing stored.
#[tokio::test]
async fn packed_and_spelled_out_snapshots_are_the_same_snapshot() {
    let server = TestServer::start().await;
    let viewer = server.user(Role::Viewer).await;
    let spelled = server.agent("spelled-1").await;
    let packed = server.agent("packed-1").await;
    let now = spelled
        .client
        .heartbeat(&Heartbeat::default())
        .await
        .unwrap()
        .server_time;
    let paths = |e: phoenix_client::ClientError| -> Vec<String> {
        assert_eq!(e.status(), Some(422));
        e.api_error()
            .and_then(|e| e.details.fields.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.path)
            .collect()
    };

    // Both forms in one report: refused.
    let mut both_forms = snapshot(packed.id, now);
    both_forms.host = "packed-1".to_owned();
    let core: phoenix_core::measure::CardinalitySnapshot = both_forms.clone().into();
    let wire: PackedSnapshot = phoenix_core::measure::PackedSnapshot::pack(&core).into();
    let refused = packed
        .client
        .report_metrics(&MetricsReport {
            samples: Vec::new(),
            snapshot: Some(both_forms),
            packed_snapshot: Some(wire.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(paths(refused), ["packed_snapshot"]);
    // Columns that disagree: refused, naming the column.
    let mut short = wire.clone();
    short.points.pop();
    let refused = packed
        .client
        .report_metrics(&MetricsReport {
            packed_snapshot: Some(short),
            ..MetricsReport::default()
        })
        .await
        .unwrap_err();
    assert_eq!(paths(refused), ["packed_snapshot.points"]);
    assert_eq!(
        viewer
            .cardinality(&["host"], None, None)
            .await
            .unwrap()
            .hosts,
        0
    );

    // The same series each way.
    let mut spelled_snapshot = snapshot(spelled.id, now);
    spelled_snapshot.host = "spelled-1".to_owned();
    assert!(
        spelled
            .client
            .report_metrics(&MetricsReport {
                snapshot: Some(spelled_snapshot),
                ..MetricsReport::default()
            })
            .await
            .unwrap()
            .snapshot_stored
    );
    assert!(
        packed
            .client
            .report_metrics(&MetricsReport {
                packed_snapshot: Some(wire),
                ..MetricsReport::default()
            })
            .await
            .unwrap()
            .snapshot_stored
    );
    let card = viewer
        .cardinality(&["host", "label:process.executable.name"], None, None)
        .await
        .unwrap();
    assert_eq!(card.hosts, 2);
    assert_eq!(card.total_series, 200);
    let by_host = card
        .breakdowns
        .iter()
        .find(|b| b.dimension == "host")
        .expect("host breakdown");
    let series: BTreeMap<&str, u64> = by_host
        .groups
        .iter()
        .map(|g| (g.value.as_str(), g.series))
        .collect();
    assert_eq!(
        series,
        BTreeMap::from([("packed-1", 100), ("spelled-1", 100)])
    );
}
