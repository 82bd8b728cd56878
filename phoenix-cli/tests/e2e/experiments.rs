//! `phoenix experiment ...` without watching.

use phoenix_client::api::analysis::{CostAnalysis, KpiReport};
use phoenix_client::api::experiment::{
    Cause, Comparison, EventPage, Experiment, ExperimentPage, KpiName, NewExperiment, Phase,
};
use phoenix_client::api::task::RemovalMode;

use crate::harness::{Server, assert_aligned};

fn tmp(name: &str, text: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const YAML: &str = "\
name: from yaml
description: K=10 against today's pipeline
spec:
  baseline:
    template: baseline
  candidate:
    template: topk
    params:
      k: 10
  targets:
    labels:
      role: web
  duration_secs: 600
  critical_processes: [postgres]
  criteria:
    - kpi: cardinality_reduction_pct
      comparison: at_least
      threshold: 60
      critical: true
";

#[test]
fn create_from_flags_yaml_and_json_then_list_get_events_delete() {
    let server = Server::start();

    // From flags: every flag lands in the API object the server returns.
    let created: Experiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            "from flags",
            "--description",
            "d",
            "--candidate",
            "topk",
            "--param",
            "k=5",
            "--label",
            "role=web",
            "--host",
            "web-1",
            "--duration",
            "10m",
            "--warmup",
            "1m",
            "--critical-process",
            "postgres",
            "--critical-metric",
            "system.*",
            "--criterion",
            "cardinality_reduction_pct>=60:critical",
            "--criterion",
            "agent_cpu_overhead_pct<=20",
            "--auto-rollback",
            "--min-agents",
            "1",
            "--sample-interval",
            "5s",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(created.phase, Phase::Created);
    assert_eq!(created.name, "from flags");
    let s = &created.spec;
    assert_eq!(s.baseline.template, "baseline");
    assert_eq!(s.candidate.template, "topk");
    assert_eq!(s.candidate.params["k"], serde_json::json!(5));
    assert_eq!(s.targets.labels["role"], "web");
    assert_eq!(s.targets.hosts, ["web-1"]);
    assert_eq!((s.duration_secs, s.warmup_secs), (600, 60));
    assert_eq!(s.critical_processes, ["postgres"]);
    assert_eq!(s.critical_metrics, ["system.*"]);
    assert_eq!(s.criteria.len(), 2);
    assert_eq!(s.criteria[0].kpi, KpiName::CardinalityReductionPct);
    assert!(s.criteria[0].critical);
    assert_eq!(s.criteria[1].comparison, Comparison::AtMost);
    assert!(s.auto_rollback && !s.auto_promote);
    assert_eq!(s.sample_interval_secs, 5);
    // The JSON is the API object: equal to what the typed client reads.
    let read = server
        .block_on(server.admin().get_experiment(created.id))
        .unwrap();
    assert_eq!(created, read);

    // From a YAML file.
    let yaml = tmp("exp.yaml", YAML);
    let from_yaml: Experiment = server
        .run(&["experiment", "create", "-f", &yaml, "-o", "json"])
        .json();
    assert_eq!(from_yaml.name, "from yaml");
    assert_eq!(from_yaml.spec.candidate.params["k"], serde_json::json!(10));
    assert_eq!(from_yaml.spec.criteria.len(), 1);

    // From JSON on standard input (detected by content); the table output names it.
    let request = NewExperiment {
        name: "from json".to_owned(),
        description: String::new(),
        spec: from_yaml.spec.clone(),
    };
    let out = server.run_with_stdin(
        &["experiment", "create", "--file", "-"],
        &serde_json::to_string(&request).unwrap(),
    );
    assert!(out.ok().starts_with("created experiment "), "{out:?}");
    // An experiment as `get -o json` prints it can be cloned.
    let exported = tmp(
        "exported.json",
        &server
            .run(&["experiment", "get", &from_yaml.id.to_string(), "-o", "json"])
            .stdout,
    );
    let clone: Experiment = server
        .run(&["experiment", "create", "-f", &exported, "-o", "json"])
        .json();
    assert_ne!(clone.id, from_yaml.id);
    assert_eq!(clone.spec, from_yaml.spec);

    // --dry-run prints the request and creates nothing.
    let dry: NewExperiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            "dry",
            "--candidate",
            "topk",
            "--duration",
            "60",
            "--dry-run",
        ])
        .json();
    assert_eq!(dry.spec.duration_secs, 60);

    // list: table aligned, JSON is the page; filters and --all.
    let table = server.run(&["experiment", "list"]);
    assert_aligned(table.ok(), "ID");
    for name in ["from flags", "from yaml", "from json"] {
        assert!(table.stdout.contains(name), "{}", table.stdout);
    }
    assert!(!table.stdout.contains("dry"));
    let page: ExperimentPage = server.run(&["experiment", "list", "-o", "json"]).json();
    assert_eq!(page.items.len(), 4);
    let one: ExperimentPage = server
        .run(&["experiment", "list", "--limit", "1", "-o", "json"])
        .json();
    assert_eq!(one.items.len(), 1);
    let cursor = one.next_cursor.expect("a next page");
    let next: ExperimentPage = server
        .run(&[
            "experiment",
            "list",
            "--limit",
            "1",
            "--cursor",
            &cursor,
            "-o",
            "json",
        ])
        .json();
    assert_ne!(next.items[0].id, one.items[0].id);
    let all: ExperimentPage = server
        .run(&["experiment", "list", "--limit", "1", "--all", "-o", "json"])
        .json();
    assert_eq!(all.items.len(), 4);
    assert!(all.next_cursor.is_none());
    let running: ExperimentPage = server
        .run(&["experiment", "list", "--phase", "running", "-o", "json"])
        .json();
    assert!(running.items.is_empty());
    assert_eq!(
        server
            .run(&["experiment", "list", "--phase", "running"])
            .ok(),
        "no experiments\n"
    );

    // get: details and tables.
    let id = created.id.to_string();
    let get = server.run(&["experiment", "get", &id]);
    assert!(
        get.ok().contains("candidate               topk k=5"),
        "{}",
        get.stdout
    );
    assert!(
        get.stdout
            .contains("criteria                cardinality_reduction_pct>=60:critical")
    );
    let got: Experiment = server.run(&["experiment", "get", &id, "-o", "json"]).json();
    assert_eq!(got, read);

    // status without --watch prints once.
    let status = server.run(&["experiment", "status", &id]);
    assert!(
        status.ok().contains("phase     created"),
        "{}",
        status.stdout
    );
    let status: Experiment = server
        .run(&["experiment", "status", &id, "-o", "json"])
        .json();
    assert_eq!(status.phase, Phase::Created);

    // events.
    let events = server.run(&["experiment", "events", &id]);
    assert_aligned(events.ok(), "SEQ");
    let events: EventPage = server
        .run(&["experiment", "events", &id, "--all", "-o", "json"])
        .json();
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].cause, Cause::Created);

    // delete, then it is gone (exit 1 with the server's message).
    assert_eq!(
        server.run(&["experiment", "delete", &id]).ok(),
        format!("deleted experiment {id}\n")
    );
    let gone = server.run(&["experiment", "get", &id]);
    assert!(gone.fails(1).contains("not_found, HTTP 404"), "{gone:?}");
}

