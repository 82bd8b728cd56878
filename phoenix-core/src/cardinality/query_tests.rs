//! Query-aware recommendations, held to the one evaluation rule (`queries::evaluate`) on
//! every series of the snapshots: an agent-shaped demo fleet with node_exporter-style rules,
//! and random inventories over random snapshots.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::cost::Catalogue;
use crate::ids::AgentId;
use crate::measure::{CardinalitySnapshot, SnapshotSeries};
use crate::pipeline::corpus;
use crate::pipeline::exposition::sample_from_exposition;
use crate::queries::{
    InventoryQuery, QuerySource, QueryStatus, Series, SourceKind, evaluate, series_of_snapshot,
};

fn all_series(snapshots: &[CardinalitySnapshot]) -> Vec<Series> {
    snapshots
        .iter()
        .flat_map(|s| &s.series)
        .map(series_of_snapshot)
        .collect()
}

/// Every query's status under `action`, by the evaluation rule on every series.
fn statuses(
    snapshots: &[CardinalitySnapshot],
    inventory: &[InventoryQuery],
    action: &Action,
) -> Vec<(String, QueryStatus, Vec<String>)> {
    let before = all_series(snapshots);
    let after = all_series(&apply(snapshots, action).unwrap());
    inventory
        .iter()
        .map(|q| {
            let v = evaluate(q, &before, &after);
            (v.name, v.status, v.reasons)
        })
        .collect()
}

/// The fleet as its agents report it: each corpus host's process scan in the hostmetrics
/// shape, and on `web-01` a node_exporter scraped as an input (the agent's scrape
/// resource).
fn demo_fleet() -> Vec<CardinalitySnapshot> {
    corpus::HOSTS
        .iter()
        .map(|(host, json, _)| {
            let mut series = corpus::host_sample(json).snapshot_series();
            if *host == "web-01" {
                let scraped = sample_from_exposition(
                    corpus::NODE_EXPORTER,
                    1_767_225_600_000,
                    [
                        ("service.name", "scrape"),
                        ("service.instance.id", "localhost:9100"),
                    ],
                )
                .unwrap();
                series.extend(scraped.snapshot_series());
            }
            CardinalitySnapshot {
                agent_id: AgentId::new(),
                host: (*host).to_owned(),
                taken_at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
                interval_secs: 60,
                source: Default::default(), // the host's input
                series,
            }
        })
        .collect()
}

/// Alerting and recording rules in the style of the node_exporter mixin, plus two on the
/// process scraper's metrics as the agent exposes them.
const NODE_RULES: &str = r#"groups:
  - name: node-exporter
    rules:
      - alert: NodeFilesystemAlmostOutOfSpace
        expr: |
          (node_filesystem_avail_bytes{fstype!=""} / node_filesystem_size_bytes{fstype!=""} * 100 < 5
          and node_filesystem_readonly{fstype!=""} == 0)
      - alert: NodeFilesystemAlmostOutOfFiles
        expr: node_filesystem_files_free{fstype!=""} / node_filesystem_files{fstype!=""} * 100 < 5
      - alert: NodeNetworkReceiveErrs
        expr: rate(node_network_receive_errs_total[2m]) / rate(node_network_receive_packets_total[2m]) > 0.01
      - alert: NodeNetworkTransmitErrs
        expr: rate(node_network_transmit_errs_total[2m]) / rate(node_network_transmit_packets_total[2m]) > 0.01
      - alert: NodeCPUHighUsage
        expr: sum without (mode) (avg without (cpu) (rate(node_cpu_seconds_total{mode!="idle"}[2m]))) * 100 > 90
      - alert: NodeSystemdServiceFailed
        expr: node_systemd_unit_state{state="failed"} == 1
      - alert: NodeDiskIOSaturation
        expr: rate(node_disk_io_time_weighted_seconds_total{device=~"(/dev/)?(sd.+|nvme.+|vd.+)"}[5m]) > 10
      - record: instance:node_cpus:count
        expr: count without (cpu, mode) (node_cpu_seconds_total{mode="idle"})
      - record: instance:node_cpu_utilisation:rate5m
        expr: 1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{mode=~"idle|iowait|steal"}[5m])))
  - name: processes
    rules:
      - alert: ProcessCpuHigh
        expr: sum by (process_executable_name) (rate(process_cpu_time_total[5m])) > 2
      - alert: ProcessMemoryHigh
        expr: process_memory_usage > 4e9
