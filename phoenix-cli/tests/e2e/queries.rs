//! `phoenix queries import/list/delete`.

use phoenix_client::api::query::{QuerySource, QuerySourceList, SourceKind};

use crate::harness::{Server, assert_aligned};

const RULES: &str = "groups:\n  - name: node\n    rules:\n      - alert: NodeDown\n        expr: up{job=\"node\"} == 0\n      - record: job:cpu:rate5m\n        expr: sum by (job) (rate(node_cpu_seconds_total[5m]))\n";

const DASHBOARD: &str = r#"{"title": "Node", "panels": [{"title": "CPU", "targets": [{"refId": "A", "expr": "sum by (mode) (rate(node_cpu_seconds_total{instance=~\"$instance\"}[$__rate_interval]))"}]}]}"#;

#[test]
fn import_list_and_delete_rule_files_and_dashboards() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("node.rules.yml");
    let dashboard = dir.path().join("node.json");
    let list = dir.path().join("extra");
    std::fs::write(&rules, RULES).unwrap();
    std::fs::write(&dashboard, DASHBOARD).unwrap();
    std::fs::write(&list, "# by hand\nnode_load1 > 4\n").unwrap();
    let paths: Vec<String> = [&rules, &dashboard, &list]
        .iter()
        .map(|p| p.display().to_string())
        .collect();

    let empty = server.run(&["queries", "list"]);
    assert!(empty.ok().contains("no query sources"), "{}", empty.stdout);

    let imported = server.run(&["queries", "import", &paths[0], &paths[1], &paths[2]]);
    let out = imported.ok();
    assert!(
        out.contains("imported node.rules.yml (rule_file): 2 queries"),
        "{out}"
    );
    assert!(
        out.contains("imported node.json (grafana_dashboard): 1 query"),
        "{out}"
    );
    assert!(
        out.contains("imported extra (promql_list): 1 query"),
        "{out}"
    );

    // Previews report the inventory.
    let sample = dir.path().join("sample.prom");
    std::fs::write(
        &sample,
        "# TYPE up gauge\nup{job=\"node\",instance=\"a\"} 1\n",
    )
    .unwrap();
    let sample = sample.display().to_string();
    let preview = server.run(&["pipeline", "preview", "-t", "baseline", "--sample", &sample]);
    assert!(
        preview
            .ok()
            .contains("queries kept: 1 answered, 0 changed, 0 broken, 3 unobserved"),
        "{}",
        preview.stdout
    );

    let table = server.run(&["queries", "list"]);
    assert_aligned(table.ok(), "ID");
    let queries = server.run(&["queries", "list", "--queries"]);
    assert_aligned(queries.ok(), "SOURCE");
    assert!(queries.stdout.contains("NodeDown"), "{}", queries.stdout);
    assert!(
        queries.stdout.contains("instance,mode"),
        "{}",
        queries.stdout
    );
    let sources: QuerySourceList = server.run(&["queries", "list", "-o", "json"]).json();
    let names: Vec<&str> = sources.items.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["extra", "node.json", "node.rules.yml"]);

    // --kind and --name override detection; a second import of a name replaces it.
    let again: Vec<QuerySource> = server
        .run(&[
            "queries",
            "import",
            &paths[2],
            "--kind",
            "promql-list",
            "--name",
            "node.json",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(again[0].kind, SourceKind::PromqlList);
    assert_eq!(again[0].id, sources.items[1].id);

    // A query that does not parse: exit 1, the file, rule and position on stderr.
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - alert: Oops\n        expr: rate(x[5m]\n",
    )
    .unwrap();
    let refused = server.run(&["queries", "import", &bad.display().to_string()]);
    let err = refused.fails(1);
    assert!(err.contains("HTTP 422"), "{err}");
    assert!(
        err.contains("content: bad.yml:5:15: group \"g\", alert \"Oops\": PromQL does not parse"),
        "{err}"
    );
    // Usage errors: exit 2.
    let missing = server.run(&["queries", "import", "/no/such/file.yml"]);
    assert!(missing.fails(2).contains("cannot read"), "{missing:?}");
    let two_names = server.run(&["queries", "import", &paths[0], &paths[1], "--name", "x"]);
    two_names.fails(2);

    let id = sources.items[0].id.to_string();
    assert!(
        server
            .run(&["queries", "delete", &id])
            .ok()
            .contains("deleted")
    );
    server.run(&["queries", "delete", &id]).fails(1);
    let left: QuerySourceList = server.run(&["queries", "list", "-o", "json"]).json();
    assert_eq!(left.items.len(), 2);
}

/// Rule file and dashboard imported with the CLI; the experiment created with the CLI is
/// judged on them: samples saying the alert broke make the verdict fail on `queries_broken`
/// naming the alert, in `experiment get` and `experiment metrics`.
#[test]
fn an_experiment_created_after_an_import_fails_on_a_broken_alert() {
    use phoenix_client::api::experiment::{Experiment, KpiName, Phase, VerdictOutcome};
    use phoenix_client::api::query::{QueryReasons, SampleQueries};

    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("node.rules.yml");
    let dashboard = dir.path().join("node.json");
    std::fs::write(&rules, RULES).unwrap();
    std::fs::write(&dashboard, DASHBOARD).unwrap();
    server
        .run(&[
            "queries",
            "import",
            &rules.display().to_string(),
            &dashboard.display().to_string(),
        ])
        .ok();
    let agent = server.agent("web-1", &[("role", "web")]);
    let created: Experiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            "aggregate on web",
            "--candidate",
            "aggregate",
            "--label",
            "role=web",
            "--duration",
            "60",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(created.queries, 3);
    assert!(
        created
            .spec
            .criteria
            .iter()
            .any(|c| c.kpi == KpiName::QueriesBroken && c.critical),
        "{:?}",
        created.spec.criteria
    );
    let id = created.id.to_string();
    let shown = server.run(&["experiment", "get", &id]);
    assert!(
        shown.ok().contains("3 frozen from the inventory"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("queries_broken<=0:critical"),
        "{}",
        shown.stdout
    );
    server.run(&["experiment", "start", &id]).ok();
    server.ack_next(&agent);
    // Frozen order: sources by name (node.json, then node.rules.yml).
    server.report_metrics_with_queries(
        &agent,
        created.id,
        Some(SampleQueries {
            statuses: "aba".to_owned(),
            reasons: vec![QueryReasons {
                query: 1,
                reasons: vec![
                    "`up{job=\"node\"}` matches no series: the candidate drops label `job`"
                        .to_owned(),
                ],
            }],
        }),
    );
    server.advance(61);
    server.heartbeat(&agent);
    server.tick();
    let done: Experiment = server.run(&["experiment", "get", &id, "-o", "json"]).json();
    assert_eq!(done.phase, Phase::Completed);
    let verdict = done.verdict.expect("judged");
    assert_eq!(
        verdict.outcome,
        VerdictOutcome::Fail,
        "{:?}",
        verdict.reasons
    );
    let shown = server.run(&["experiment", "get", &id]);
    let line = shown
        .ok()
        .lines()
        .find(|l| l.starts_with("queries_broken<=0:critical"))
        .unwrap_or_else(|| panic!("{}", shown.stdout));
    assert!(line.contains(" 1 "), "{line}");
    assert!(
        line.contains("broken: `NodeDown` (node.rules.yml: group \"node\", alert \"NodeDown\")"),
        "{line}"
    );
    let metrics = server.run(&["experiment", "metrics", &id]);
    assert!(
        metrics
            .ok()
            .contains("Queries: 2 answered, 0 changed, 1 broken, 0 unobserved"),
        "{}",
        metrics.stdout
    );
    assert_aligned(&metrics.stdout, "STATUS");
    assert!(
        metrics.stdout.contains("drops label `job`"),
        "{}",
        metrics.stdout
    );
}