#[test]
fn server_refusals_exit_1_with_the_message_and_field_errors() {
    let server = Server::start();
    // 422 from flags: one line per field error, with its path.
    let invalid = server.run(&[
        "experiment",
        "create",
        "--name",
        "bad",
        "--candidate",
        "no-such-template",
        "--duration",
        "5",
    ]);
    let stderr = invalid.fails(1);
    assert!(stderr.contains("validation_failed, HTTP 422"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("  spec.duration_secs: must be between 10")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("  spec.candidate.template")),
        "{stderr}"
    );

    // 422 for a YAML file: the field errors point at the file's lines.
    let yaml = tmp(
        "bad.yaml",
        &YAML.replace("duration_secs: 600", "duration_secs: 5"),
    );
    let stderr = server
        .run(&["experiment", "create", "-f", &yaml])
        .fails(1)
        .to_owned();
    assert!(
        stderr.contains(&format!(
            "spec.duration_secs: must be between 10 and 2592000 seconds ({yaml}:13:3)"
        )),
        "{stderr}"
    );

    // A Created experiment cannot be rolled back: 409 with the current phase.
    let created: Experiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            "x",
            "--candidate",
            "topk",
            "--duration",
            "60",
            "-o",
            "json",
        ])
        .json();
    let id = created.id.to_string();
    let refused = server.run(&["experiment", "rollback", &id, "--instant"]);
    let stderr = refused.fails(1);
    assert!(stderr.contains("HTTP 409"), "{stderr}");
    assert!(stderr.contains("current phase: created"), "{stderr}");
    // No live agent matches: start is refused and nothing changes.
    let stderr = server
        .run(&["experiment", "start", &id])
        .fails(1)
        .to_owned();
    assert!(stderr.starts_with("error: "), "{stderr}");
    // Nothing to promote in an experiment that never ran.
    server.run(&["experiment", "promote", &id]).fails(1);
    // Stopping one that never started is allowed: it ends at once.
    let stopped: Experiment = server
        .run(&["experiment", "stop", &id, "-o", "json"])
        .json();
    assert_eq!(stopped.phase, Phase::Stopped);
    server.run(&["experiment", "start", &id]).fails(1);
    let unknown = uuid::Uuid::now_v7().to_string();
    for command in ["get", "metrics", "cost", "events", "delete", "status"] {
        assert!(
            server
                .run(&["experiment", command, &unknown])
                .fails(1)
                .contains("HTTP 404"),
            "{command}"
        );
    }

    // Without a token: 401 with a hint.
    let anonymous = crate::harness::bare(&["--server", &server.base, "experiment", "list"]);
    let stderr = anonymous.fails(1);
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("PHOENIX_TOKEN"), "{stderr}");

    // Nobody listening: exit 1, the server named.
    let down = crate::harness::bare(&[
        "--server",
        "http://127.0.0.1:9",
        "--token",
        "x",
        "experiment",
        "list",
    ]);
    assert!(
        down.fails(1)
            .contains("cannot reach the Phoenix server at http://127.0.0.1:9"),
        "{down:?}"
    );
}

