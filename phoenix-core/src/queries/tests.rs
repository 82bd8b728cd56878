use super::*;
use crate::queries::source::substitute_variables;

const RULES: &str = r#"
groups:
  - name: node-exporter
    rules:
      - alert: NodeFilesystemAlmostOutOfSpace
        expr: |
          (
            node_filesystem_avail_bytes{job="node",fstype!=""} / node_filesystem_size_bytes{job="node",fstype!=""} * 100 < 5
          and
            node_filesystem_readonly{job="node",fstype!=""} == 0
          )
        for: 30m
        labels:
          severity: warning
      - record: instance:node_cpu_utilisation:rate5m
        expr: |
          1 - avg without (cpu) (
            sum without (mode) (rate(node_cpu_seconds_total{job="node", mode=~"idle|iowait|steal"}[5m]))
          )
      - alert: NodeDown
        expr: up{job="node"} == 0
"#;

fn fs_series(job: &str, fstype: Option<&str>) -> Vec<Series> {
    let mut out = Vec::new();
    for metric in [
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_readonly",
    ] {
        let mut labels = vec![("job", job), ("instance", "h1:9100"), ("mountpoint", "/")];
        if let Some(t) = fstype {
            labels.push(("fstype", t));
        }
        out.push(Series::new(metric, labels));
    }
    for mode in ["idle", "user"] {
        for cpu in ["0", "1"] {
            out.push(Series::new(
                "node_cpu_seconds_total",
                [
                    ("job", job),
                    ("instance", "h1:9100"),
                    ("cpu", cpu),
                    ("mode", mode),
                ],
            ));
        }
    }
    out.push(Series::new("up", [("job", job), ("instance", "h1:9100")]));
    out
}

fn rules() -> Vec<InventoryQuery> {
    parse_source("node.rules.yml", SourceKind::RuleFile, RULES).unwrap()
}

fn status_of(verdicts: &[QueryVerdict], name: &str) -> QueryStatus {
    verdicts.iter().find(|v| v.name == name).unwrap().status
}

#[test]
fn rule_file_queries_and_needs() {
    let queries = rules();
    assert_eq!(queries.len(), 3);
    let fs = &queries[0];
    assert_eq!(fs.name, "NodeFilesystemAlmostOutOfSpace");
    assert_eq!(fs.role, QueryRole::Alert);
    assert_eq!(
        fs.location,
        "group \"node-exporter\", alert \"NodeFilesystemAlmostOutOfSpace\""
    );
    let metrics: Vec<&str> = fs.needs.metrics().collect();
    assert_eq!(
        metrics,
        [
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_filesystem_readonly"
        ]
    );
    assert!(fs.needs.labels().contains("fstype"));
    let cpu = &queries[1];
    assert_eq!(cpu.role, QueryRole::Record);
    // `without` aggregations keep every other label in the output.
    let s = &cpu.needs.selectors[0];
    assert!(s.keeps_labels);
    assert!(s.removed.contains("cpu") && s.removed.contains("mode"));
}

#[test]
fn grouping_matching_and_label_sources_are_needed() {
    let needs = needs_of(
        r#"sum by (job) (rate(a[5m])) / on (job) group_left (team) b
           + ignoring (x) label_replace(c, "host", "$1", "instance", "(.*):.*")
           + histogram_quantile(0.9, sum by (le) (rate(d_bucket[5m])))"#,
    )
    .unwrap();
    let grouping: Vec<&str> = needs.grouping.iter().map(String::as_str).collect();
    assert_eq!(grouping, ["instance", "job", "le", "team"]);
    assert!(!needs.selectors[0].keeps_labels);
}

#[test]
fn identical_output_answers_everything() {
    let series = fs_series("node", Some("ext4"));
    let verdicts = evaluate_all(&rules(), &series, &series);
    assert!(
        verdicts.iter().all(|v| v.status == QueryStatus::Answered),
        "{verdicts:?}"
    );
}