"#;

fn node_inventory() -> Vec<InventoryQuery> {
    QuerySource::import(
        "node.rules.yml",
        SourceKind::RuleFile,
        NODE_RULES,
        "test",
        Utc::now(),
    )
    .unwrap()
    .queries
}

#[test]
fn demo_fleet_recommendations_keep_every_inventoried_query() {
    let snapshots = demo_fleet();
    let inventory = node_inventory();
    let catalogue = Catalogue::builtin();
    let model = catalogue.get("grafana-cloud-pro").unwrap();
    let options = RecommendOptions {
        max: 100,
        ..RecommendOptions::default()
    };
    // Every query observes series of the fleet: the inventory is about this fleet.
    let before = all_series(&snapshots);
    for q in &inventory {
        assert_eq!(
            evaluate(q, &before, &before).status,
            QueryStatus::Answered,
            "{} observes the fleet",
            q.name
        );
    }

    // Without the inventory, some recommendation would break or change a query: the
    // inventory has something to keep.
    let blind = recommend(&snapshots, model, &options).unwrap();
    let harmful: Vec<&Recommendation> = blind
        .iter()
        .filter(|r| {
            statuses(&snapshots, &inventory, &r.action)
                .iter()
                .any(|(_, s, _)| matches!(s, QueryStatus::Broken | QueryStatus::Changed))
        })
        .collect();
    assert!(!harmful.is_empty(), "{blind:#?}");

    let recs = recommend_with_queries(&snapshots, model, &options, &inventory).unwrap();
    assert!(!recs.is_empty());
    for r in &recs {
        for (name, status, reasons) in statuses(&snapshots, &inventory, &r.action) {
            assert_eq!(
                status,
                QueryStatus::Answered,
                "{}: {name} {reasons:?}",
                r.summary
            );
        }
        let q = r.queries.as_ref().unwrap();
        assert!(q.changed.is_empty());
        assert_eq!(q.kept + q.untouched + q.unobserved, inventory.len() as u32);
        assert_eq!(q.unobserved, 0);
        assert!(q.kept_queries.len() <= KEPT_QUERIES_LISTED);
        assert_eq!(
            q.kept_queries.len(),
            (q.kept as usize).min(KEPT_QUERIES_LISTED)
        );
    }
    for h in &harmful {
        assert!(!recs.iter().any(|r| r.action == h.action), "{}", h.summary);
    }
    // Dropping the pid from the CPU time keeps the per-executable alert, and says so.
    let cpu_pid = recs
        .iter()
        .find(|r| {
            r.action
                == Action::DropLabel {
                    label: "process.pid".to_owned(),
                    metrics: vec!["process.cpu.time".to_owned()],
                }
        })
        .expect("dropping process.pid from process.cpu.time is recommended");
    let q = cpu_pid.queries.as_ref().unwrap();
    assert_eq!(q.kept_queries, ["ProcessCpuHigh"]);
    assert_eq!(q.untouched, inventory.len() as u32 - 1);

    // Allowing changed queries offers more, each listing the changed queries exactly as
    // the evaluation states them; still nothing broken.
    let loose = recommend_with_queries(
        &snapshots,
        model,
        &RecommendOptions {
            allow_changed_queries: true,
            ..options.clone()
        },
        &inventory,
    )
    .unwrap();
    let mut any_changed = false;
    for r in &loose {
        let evaluated = statuses(&snapshots, &inventory, &r.action);
        let changed: Vec<(String, Vec<String>)> = evaluated
            .iter()
            .filter(|(_, s, _)| *s == QueryStatus::Changed)
            .map(|(n, _, reasons)| (n.clone(), reasons.clone()))
            .collect();
        assert!(
            evaluated.iter().all(|(_, s, _)| *s != QueryStatus::Broken),
            "{}",
            r.summary
        );
        let listed: Vec<(String, Vec<String>)> = r
            .queries
            .as_ref()
            .unwrap()
            .changed
            .iter()
            .map(|v| (v.name.clone(), v.reasons.clone()))
            .collect();
        assert_eq!(listed, changed, "{}", r.summary);
        any_changed |= !changed.is_empty();
    }
    assert!(any_changed, "{loose:#?}");
    // Never one that breaks: the systemd alert filters on `state`.
    assert!(!loose.iter().any(|r| matches!(&r.action,
        Action::DropLabel { label, metrics } if label == "state" && metrics.iter().any(|m| m == "node_systemd_unit_state"))));
}

