use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::cost::{Catalogue, Money};
use crate::ids::AgentId;
use crate::measure::{CardinalitySnapshot, SnapshotSeries};
use crate::pipeline::spec::{DropLabelsStage, PipelineSpec, RankBy, Stage, TopKStage};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap()
}

fn series(metric: &str, labels: &[(&str, &str)]) -> SnapshotSeries {
    SnapshotSeries {
        metric: metric.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        points: 1,
        value: None,
    }
}

fn snapshot(host: &str, series: Vec<SnapshotSeries>) -> CardinalitySnapshot {
    CardinalitySnapshot {
        agent_id: AgentId::new(),
        source: crate::measure::SnapshotSource::Input,
        host: host.to_owned(),
        taken_at: at(0),
        interval_secs: 10,
        series,
    }
}

const PID: &str = "process.pid";
const EXE: &str = "process.executable.name";
const SVC: &str = "service.name";

/// Two hosts, ten series (see docs/cost-model.md, "Cardinality example").
fn example() -> Vec<CardinalitySnapshot> {
    let cpu = "process.cpu.time";
    let mem = "process.memory.usage";
    vec![
        snapshot(
            "web-1",
            vec![
                series(
                    cpu,
                    &[(PID, "1"), (EXE, "nginx"), ("state", "user"), (SVC, "web")],
                ),
                series(
                    cpu,
                    &[
                        (PID, "1"),
                        (EXE, "nginx"),
                        ("state", "system"),
                        (SVC, "web"),
                    ],
                ),
                series(mem, &[(PID, "1"), (EXE, "nginx"), (SVC, "web")]),
                series(
                    cpu,
                    &[(PID, "2"), (EXE, "nginx"), ("state", "user"), (SVC, "web")],
                ),
                series(
                    cpu,
                    &[
                        (PID, "2"),
                        (EXE, "nginx"),
                        ("state", "system"),
                        (SVC, "web"),
                    ],
                ),
                series(mem, &[(PID, "2"), (EXE, "nginx"), (SVC, "web")]),
                series(
                    "http_requests_total",
                    &[("route", "/a"), ("status", "200"), ("namespace", "shop")],
                ),
            ],
        ),
        snapshot(
            "db-1",
            vec![
                series(
                    cpu,
                    &[
                        (PID, "1"),
                        (EXE, "postgres"),
                        ("state", "user"),
                        (SVC, "db"),
                    ],
                ),
                series(mem, &[(PID, "1"), (EXE, "postgres"), (SVC, "db")]),
                series(mem, &[(PID, "7"), (EXE, "postgres"), (SVC, "db")]),
            ],
        ),
    ]
}

fn groups(b: &Breakdown) -> Vec<(&str, u64, f64)> {
    b.groups
        .iter()
        .map(|g| (g.value.as_str(), g.series, g.share_pct))
        .collect()
}

#[test]
fn totals_breakdowns_and_label_cardinalities() {
    let report = analyze(&example(), &AnalysisOptions::default(), None).unwrap();
    assert_eq!(report.hosts, 2);
    assert_eq!(report.total_series, 10);
    assert_eq!(report.distinct_metrics, 3);
    // One point per 10 s per series: 6 per minute.
    assert_eq!(report.points_per_minute, 60);
    assert!(report.cost_flow.is_none());

    let by_metric = &report.breakdowns[0];
    assert_eq!(by_metric.dimension, Dimension::Metric);
    assert_eq!(
        groups(by_metric),
        [
            ("process.cpu.time", 5, 50.0),
            ("process.memory.usage", 4, 40.0),
            ("http_requests_total", 1, 10.0)
        ]
    );
    let by_service = &report.breakdowns[1];
    assert_eq!(by_service.key.as_deref(), Some(SVC));
    assert_eq!(by_service.distinct_groups, 2);
    assert_eq!(
        groups(by_service),
        [("web", 6, 60.0), ("db", 3, 30.0), (NONE_GROUP, 1, 10.0)]
    );
    let by_namespace = &report.breakdowns[2];
    assert_eq!(by_namespace.key.as_deref(), Some("namespace"));
    assert_eq!(
        groups(by_namespace),
        [("shop", 1, 10.0), (NONE_GROUP, 9, 90.0)]
    );
    let by_host = &report.breakdowns[3];
    assert_eq!(groups(by_host), [("web-1", 7, 70.0), ("db-1", 3, 30.0)]);

    let keys: Vec<(&str, u64, u64)> = report
        .label_keys
        .iter()
        .map(|k| (k.key.as_str(), k.distinct_values, k.series))
        .collect();
    assert_eq!(
        keys,
        [
            (PID, 3, 9),
            (EXE, 2, 9),
            (SVC, 2, 9),
            ("state", 2, 5),
            ("namespace", 1, 1),
            ("route", 1, 1),
            ("status", 1, 1),
        ]
    );
    let top = &report.metric_labels[0];
    assert_eq!(
        (
            top.metric.as_str(),
            top.key.as_str(),
            top.distinct_values,
            top.series,
            top.metric_series
        ),
        ("process.memory.usage", PID, 3, 4, 4)
    );
}