#[test]
fn dropping_a_matched_label_breaks_the_alert() {
    let baseline = fs_series("node", Some("ext4"));
    let candidate = fs_series("node", None);
    let verdicts = evaluate_all(&rules(), &baseline, &candidate);
    let fs = verdicts
        .iter()
        .find(|v| v.name == "NodeFilesystemAlmostOutOfSpace")
        .unwrap();
    assert_eq!(fs.status, QueryStatus::Broken);
    assert!(
        fs.reasons[0].contains("drops label `fstype`"),
        "{:?}",
        fs.reasons
    );
    assert_eq!(status_of(&verdicts, "NodeDown"), QueryStatus::Answered);
}

#[test]
fn dropping_a_metric_breaks_and_unseen_metrics_are_unobserved() {
    let baseline = fs_series("node", Some("ext4"));
    let candidate: Vec<Series> = baseline
        .iter()
        .filter(|s| s.metric != "up")
        .cloned()
        .collect();
    let verdicts = evaluate_all(&rules(), &baseline, &candidate);
    assert_eq!(status_of(&verdicts, "NodeDown"), QueryStatus::Broken);
    let other = fs_series("other", Some("ext4"));
    let verdicts = evaluate_all(&rules(), &other, &other);
    assert_eq!(status_of(&verdicts, "NodeDown"), QueryStatus::Unobserved);
}

#[test]
fn losing_a_grouping_label_changes_the_query() {
    let queries = parse_source(
        "list",
        SourceKind::PromqlList,
        "# per job\nsum by (job, mode) (rate(node_cpu_seconds_total[5m]))\nsum(rate(node_cpu_seconds_total[5m]))\n",
    )
    .unwrap();
    assert_eq!(queries[0].name, "list:2");
    let baseline = fs_series("node", None);
    let candidate: Vec<Series> = baseline
        .iter()
        .cloned()
        .map(|mut s| {
            s.labels.remove("mode");
            s.labels.remove("cpu");
            s
        })
        .collect();
    let verdicts = evaluate_all(&queries, &baseline, &candidate);
    assert_eq!(verdicts[0].status, QueryStatus::Changed);
    assert!(verdicts[0].reasons[0].contains("`mode`"));
    // A total over everything does not care which labels the series carry.
    assert_eq!(verdicts[1].status, QueryStatus::Answered);
    // A `without (cpu)` aggregation does not mind losing cpu, but minds losing mode.
    let without = &parse_source(
        "w",
        SourceKind::PromqlList,
        "sum without (cpu) (rate(node_cpu_seconds_total[5m]))",
    )
    .unwrap()[0];
    let verdict = evaluate(without, &baseline, &candidate);
    assert_eq!(verdict.status, QueryStatus::Changed);
    assert!(verdict.reasons[0].contains("`mode`") && !verdict.reasons[0].contains("`cpu`"));
    // The recording rule filters on mode: it matches nothing once mode is gone.
    let cpu = &rules()[1];
    assert_eq!(
        evaluate(cpu, &baseline, &candidate).status,
        QueryStatus::Broken
    );
}

/// Found by the check against a real Prometheus (`phoenix-agent/tests/prometheus_queries.rs`):
/// node_exporter writes `node_disk_info{model=""}`, Prometheus stores the series without
/// `model`, and a candidate without the label answers exactly as the baseline does.
#[test]
fn a_label_of_empty_value_is_no_label() {
    let info = |model: Option<&str>| {
        let mut labels = vec![("device", "vda"), ("instance", "h1:9100")];
        labels.extend(model.map(|m| ("model", m)));
        vec![Series::new("node_disk_info", labels)]
    };
    let queries = parse_source(
        "list",
        SourceKind::PromqlList,
        "node_disk_info\ncount by (model) (node_disk_info)\nnode_disk_info{model=\"\"}\n",
    )
    .unwrap();
    for verdict in evaluate_all(&queries, &info(Some("")), &info(None)) {
        assert_eq!(verdict.status, QueryStatus::Answered, "{verdict:?}");
    }
    // A value that is gone is still a label lost.
    let lost = evaluate_all(&queries, &info(Some("QEMU")), &info(None));
    assert_eq!(lost[0].status, QueryStatus::Changed);
    assert_eq!(lost[1].status, QueryStatus::Changed);
    // And the series Phoenix names from a sample leave empty values out, as Prometheus does.
    let sample = crate::pipeline::exposition::sample_from_exposition(
        "node_disk_info{device=\"vda\",model=\"\"} 1\n",
        0,
        [("service.name", "node")],
    )
    .unwrap();
    assert_eq!(
        series_of(&sample),
        vec![Series::new(
            "node_disk_info",
            [("device", "vda"), ("service_name", "node")]
        )]
    );
}