#[test]
fn cardinality_without_an_inventory_recommendations_are_unchanged() {
    let snapshots = demo_fleet();
    let catalogue = Catalogue::builtin();
    let model = catalogue.get("generic-per-million").unwrap();
    let options = RecommendOptions::default();
    let plain = recommend(&snapshots, model, &options).unwrap();
    let with_none = recommend_with_queries(&snapshots, model, &options, &[]).unwrap();
    assert_eq!(plain, with_none);
    assert!(plain.iter().all(|r| r.queries.is_none()));
}

// Random snapshots over a few metrics (process scraper names among them, so names are
// translated) and label keys (dotted and plain, two that sanitize alike).
const METRICS: [&str; 4] = [
    "process.cpu.time",
    "process.memory.usage",
    "node_load",
    "up",
];
const KEYS: [&str; 6] = [
    "process.pid",
    "process.executable.name",
    "mode",
    "cpu",
    "a.b",
    "a_b",
];
const VALUES: [&str; 3] = ["x", "y", "z"];

fn arb_fleet() -> impl Strategy<Value = Vec<CardinalitySnapshot>> {
    let series = (
        0..METRICS.len(),
        proptest::collection::btree_map(0..KEYS.len(), 0..VALUES.len(), 0..4),
    )
        .prop_map(|(m, labels)| SnapshotSeries {
            metric: METRICS[m].to_owned(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (KEYS[k].to_owned(), VALUES[v].to_owned()))
                .collect(),
            points: 1,
            value: None,
        });
    let snap = proptest::collection::vec(series, 0..30).prop_map(|mut s| {
        let mut seen = BTreeSet::new();
        s.retain(|x| seen.insert((x.metric.clone(), x.labels.clone())));
        CardinalitySnapshot {
            agent_id: AgentId::new(),
            host: "h".to_owned(),
            taken_at: Utc.timestamp_opt(1_767_225_600, 0).unwrap(),
            interval_secs: 10,
            source: Default::default(), // the host's input
            series: s,
        }
    });
    proptest::collection::vec(snap, 1..4)
}

// Names as queries see them, plus names no snapshot has.
const QUERY_METRICS: [&str; 6] = [
    "process_cpu_time_total",
    "process_memory_usage",
    "node_load",
    "up",
    "process_cpu_time",
    "unknown_metric",
];
const QUERY_LABELS: [&str; 6] = [
    "process_pid",
    "process_executable_name",
    "mode",
    "cpu",
    "a_b",
    "job",
];
const MATCH_OPS: [&str; 4] = ["=", "!=", "=~", "!~"];
const MATCH_VALUES: [&str; 5] = ["x", "y", "", ".*", ".+"];

fn arb_selector() -> impl Strategy<Value = String> {
    let matcher = (
        0..QUERY_LABELS.len(),
        0..MATCH_OPS.len(),
        0..MATCH_VALUES.len(),
    )
        .prop_map(|(l, o, v)| {
            format!("{}{}\"{}\"", QUERY_LABELS[l], MATCH_OPS[o], MATCH_VALUES[v])
        });
    (
        prop_oneof![
            4 => (0..QUERY_METRICS.len()).prop_map(|m| Some(QUERY_METRICS[m].to_owned())),
            1 => Just(None),
        ],
        proptest::collection::vec(matcher, 0..3),
    )
        .prop_map(|(metric, matchers)| match metric {
            Some(m) if matchers.is_empty() => m,
            Some(m) => format!("{m}{{{}}}", matchers.join(",")),
            // A selector without a name needs a matcher that does not match everything.
            None => {
                format!("{{__name__=~\"process_.*|up\",{}}}", matchers.join(",")).replace(",}", "}")
            }
        })
}