#[test]
fn top_contributors_roll_the_rest_into_other() {
    let options = AnalysisOptions {
        breakdowns: vec![Dimension::Metric, Dimension::Label("nope".to_owned())],
        top: 1,
        top_metric_labels: 3,
    };
    let report = analyze(&example(), &options, None).unwrap();
    assert_eq!(
        groups(&report.breakdowns[0]),
        [("process.cpu.time", 5, 50.0), (OTHER_GROUP, 5, 50.0)]
    );
    assert_eq!(report.breakdowns[0].distinct_groups, 3);
    assert_eq!(report.breakdowns[1].key, None);
    assert_eq!(groups(&report.breakdowns[1]), [(NONE_GROUP, 10, 100.0)]);
    assert_eq!(report.metric_labels.len(), 3);
}

#[test]
fn cost_flow_splits_the_bill_exactly() {
    let catalogue = Catalogue::builtin();
    let model = catalogue.get("generic-per-million").unwrap();
    let report = analyze(&example(), &AnalysisOptions::default(), Some(model)).unwrap();
    let flow = report.cost_flow.unwrap();
    // 10 series x $50 / 1,000,000 = $0.0005.
    assert_eq!(flow.cost.per_month, Money::from_micros(500));
    assert_eq!(flow.cost.price_source.model_id, "generic-per-million");
    assert_eq!(flow.driver, CostDriver::Series);
    let by_metric: Vec<(&str, i64, u32)> = flow.flows[0]
        .groups
        .iter()
        .map(|g| (g.value.as_str(), g.monthly.micros(), g.basis_points))
        .collect();
    assert_eq!(
        by_metric,
        [
            ("process.cpu.time", 250, 5_000),
            ("process.memory.usage", 200, 4_000),
            ("http_requests_total", 50, 1_000)
        ]
    );
    for f in &flow.flows {
        assert_eq!(f.groups.iter().map(|g| g.basis_points).sum::<u32>(), 10_000);
        assert_eq!(
            f.groups.iter().map(|g| g.monthly.micros()).sum::<i64>(),
            500
        );
    }
}

#[test]
fn cost_flow_drivers_follow_the_model() {
    let catalogue = Catalogue::builtin();
    let grafana = catalogue.get("grafana-cloud-pro").unwrap();
    let flow = analyze(&example(), &AnalysisOptions::default(), Some(grafana))
        .unwrap()
        .cost_flow
        .unwrap();
    assert_eq!(flow.driver, CostDriver::DpmAdjustedSeries);
    // 6 DPM per series: billed as 60 series, inside the free 10,000.
    assert_eq!(flow.cost.quantity, 60);
    assert_eq!(flow.cost.per_month, Money::ZERO);
    assert_eq!(flow.flows[0].groups[0].driver_quantity, 30);
    let nr = catalogue.get("newrelic-original").unwrap();
    let flow = analyze(&example(), &AnalysisOptions::default(), Some(nr))
        .unwrap()
        .cost_flow
        .unwrap();
    assert_eq!(flow.driver, CostDriver::EstimatedBytes);
    assert_eq!(flow.notes.len(), 1);
    // `process.memory.usage{process.pid="1",process.executable.name="nginx",service.name="web"}`:
    // name 20 + 2 braces + 32 + (11+1+4) + (23+5+4) + (12+3+4) = 121 bytes per point,
    // 262,800 points a month (one per 10 s).
    let mem_nginx = 121 * 262_800;
    // Ten series at about 100 bytes a point are under 1 GB a month, which New Relic's
    // round-down to a whole GB bills as nothing; the drivers still carry the estimate.
    assert_eq!(flow.cost.quantity, 0);
    assert!(flow.cost.quantity_rule.contains("rounded down"));
    let estimated: u64 = flow.flows[3].groups.iter().map(|g| g.driver_quantity).sum();
    assert!(estimated > 10 * 100 * 262_800, "{estimated}");
    let by_host = &flow.flows[3];
    assert!(by_host.groups[0].driver_quantity >= 2 * mem_nginx);
}