/// Found by the check against a real Prometheus: Ceph's host dashboard joins node_exporter's
/// disk series with `ceph_disk_occupation_human`; on a host without Ceph the join has no
/// data under the baseline already, so it cannot be answered (or lost) under a candidate.
#[test]
fn a_query_that_needs_a_selector_without_series_is_unobserved() {
    let baseline = fs_series("node", Some("ext4"));
    let queries = parse_source(
        "list",
        SourceKind::PromqlList,
        concat!(
            "rate(node_cpu_seconds_total[5m]) * on (instance) group_left (ceph_daemon) ceph_disk_occupation\n",
            "node_filesystem_readonly and ceph_health_status\n",
            "ceph_health_status unless node_filesystem_readonly\n",
            "count(ceph_mgr_status == 1) or vector(0)\n",
            "absent(ceph_health_status)\n",
            "node_filesystem_readonly or ceph_health_status\n",
            "node_filesystem_readonly unless ceph_health_status\n",
            "node_filesystem_readonly * 2\n",
            "label_replace(node_filesystem_readonly, \"x\", \"$1\", \"fstype\", \"(.*)\")\n",
            "scalar(sum(node_filesystem_readonly))\n",
            "absent(node_filesystem_readonly)\n",
        ),
    )
    .unwrap();
    let statuses: Vec<QueryStatus> = evaluate_all(&queries, &baseline, &baseline)
        .into_iter()
        .map(|v| v.status)
        .collect();
    use QueryStatus::{Answered, Unobserved};
    assert_eq!(
        statuses,
        [
            Unobserved, Unobserved, Unobserved, Unobserved, Unobserved, Answered, Answered,
            Answered, Answered, Answered, Answered
        ]
    );
    // Nor is it broken when the candidate loses the side that did match.
    let candidate: Vec<Series> = baseline
        .iter()
        .filter(|s| s.metric != "node_cpu_seconds_total")
        .cloned()
        .collect();
    assert_eq!(
        evaluate(&queries[0], &baseline, &candidate).status,
        Unobserved
    );
}

#[test]
fn dashboard_targets_with_variables() {
    let dashboard = r#"{
      "title": "Node",
      "panels": [
        {"type": "row", "title": "CPU", "collapsed": true, "panels": [
          {"title": "CPU busy", "targets": [
            {"refId": "A", "expr": "sum by (mode) (rate(node_cpu_seconds_total{job=\"$job\", instance=~\"${instance:regex}\"}[$__rate_interval]))"}
          ]}
        ]},
        {"title": "Logs", "datasource": {"type": "loki", "uid": "x"}, "targets": [{"refId": "A", "expr": "{job=\"x\"} |= \"error\""}]},
        {"title": "Up", "targets": [{"refId": "B", "expr": "up{job=~\"[[job]]\"} offset $__interval"}, {"refId": "C", "expr": ""}]}
      ]
    }"#;
    let queries = parse_source("node.json", SourceKind::GrafanaDashboard, dashboard).unwrap();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(queries[0].name, "CPU busy [A]");
    assert_eq!(
        queries[0].location,
        "dashboard \"Node\", panel \"CPU busy\" (panels[0].panels[0].targets[0])"
    );
    let s = &queries[0].needs.selectors[0];
    assert!(s.matchers.iter().all(|m| m.kind == MatchKind::Present));
    // Variables match any value of a present label.
    let baseline = fs_series("node", None);
    let verdicts = evaluate_all(&queries, &baseline, &baseline);
    assert!(
        verdicts.iter().all(|v| v.status == QueryStatus::Answered),
        "{verdicts:?}"
    );
    let no_instance: Vec<Series> = baseline
        .iter()
        .cloned()
        .map(|mut s| {
            s.labels.remove("instance");
            s
        })
        .collect();
    let verdicts = evaluate_all(&queries, &baseline, &no_instance);
    assert_eq!(verdicts[0].status, QueryStatus::Broken);
    // `up{job=~...}` keeps its labels in the output: losing `instance` changes it.
    assert_eq!(verdicts[1].status, QueryStatus::Changed);
}

