//! `fleet`, `cost`, `ui`, `completions`, the global options and usage errors.

use phoenix_client::api::agent::FleetStatus;
use phoenix_client::api::analysis::{CardinalityReport, CostFlowReport, CostHistory, FigureBasis};
use phoenix_client::api::experiment::{Experiment, ExperimentPage};

use crate::harness::{ADMIN, Server, assert_aligned, bare, phoenix_command};

#[test]
fn fleet_status_and_cost_flow_and_cardinality_on_reported_data() {
    let server = Server::start();
    let empty = server.run(&["fleet", "status"]);
    assert!(empty.ok().contains("no agents"), "{}", empty.stdout);

    let agent = server.agent("web-1", &[("role", "web")]);
    let fleet = server.run(&["fleet", "status"]);
    assert_aligned(fleet.ok(), "ID");
    assert!(fleet.stdout.contains("web-1"));
    assert!(fleet.stdout.contains("role=web"));
    let status: FleetStatus = server.run(&["fleet", "status", "-o", "json"]).json();
    assert_eq!(status.summary.total, 1);
    assert_eq!(status.agents[0].id, agent.id);

    // A snapshot arrives with an experiment's samples.
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
    server
        .run(&["experiment", "start", &created.id.to_string()])
        .ok();
    server.ack_next(&agent);
    server.report_metrics(&agent, created.id);

    let flow = server.run(&["cost", "flow", "--dimension", "metric"]);
    assert_aligned(flow.ok(), "GROUP");
    assert!(flow.stdout.contains("process.cpu.time"), "{}", flow.stdout);
    let report: CostFlowReport = server.run(&["cost", "flow", "-o", "json"]).json();
    assert_eq!(report.total_series, 100);
    let unknown = server.run(&["cost", "flow", "--pricing-model", "no-such-model"]);
    assert!(unknown.fails(1).contains("HTTP 422"), "{unknown:?}");

    let card = server.run(&[
        "cost",
        "cardinality",
        "--dimension",
        "metric",
        "--dimension",
        "label:process.executable.name",
        "--top",
        "3",
    ]);
    assert_aligned(card.ok(), "LABEL");
    assert_aligned(&card.stdout, "METRIC");
    assert_aligned(&card.stdout, "GROUP");
    let report: CardinalityReport = server
        .run(&["cost", "cardinality", "--dimension", "metric", "-o", "json"])
        .json();
    assert_eq!(report.hosts, 1);
    assert_eq!(report.coverage.reporting, 1);
    assert!(
        card.stdout.contains("live hosts reporting"),
        "{}",
        card.stdout
    );
    assert_eq!(report.total_series, 100);
    assert_eq!(report.breakdowns.len(), 1);

    // The controller records the cost history from the same host set.
    server.tick();
    let history = server.run(&["cost", "history", "--breakdown", "metric"]);
    assert_aligned(history.ok(), "START");
    assert!(
        history.stdout.contains("process.cpu.time"),
        "{}",
        history.stdout
    );
    assert!(history.stdout.contains("Monthly: "), "{}", history.stdout);
    assert!(history.stdout.contains("projected"), "{}", history.stdout);
    let h: CostHistory = server
        .run(&["cost", "history", "--granularity", "hour", "-o", "json"])
        .json();
    assert_eq!(h.points.len(), 1);
    assert_eq!(h.points[0].total.series, 100);
    assert!(h.points[0].groups.is_empty(), "total only by default");
    assert_eq!(h.monthly.unwrap().basis, FigureBasis::Projected);
    let bad = server.run(&["cost", "history", "--granularity", "week"]);
    assert!(bad.fails(2).contains("unknown granularity"), "{bad:?}");
    let backwards = server.run(&[
        "cost",
        "history",
        "--from",
        "2030-01-02T00:00:00Z",
        "--to",
        "2030-01-01T00:00:00Z",
    ]);
    assert!(backwards.fails(1).contains("HTTP 422"), "{backwards:?}");
}

#[test]
fn ui_prints_or_opens_the_dashboard_url() {
    let server = Server::start();
    let printed = server.run(&["ui", "--print"]);
    assert_eq!(printed.ok(), format!("{}/ui/\n", server.base));
    // No graphical session (the harness removes DISPLAY): the URL is printed. (Elsewhere
    // than on Linux a browser would really open.)
    if cfg!(target_os = "linux") {
        assert_eq!(server.run(&["ui"]).ok(), format!("{}/ui/\n", server.base));
    }
    // A server nested under a path keeps it.
    let nested = bare(&[
        "--server",
        "http://phoenix.example.com/base",
        "ui",
        "--print",
    ]);
    assert_eq!(nested.ok(), "http://phoenix.example.com/base/ui/\n");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = bare(&["completions", shell]);
        assert!(run.ok().contains("experiment"), "{shell}");
    }
    bare(&["completions", "tcsh"]).fails(2);
}

#[test]
fn server_and_token_from_the_environment() {
    let server = Server::start();
    let output = phoenix_command()
        .env("PHOENIX_SERVER", &server.base)
        .env("PHOENIX_TOKEN", ADMIN)
        .env("PHOENIX_OUTPUT", "json")
        .args(["experiment", "list"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let page: ExperimentPage = serde_json::from_slice(&output.stdout).unwrap();
    assert!(page.items.is_empty());
    // A flag wins over the environment.
    let output = phoenix_command()
        .env("PHOENIX_SERVER", "http://127.0.0.1:9")
        .env("PHOENIX_TOKEN", ADMIN)
        .args(["--server", &server.base, "experiment", "list"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "no experiments\n");
}

#[test]
fn usage_errors_exit_2() {
    let id = uuid::Uuid::now_v7().to_string();
    for args in [
        vec![],
        vec!["experiment"],
        vec!["nonsense"],
        vec!["experiment", "get", "not-a-uuid"],
        vec![
            "experiment",
            "create",
            "--candidate",
            "topk",
            "--duration",
            "60",
        ],
        vec![
            "experiment",
            "create",
            "--name",
            "x",
            "--candidate",
            "topk",
            "--duration",
            "10y",
        ],
        vec![
            "experiment",
            "create",
            "--name",
            "x",
            "--candidate",
            "topk",
            "--duration",
            "60",
            "--param",
            "novalue",
        ],
        vec![
            "experiment",
            "create",
            "--name",
            "x",
            "--candidate",
            "topk",
            "--duration",
            "60",
            "--criterion",
            "speed>=1",
        ],
        vec!["experiment", "create", "-f", "x.yaml", "--name", "x"],
        vec!["experiment", "list", "--phase", "done"],
        vec!["experiment", "rollback", &id, "--mode", "fast"],
        vec!["--output", "xml", "experiment", "list"],
        vec!["--server", "localhost:8080", "experiment", "list"],
        vec!["pipeline", "render"],
        vec!["cost", "cardinality", "--top", "many"],
    ] {
        let run = bare(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    // Help and version are not errors.
    assert!(bare(&["--help"]).ok().contains("experiment"));
    assert!(
        bare(&["experiment", "create", "--help"])
            .ok()
            .contains("--candidate")
    );
    assert!(bare(&["--version"]).ok().starts_with("phoenix "));
}