fn arb_expr() -> impl Strategy<Value = String> {
    let label = (0..QUERY_LABELS.len()).prop_map(|l| QUERY_LABELS[l].to_owned());
    let labels = proptest::collection::vec(label.clone(), 1..3).prop_map(|l| l.join(", "));
    let leaf = arb_selector().boxed();
    leaf.prop_recursive(3, 12, 2, move |inner| {
        prop_oneof![
            (inner.clone()).prop_map(|e| format!("sum({e})")),
            (labels.clone(), inner.clone()).prop_map(|(l, e)| format!("sum by ({l}) ({e})")),
            (labels.clone(), inner.clone()).prop_map(|(l, e)| format!("max without ({l}) ({e})")),
            (labels.clone(), inner.clone()).prop_map(|(l, e)| format!("topk(3, {e}) by ({l})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) / ({b})")),
            (labels.clone(), inner.clone(), inner.clone())
                .prop_map(|(l, a, b)| format!("({a}) * on ({l}) ({b})")),
            (labels.clone(), inner.clone(), inner.clone())
                .prop_map(|(l, a, b)| format!("({a}) - ignoring ({l}) ({b})")),
            (label.clone(), inner.clone()).prop_map(|(l, e)| format!(
                "label_replace({e}, \"dst\", \"$1\", \"{l}\", \"(.*)\")"
            )),
            inner.clone().prop_map(|e| format!("({e}) > 1")),
            inner.clone().prop_map(|e| format!("absent({e})")),
            inner.prop_map(|e| format!("count({e})")),
        ]
    })
}

fn arb_inventory() -> impl Strategy<Value = Vec<InventoryQuery>> {
    proptest::collection::vec(arb_expr(), 1..8).prop_map(|exprs| {
        let content = exprs.join("\n");
        QuerySource::import(
            "random.promql",
            SourceKind::PromqlList,
            &content,
            "test",
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("generated PromQL parses: {e:?}\n{content}"))
        .queries
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// For every recommendation, applying its action to the snapshots' series breaks no
    /// inventoried query (by `queries::evaluate` on every series), changes none unless
    /// allowed, and lists exactly the queries it changes.
    #[test]
    fn cardinality_recommendations_never_break_an_inventoried_query(
        snapshots in arb_fleet(),
        inventory in arb_inventory(),
        allow_changed in any::<bool>(),
    ) {
        let catalogue = Catalogue::builtin();
        let model = catalogue.get("generic-per-million").unwrap();
        let options = RecommendOptions {
            max: 1_000,
            allow_changed_queries: allow_changed,
            ..RecommendOptions::default()
        };
        let recs = recommend_with_queries(&snapshots, model, &options, &inventory).unwrap();
        let before = all_series(&snapshots);
        let unobserved = inventory.iter()
            .filter(|q| evaluate(q, &before, &before).status == QueryStatus::Unobserved)
            .count() as u32;
        for r in &recs {
            let evaluated = statuses(&snapshots, &inventory, &r.action);
            for (name, status, reasons) in &evaluated {
                prop_assert!(*status != QueryStatus::Broken, "{} breaks {}: {:?}", r.summary, name, reasons);
                prop_assert!(allow_changed || *status != QueryStatus::Changed, "{} changes {}: {:?}", r.summary, name, reasons);
            }
            let q = r.queries.as_ref().unwrap();
            let changed: Vec<&String> = evaluated.iter()
                .filter(|(_, s, _)| *s == QueryStatus::Changed).map(|(n, _, _)| n).collect();
            let listed: Vec<&String> = q.changed.iter().map(|v| &v.name).collect();
            prop_assert_eq!(listed, changed);
            prop_assert_eq!(q.unobserved, unobserved);
            prop_assert_eq!(q.kept + q.changed.len() as u32 + q.untouched + q.unobserved, inventory.len() as u32);
        }
    }
}