#[test]
fn bad_input_files_exit_2_with_the_field_and_line() {
    let server = Server::start();
    let typo = tmp(
        "typo.yaml",
        &YAML.replace("duration_secs: 600", "duration_secs: 600\n  duraton: 5"),
    );
    let stderr = server
        .run(&["experiment", "create", "-f", &typo])
        .fails(2)
        .to_owned();
    assert!(
        stderr.contains(&format!("spec.duraton: unknown field ({typo}:14:3)")),
        "{stderr}"
    );
    let wrong_type = tmp(
        "type.yaml",
        &YAML.replace("threshold: 60", "threshold: sixty"),
    );
    let stderr = server
        .run(&["experiment", "create", "-f", &wrong_type])
        .fails(2)
        .to_owned();
    assert!(stderr.contains("spec.criteria[0].threshold"), "{stderr}");
    assert!(stderr.contains(":18:7)"), "{stderr}");
    let broken = tmp("broken.json", "{\"name\": ");
    server
        .run(&["experiment", "create", "-f", &broken])
        .fails(2);
    let missing = server.run(&["experiment", "create", "-f", "/nonexistent/exp.yaml"]);
    assert!(
        missing
            .fails(2)
            .contains("cannot read /nonexistent/exp.yaml")
    );
    // Nothing was created by any of them.
    let page: ExperimentPage = server.run(&["experiment", "list", "-o", "json"]).json();
    assert!(page.items.is_empty());
}

#[test]
fn start_status_metrics_cost_events_rollback_and_delete_with_an_agent() {
    let server = Server::start();
    let agent = server.agent("web-1", &[("role", "web")]);
    let created: Experiment = server
        .run(&[
            "experiment",
            "create",
            "--name",
            "topk on web",
            "--candidate",
            "topk",
            "--label",
            "role=web",
            "--duration",
            "60",
            "-o",
            "json",
        ])
        .json();
    let id = created.id.to_string();
    let started = server.run(&["experiment", "start", &id]);
    assert!(
        started.ok().contains("phase    deploying"),
        "{}",
        started.stdout
    );
    server.ack_next(&agent);
    let status = server.run(&["experiment", "status", &id]);
    assert!(
        status.ok().contains("phase     running"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("deployed  1/1"), "{}", status.stdout);

    server.report_metrics(&agent, created.id);
    let metrics = server.run(&["experiment", "metrics", &id]);
    assert_aligned(metrics.ok(), "KPI ");
    assert!(
        metrics.stdout.contains("cardinality_reduction_pct  90.0%"),
        "{}",
        metrics.stdout
    );
    assert_aligned(&metrics.stdout, "HOST");
    let report: KpiReport = server
        .run(&["experiment", "metrics", &id, "-o", "json"])
        .json();
    assert_eq!(report.kpis.samples.judged, 6);
    let status = server.run(&["experiment", "status", &id]);
    assert!(status.ok().contains("series -90.0%"), "{}", status.stdout);

    let cost: CostAnalysis = server
        .run(&[
            "experiment",
            "cost",
            &id,
            "--fleet-hosts",
            "100",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(cost.fleet.expect("projected").fleet_hosts, 100);
    let cost = server.run(&["experiment", "cost", &id, "--fleet-hosts", "100"]);
    assert!(
        cost.ok().contains("100 hosts (from 1 measured)"),
        "{}",
        cost.stdout
    );

    let rolled: Experiment = server
        .run(&[
            "experiment",
            "rollback",
            &id,
            "--instant",
            "--reason",
            "too noisy",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(rolled.phase, Phase::RolledBack);
    let record = rolled.rollback.expect("provenance");
    assert_eq!(record.mode, RemovalMode::Instant);
    assert_eq!(record.reason.as_deref(), Some("too noisy"));
    let events = server.run(&["experiment", "events", &id]);
    assert_aligned(events.ok(), "SEQ");
    assert!(events.stdout.contains("too noisy"), "{}", events.stdout);
    // Terminal: it can be deleted now.
    server.run(&["experiment", "delete", &id]).ok();
}