#[test]
fn dimensions_parse_and_serialize() {
    for (text, dim) in [
        ("metric", Dimension::Metric),
        ("__name__", Dimension::Metric),
        ("host", Dimension::Host),
        ("service", Dimension::Service),
        ("namespace", Dimension::Namespace),
        ("label:host", Dimension::Label("host".to_owned())),
        ("k8s.pod.name", Dimension::Label("k8s.pod.name".to_owned())),
    ] {
        assert_eq!(text.parse::<Dimension>().unwrap(), dim);
    }
    assert!("".parse::<Dimension>().is_err());
    assert!("label:".parse::<Dimension>().is_err());
    let json = serde_json::to_string(&Dimension::Label("a.b".to_owned())).unwrap();
    assert_eq!(json, "\"label:a.b\"");
    assert_eq!(
        serde_json::from_str::<Dimension>(&json).unwrap(),
        Dimension::Label("a.b".to_owned())
    );
}

#[test]
fn bad_and_empty_input() {
    let mut snaps = example();
    snaps[1].interval_secs = 0;
    assert_eq!(
        SeriesTable::from_snapshots(&snaps).unwrap_err(),
        CardinalityError::ZeroInterval {
            host: "db-1".to_owned()
        }
    );
    let catalogue = Catalogue::builtin();
    let report = analyze(
        &[],
        &AnalysisOptions::default(),
        Some(catalogue.get("datadog-pro").unwrap()),
    )
    .unwrap();
    assert_eq!(report.total_series, 0);
    assert!(report.breakdowns.iter().all(|b| b.groups.is_empty()));
    let flow = report.cost_flow.unwrap();
    assert_eq!(flow.cost.per_month, Money::ZERO);
}

