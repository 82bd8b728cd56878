//! `phoenix pipeline ...`

use phoenix_client::api::deployment::{Deployment, DeploymentPage, DeploymentState};
use phoenix_client::api::pipeline::{
    Preview, RenderResponse, TemplateInfo, TemplateList, ValidationResult,
};

use crate::harness::{Server, assert_aligned};

fn tmp(name: &str, text: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn templates_render_validate_preview() {
    let server = Server::start();

    let table = server.run(&["pipeline", "templates"]);
    assert_aligned(table.ok(), "NAME");
    assert!(
        table.stdout.lines().any(|l| l.starts_with("topk ")),
        "{}",
        table.stdout
    );
    let list: TemplateList = server.run(&["pipeline", "templates", "-o", "json"]).json();
    assert!(list.items.iter().any(|t| t.name == "topk"));
    let topk = server.run(&["pipeline", "templates", "topk"]);
    assert_aligned(topk.ok(), "PARAMETER");
    let info: TemplateInfo = server
        .run(&["pipeline", "templates", "topk", "-o", "json"])
        .json();
    assert_eq!(info.name, "topk");
    assert!(info.params.iter().any(|p| p.name == "k"));
    server.run(&["pipeline", "templates", "no-such"]).fails(1);

    // render prints the Collector YAML itself (ready to redirect to a file).
    let yaml = server
        .run(&[
            "pipeline",
            "render",
            "-t",
            "topk",
            "--param",
            "k=5",
            "--critical-process",
            "postgres",
        ])
        .ok()
        .to_owned();
    assert!(yaml.contains("receivers:"), "{yaml}");
    let rendered: RenderResponse = server
        .run(&[
            "pipeline", "render", "-t", "topk", "--param", "k=5", "-o", "json",
        ])
        .json();
    assert!(rendered.validation.valid);
    assert_eq!(rendered.rendered.params["k"], serde_json::json!(5));
    let bad = server.run(&["pipeline", "render", "-t", "topk", "--param", "k=-5"]);
    assert!(bad.fails(1).contains("HTTP 422"), "{bad:?}");

    // validate: exit 0 for a valid file, 1 with the issues for an invalid one.
    let good = tmp("good.yaml", &yaml);
    let valid = server.run(&["pipeline", "validate", &good]);
    assert!(valid.ok().contains(": valid"), "{}", valid.stdout);
    assert_aligned(&valid.stdout, "PIPELINE");
    let result: ValidationResult = server
        .run(&["pipeline", "validate", &good, "-o", "json"])
        .json();
    assert!(result.valid);
    let broken = tmp("broken.yaml", "receivers: [unclosed\n");
    let invalid = server.run(&["pipeline", "validate", &broken]);
    assert_eq!(invalid.code, 1, "{invalid:?}");
    assert_aligned(&invalid.stdout, "LOCATION");
    assert!(invalid.stderr.contains("invalid"), "{invalid:?}");
    let invalid = server.run(&["pipeline", "validate", &broken, "-o", "json"]);
    assert_eq!(invalid.code, 1);
    let result: ValidationResult = serde_json::from_str(&invalid.stdout).unwrap();
    assert!(!result.valid && !result.issues.is_empty());
    server
        .run(&["pipeline", "validate", "/nonexistent.yaml"])
        .fails(2);

    // preview on a recorded sample.
    let mut exposition = String::new();
    for pid in 0..30 {
        exposition.push_str(&format!(
            "process_cpu_time{{process_pid=\"{pid}\",process_executable_name=\"p{pid}\"}} {}\n",
            pid * 10
        ));
    }
    let sample = tmp("sample.prom", &exposition);
    let preview = server.run(&["pipeline", "preview", "-t", "baseline", "--sample", &sample]);
    assert_aligned(preview.ok(), "MEASURE");
    let preview: Preview = server
        .run(&[
            "pipeline", "preview", "-t", "baseline", "--sample", &sample, "-o", "json",
        ])
        .json();
    assert_eq!(preview.input.series, 30);
    // --sample or --agent is required, not both: usage errors.
    server.run(&["pipeline", "preview", "-t", "topk"]).fails(2);
    server
        .run(&[
            "pipeline",
            "preview",
            "-t",
            "topk",
            "--sample",
            &sample,
            "--agent",
            &uuid::Uuid::now_v7().to_string(),
        ])
        .fails(2);
    // A pasted sample priced over its interval.
    let priced: Preview = server
        .run(&[
            "pipeline",
            "preview",
            "-t",
            "baseline",
            "--sample",
            &sample,
            "--interval",
            "15",
            "--pricing-model",
            "generic-per-million",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(priced.cost.unwrap().pricing_model, "generic-per-million");
}

#[test]
fn preview_on_an_agents_snapshot() {
    use phoenix_client::api::measure::{CardinalitySnapshot, MetricsReport, SnapshotSeries};

    let server = Server::start();
    let agent = server.agent("web-1", &[]);
    let id = agent.id.to_string();
    // No snapshot yet: the server's 409, a failure (exit 1) saying why.
    let early = server.run(&["pipeline", "preview", "-t", "topk", "--agent", &id]);
    assert!(
        early.fails(1).contains("no cardinality snapshot"),
        "{}",
        early.stderr
    );
    let series = (0..40)
        .flat_map(|pid| {
            [
                ("process.cpu.time", f64::from(pid)),
                ("process.memory.usage", 1e6),
            ]
            .map(|(metric, value)| SnapshotSeries {
                metric: metric.to_owned(),
                labels: [
                    ("process.pid".to_owned(), pid.to_string()),
                    ("process.executable.name".to_owned(), format!("p{pid}")),
                ]
                .into(),
                points: 4,
                value: Some(value),
            })
        })
        .collect();
    server
        .block_on(agent.client.report_metrics(&MetricsReport {
            packed_snapshot: None,
            samples: Vec::new(),
            snapshot: Some(CardinalitySnapshot {
                agent_id: agent.id,
                host: "web-1".to_owned(),
                taken_at: server.now(),
                interval_secs: 60,
                source: Default::default(), // the host's input
                series,
            }),
        }))
        .unwrap();
    let args = [
        "pipeline",
        "preview",
        "-t",
        "topk",
        "--param",
        "k=5",
        "--agent",
        &id,
        "--pricing-model",
        "generic-per-million",
    ];
    let table = server.run(&args);
    let text = table.ok();
    assert!(text.contains("snapshot of"), "{text}");
    assert!(text.contains("cost under generic-per-million"), "{text}");
    let mut json_args = args.to_vec();
    json_args.extend(["-o", "json"]);
    let preview: Preview = server.run(&json_args).json();
    assert_eq!(preview.input.series, 80);
    assert!(preview.output.series < 80);
    assert_eq!(preview.snapshot.unwrap().agent_id, agent.id);
    let cost = preview.cost.unwrap();
    assert!(cost.reduction_pct.unwrap() > 0.0, "{cost:?}");
    // `--interval` belongs to `--sample`.
    server
        .run(&[
            "pipeline",
            "preview",
            "-t",
            "topk",
            "--agent",
            &id,
            "--interval",
            "5",
        ])
        .fails(2);
}

#[test]
fn deploy_list_show_pause_resume_rollback() {
    let server = Server::start();
    let agent = server.agent("web-1", &[("role", "web")]);
    let created: Deployment = server
        .run(&[
            "pipeline",
            "deploy",
            "--name",
            "topk everywhere",
            "-t",
            "topk",
            "--param",
            "k=5",
            "--label",
            "role=web",
            "--initial-batch",
            "1",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(created.progress.total, 1);
    assert_eq!(created.pipeline.params["k"], serde_json::json!(5));
    let id = created.id.to_string();

    let list = server.run(&["pipeline", "deployments"]);
    assert_aligned(list.ok(), "ID");
    assert!(list.stdout.contains("topk everywhere"));
    let page: DeploymentPage = server
        .run(&["pipeline", "deployments", "--all", "-o", "json"])
        .json();
    assert_eq!(page.items.len(), 1);
    let one = server.run(&["pipeline", "deployments", &id]);
    assert_aligned(one.ok(), "AGENT");
    let paused: Deployment = server.run(&["pipeline", "pause", &id, "-o", "json"]).json();
    assert_eq!(paused.state, DeploymentState::Paused);
    let resumed: Deployment = server
        .run(&["pipeline", "resume", &id, "-o", "json"])
        .json();
    assert_ne!(resumed.state, DeploymentState::Paused);
    server.ack_next(&agent);
    let rolled: Deployment = server
        .run(&["pipeline", "rollback", &id, "-o", "json"])
        .json();
    assert!(
        matches!(
            rolled.state,
            DeploymentState::RollingBack | DeploymentState::RolledBack
        ),
        "{rolled:?}"
    );
    // Nothing to deploy: usage error; no agent matches: the server refuses.
    server.run(&["pipeline", "deploy", "--name", "x"]).fails(2);
    server
        .run(&[
            "pipeline",
            "deploy",
            "--name",
            "x",
            "-t",
            "topk",
            "--label",
            "role=none",
        ])
        .fails(1);
}