#[test]
fn substitution_keeps_regex_groups_and_picks_durations() {
    assert_eq!(
        substitute_variables(r#"label_replace(a{x="$v"}, "h", "$1", "i", "(.*)")[$__range:]"#),
        r#"label_replace(a{x="__phoenix_var__"}, "h", "$1", "i", "(.*)")[5m:]"#
    );
    assert_eq!(substitute_variables("a > $__range_s"), "a > 1");
    // A number where PromQL wants one, a label name in label lists, a metric name skipped.
    assert_eq!(
        substitute_variables(
            "topk($topk, sum by (pool, $group) (rate(x[1m])) * on ($l) group_left (name) y)"
        ),
        "topk(1, sum by (pool, __phoenix_var__) (rate(x[1m])) * on (__phoenix_var__) group_left (name) y)"
    );
    let needs = needs_of(&substitute_variables(
        "sum by ($group) ($metric{job=\"x\"}) + up",
    ))
    .unwrap();
    assert!(needs.grouping.is_empty());
    assert_eq!(needs.selectors.len(), 1);
    assert_eq!(needs.selectors[0].metric.as_deref(), Some("up"));
}

#[test]
fn parse_errors_name_source_rule_and_position() {
    let bad = "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m])\n      - record: ok\n        expr: up\n";
    let errors = parse_source("bad.yml", SourceKind::RuleFile, bad).unwrap_err();
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.location, "group \"g\", alert \"Broken\"");
    assert_eq!((e.line, e.column), (Some(5), Some(15)));
    let text = e.to_string();
    assert!(
        text.starts_with("bad.yml:5:15: group \"g\", alert \"Broken\": PromQL does not parse"),
        "{text}"
    );

    let errors = parse_source("l", SourceKind::PromqlList, "up\n  rate(x[5m]\n").unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (Some(2), Some(3)));
    assert_eq!(
        errors[0].to_string(),
        "l:2:3: line 2: PromQL does not parse: unclosed left parenthesis"
    );

    let errors =
        parse_source("d.json", SourceKind::GrafanaDashboard, "{\"panels\": [}").unwrap_err();
    assert!(errors[0].message.starts_with("not a JSON dashboard"));
    let errors = parse_source("r.yml", SourceKind::RuleFile, "rules: []").unwrap_err();
    assert!(errors[0].message.contains("groups"));
    let errors = parse_source("e", SourceKind::PromqlList, "# nothing\n").unwrap_err();
    assert_eq!(errors[0].message, "no query found");
}