#[test]
fn recommendations_are_exact_and_sorted_by_saving() {
    let catalogue = Catalogue::builtin();
    let model = catalogue.get("generic-per-million").unwrap();
    let recs = recommend(&example(), model, &RecommendOptions::default()).unwrap();
    let summary: Vec<(&str, u64, i64)> = recs
        .iter()
        .map(|r| {
            (
                r.summary.as_str(),
                r.series_after,
                r.saving_per_month.micros(),
            )
        })
        .collect();
    // cpu without pid: web-1 {nginx,user},{nginx,system}; db-1 {postgres,user} = 3 of 5.
    // memory without pid: one per host = 2 of 4. Both: 10 - 2 - 2 = 6.
    // The label-wide drop and the process aggregation run through the native engine.
    assert_eq!(
        summary,
        [
            (
                "Drop label `process.pid` from all 2 metrics carrying it: 4 fewer series",
                6,
                200
            ),
            (
                "Try template `aggregate` (group processes by process.executable.name): 4 fewer series",
                6,
                200
            ),
            (
                "Drop label `process.pid` from `process.cpu.time`: 5 -> 3 series",
                8,
                100
            ),
            (
                "Drop label `process.pid` from `process.memory.usage`: 4 -> 2 series",
                8,
                100
            ),
            (
                "Drop label `state` from `process.cpu.time`: 5 -> 3 series",
                8,
                100
            ),
        ]
    );
    assert_eq!(
        recs[1].action,
        Action::AggregateBy {
            resource_labels: vec![EXE.to_owned()],
        }
    );
    assert!(recs[1].method.starts_with("native engine"));
    let recs: Vec<_> = recs
        .iter()
        .filter(|r| !matches!(r.action, Action::AggregateBy { .. }))
        .collect();
    assert_eq!(
        recs[0].action,
        Action::DropLabel {
            label: PID.to_owned(),
            metrics: vec![
                "process.cpu.time".to_owned(),
                "process.memory.usage".to_owned()
            ],
        }
    );
    assert!(recs[0].method.starts_with("native engine"));
    assert!(recs[1].method.starts_with("exact"));
    assert_eq!(recs[0].series_before, 10);
    assert_eq!(recs[0].affected_series, 9);
    assert_eq!(recs[0].saving_per_year, Money::from_micros(2_400));
    // Above the engine's series limit, only exact re-grouping is used.
    let options = RecommendOptions {
        engine_max_series: 5,
        ..RecommendOptions::default()
    };
    let exact_only = recommend(&example(), model, &options).unwrap();
    assert_eq!(exact_only.len(), 4);
    assert!(exact_only.iter().all(|r| r.method.starts_with("exact")));
    assert_eq!(exact_only[0].series_after, 6);
    // Protected metrics and labels are left alone.
    let options = RecommendOptions {
        protected_metrics: vec!["process.cpu*".to_owned()],
        protected_labels: vec![PID.to_owned()],
        ..RecommendOptions::default()
    };
    assert!(recommend(&example(), model, &options).unwrap().is_empty());
}

#[test]
fn value_ranking_stages_cannot_be_projected_from_snapshots() {
    let spec = PipelineSpec {
        stages: vec![Stage::TopK(TopKStage {
            k: 10,
            rank_by: RankBy::Cpu,
            collector_min_value: 0.0,
        })],
        ..PipelineSpec::default()
    };
    assert_eq!(
        check_projectable(&spec),
        Err(ProjectionError::NeedsValues { stage: "topk" })
    );
    assert_eq!(check_projectable(&PipelineSpec::default()), Ok(()));
}

#[test]
fn glob_matching() {
    assert!(glob_match("process.*", "process.cpu.time"));
    assert!(glob_match("*time", "process.cpu.time"));
    assert!(glob_match("p*c*e", "process.cpu.time"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("process.*", "system.cpu"));
    assert!(!glob_match("a*a", "a"));
    assert!(glob_match("exact", "exact"));
}

fn arb_snapshots() -> impl Strategy<Value = Vec<CardinalitySnapshot>> {
    let series = (
        0_u8..4,
        proptest::collection::btree_map(0_u8..5, 0_u8..4, 0..4),
        1_u64..5,
    )
        .prop_map(|(m, labels, points)| SnapshotSeries {
            metric: format!("m{m}"),
            labels: labels
                .into_iter()
                .map(|(k, v)| (format!("k{k}"), format!("v{v}")))
                .collect(),
            points,
            value: None,
        });
    let snap =
        (proptest::collection::vec(series, 0..40), 1_u32..61).prop_map(|(mut s, interval)| {
            // A snapshot holds distinct series.
            let mut seen = BTreeSet::new();
            s.retain(|x| seen.insert((x.metric.clone(), x.labels.clone())));
            CardinalitySnapshot {
                agent_id: AgentId::new(),
                source: crate::measure::SnapshotSource::Input,
                host: "h".to_owned(),
                taken_at: at(0),
                interval_secs: interval,
                series: s,
            }
        });
    proptest::collection::vec(snap, 0..4)
}

type Flat = (usize, String, BTreeMap<String, String>, u64);

proptest! {
    #[test]
    fn table_holds_exactly_the_input(snaps in arb_snapshots()) {
        let table = SeriesTable::from_snapshots(&snaps).unwrap();
        let mut expected: Vec<Flat> = snaps.iter().enumerate()
            .flat_map(|(h, s)| s.series.iter().map(move |x| (h, x.metric.clone(), x.labels.clone(), x.points)))
            .collect();
        let mut actual: Vec<Flat> = Vec::new();
        for (m, &(start, end)) in table.metric_ranges.iter().enumerate() {
            for i in start as usize..end as usize {
                let labels = table.series_labels(i).iter()
                    .map(|l| (table.keys.resolve(l.key).to_owned(), table.values[l.key as usize].resolve(l.value).to_owned()))
                    .collect();
                actual.push((table.series_host[i] as usize, table.metrics.resolve(m as u32).to_owned(), labels, table.series_points[i]));
            }
        }
        expected.sort();
        actual.sort();
        prop_assert_eq!(actual, expected);
    }

    #[test]
    fn breakdowns_partition_the_series(snaps in arb_snapshots(), top in 0_usize..4) {
        let catalogue = Catalogue::builtin();
        let options = AnalysisOptions {
            breakdowns: vec![Dimension::Metric, Dimension::Host, Dimension::Label("k0".to_owned()), Dimension::Label("k1".to_owned())],
            top,
            top_metric_labels: 100,
        };
        let report = analyze(&snaps, &options, Some(catalogue.get("generic-per-million").unwrap())).unwrap();
        let total: usize = snaps.iter().map(|s| s.series.len()).sum();
        prop_assert_eq!(report.total_series, total as u64);
        for b in &report.breakdowns {
            prop_assert_eq!(b.groups.iter().map(|g| g.series).sum::<u64>(), report.total_series);
            if total > 0 {
                let bp: f64 = b.groups.iter().map(|g| g.share_pct).sum();
                prop_assert!((bp - 100.0).abs() < 1e-9);
            }
        }
        let flow = report.cost_flow.unwrap();
        for f in &flow.flows {
            if total > 0 {
                prop_assert_eq!(f.groups.iter().map(|g| g.basis_points).sum::<u32>(), 10_000);
                prop_assert_eq!(f.groups.iter().map(|g| g.monthly).fold(Money::ZERO, Money::saturating_add), flow.cost.per_month);
            }
        }
        // Per-metric label cardinality against a naive count.
        for s in &report.metric_labels {
            let values: BTreeSet<&String> = snaps.iter().flat_map(|x| &x.series)
                .filter(|x| x.metric == s.metric)
                .filter_map(|x| x.labels.get(&s.key))
                .collect();
            prop_assert_eq!(s.distinct_values, values.len() as u64);
        }
    }

    #[test]
    fn engine_drop_matches_exact_regrouping(snaps in arb_snapshots()) {
        let table = SeriesTable::from_snapshots(&snaps).unwrap();
        let samples = table.host_samples();
        let unchanged = table.project_with_engine(&samples, &PipelineSpec::default()).unwrap();
        prop_assert_eq!(unchanged.series, table.len() as u64);
        for k in 0..table.keys.len() as u32 {
            let key = table.keys.resolve(k).to_owned();
            let spec = PipelineSpec {
                stages: vec![Stage::DropLabels(DropLabelsStage { labels: vec![key] })],
                ..PipelineSpec::default()
            };
            let engine = table.project_with_engine(&samples, &spec).unwrap();
            let exact: u64 = (0..table.metrics.len() as u32).map(|m| table.series_without(m, k)).sum();
            prop_assert_eq!(engine.series, exact);
        }
    }

    #[test]
    fn projection_matches_naive_regrouping(snaps in arb_snapshots()) {
        let table = SeriesTable::from_snapshots(&snaps).unwrap();
        for m in 0..table.metrics.len() as u32 {
            for k in 0..table.keys.len() as u32 {
                let metric = table.metrics.resolve(m);
                let key = table.keys.resolve(k);
                let naive: BTreeSet<(usize, BTreeMap<&String, &String>)> = snaps.iter().enumerate()
                    .flat_map(|(h, s)| s.series.iter().map(move |x| (h, x)))
                    .filter(|(_, x)| x.metric == metric)
                    .map(|(h, x)| (h, x.labels.iter().filter(|(kk, _)| *kk != key).collect()))
                    .collect();
                prop_assert_eq!(table.series_without(m, k), naive.len() as u64);
            }
        }
    }
}