#[test]
fn preview_reports_the_inventory_on_a_recorded_host() {
    use crate::pipeline::preview::preview_with_queries;
    use crate::pipeline::{PipelineRef, RenderContext, TemplateRegistry, corpus};

    let sample = corpus::host_sample(corpus::HOSTS[0].1);
    let series = series_of(&sample);
    let with_pid = series
        .iter()
        .find(|s| {
            s.labels.contains_key("process_pid") && s.labels.contains_key("process_executable_name")
        })
        .expect("the corpus has process series");
    let metric = &with_pid.metric;
    let list = format!(
        "sum by (process_executable_name) ({metric})\n{metric}{{process_pid!=\"\"}}\nsum by (process_pid) ({metric})\n"
    );
    let inventory = parse_source("processes", SourceKind::PromqlList, &list).unwrap();
    let registry = TemplateRegistry::builtin();
    let context = RenderContext::default();
    let aggregate = preview_with_queries(
        &registry,
        &PipelineRef::new("aggregate"),
        &context,
        &sample,
        &inventory,
    )
    .unwrap();
    let kept = aggregate.queries.unwrap();
    // Summing processes by executable name drops the pid: the per-executable total still
    // answers, the per-pid selector breaks, the per-pid grouping merges.
    assert_eq!(
        (kept.answered, kept.broken, kept.changed),
        (1, 1, 1),
        "{kept:?}"
    );
    assert_eq!(kept.affected[0].name, "processes:2");
    assert_eq!(kept.affected[0].status, QueryStatus::Broken);
    assert!(
        kept.affected[0].reasons[0].contains("`process_pid`"),
        "{kept:?}"
    );
    // The baseline pipeline keeps everything; no inventory, no report.
    let baseline = preview_with_queries(
        &registry,
        &PipelineRef::new("baseline"),
        &context,
        &sample,
        &inventory,
    )
    .unwrap();
    assert_eq!(baseline.queries.unwrap().answered, 3);
    let plain = preview_with_queries(
        &registry,
        &PipelineRef::new("baseline"),
        &context,
        &sample,
        &[],
    )
    .unwrap();
    assert!(plain.queries.is_none());
}

fn frozen_rules() -> Vec<ExperimentQuery> {
    let source = QuerySource::import(
        "node.rules.yml",
        SourceKind::RuleFile,
        RULES,
        "alice",
        chrono::Utc::now(),
    )
    .unwrap();
    freeze(&[source]).unwrap()
}

#[test]
fn a_frozen_inventory_names_its_source_and_is_bounded() {
    let frozen = frozen_rules();
    assert_eq!(frozen.len(), 3);
    assert_eq!(frozen[2].name, "NodeDown");
    assert!(
        frozen[2].location.starts_with("node.rules.yml: "),
        "{}",
        frozen[2].location
    );
    let many = (0..=MAX_EXPERIMENT_QUERIES)
        .map(|i| format!("up{{job=\"j{i}\"}}"))
        .collect::<Vec<_>>()
        .join("\n");
    let big = QuerySource::import(
        "big",
        SourceKind::PromqlList,
        &many,
        "a",
        chrono::Utc::now(),
    )
    .unwrap();
    let err = freeze(&[big]).unwrap_err();
    assert_eq!(err.queries, MAX_EXPERIMENT_QUERIES + 1);
    assert!(err.to_string().contains("at most 1000 queries"), "{err}");
}

#[test]
fn a_query_set_reports_one_status_per_query_with_the_reasons_of_the_affected() {
    let set = QuerySet::new(&frozen_rules());
    assert_eq!(set.len(), 3);
    let same = set.evaluate(
        &fs_series("node", Some("ext4")),
        &fs_series("node", Some("ext4")),
    );
    assert_eq!(same.statuses, "aaa");
    assert!(same.reasons.is_empty());
    // The candidate drops `fstype`: the filesystem alert breaks, the others answer.
    let out = set.evaluate(&fs_series("node", Some("ext4")), &fs_series("node", None));
    assert_eq!(out.statuses, "baa");
    assert_eq!(out.count(QueryStatus::Broken), 1);
    assert_eq!(out.count(QueryStatus::Answered), 2);
    assert_eq!(out.reasons.len(), 1);
    assert_eq!(out.reasons[0].query, 0);
    assert!(
        out.reasons_of(0)[0].contains("drops label `fstype`"),
        "{:?}",
        out.reasons
    );
    // The same rule as `evaluate`, query by query.
    let verdicts = evaluate_all(
        &rules(),
        &fs_series("node", Some("ext4")),
        &fs_series("node", None),
    );
    let letters: String = verdicts.iter().map(|v| v.status.letter()).collect();
    assert_eq!(letters, out.statuses);
    // Nothing in the baseline: unobserved.
    let none = set.evaluate(&[], &[]);
    assert_eq!(none.statuses, "uuu");
}
