//! `phoenix-server dev`'s local agent and demo experiment: a [`DevHook`] that runs a
//! `phoenix-agent` in this process, through the same public API as the `phoenix-agent`
//! binary (HTTP to this server with the enrollment token), then creates and starts an
//! experiment on this machine's real processes: `baseline` against `topk` (K=10), with
//! the server's own process as the critical one. With `--runtime otelcol` the agent runs
//! both variants in a real OpenTelemetry Collector and measures its output.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phoenix_agent::config::OtelcolConfig;
use phoenix_agent::{Agent, AgentConfig, HttpControlPlane, RuntimeKind};
use phoenix_core::experiment::ExperimentSpec;
use phoenix_core::pipeline::{ParamValue, PipelineRef};

use crate::dev::{DevContext, DevHook};

/// What the local agent and the demo run with.
#[derive(Debug, Clone)]
pub struct DevAgentOptions {
    /// The agent's exposition listener.
    pub listen: SocketAddr,
    /// Demo experiment duration, seconds.
    pub demo_duration_secs: u64,
    /// Demo sampling interval, seconds.
    pub sample_interval_secs: u32,
    /// K of the demo candidate.
    pub k: i64,
    /// What runs the pipelines.
    pub runtime: RuntimeKind,
    /// The Collector binary when `runtime` is otelcol (default: the agent's default).
    pub otelcol_binary: Option<PathBuf>,
}

impl Default for DevAgentOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9460)),
            demo_duration_secs: 60,
            sample_interval_secs: 5,
            k: 10,
            runtime: RuntimeKind::Native,
            otelcol_binary: None,
        }
    }
}

/// The executable name of this process as the process receiver reports it (Linux keeps
/// 15 characters of it).
fn own_executable_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "phoenix-server".to_owned())
        .chars()
        .take(15)
        .collect()
}

/// The hook: runs the agent until the server stops, and starts the demo experiment.
#[must_use]
pub fn local_agent(options: DevAgentOptions) -> DevHook {
    Box::new(move |ctx: DevContext| Box::pin(run(ctx, options)))
}

async fn run(ctx: DevContext, options: DevAgentOptions) -> anyhow::Result<()> {
    let state_dir = std::env::temp_dir().join(format!("phoenix-dev-agent-{}", std::process::id()));
    let config = AgentConfig {
        server_url: ctx.base_url.clone(),
        enrollment_token: Some(ctx.enrollment_token.clone()),
        state_dir: state_dir.clone(),
        listen: Some(options.listen),
        heartbeat_interval: Duration::from_secs(5),
        runtime: options.runtime,
        otelcol: OtelcolConfig {
            binary: options
                .otelcol_binary
                .clone()
                .unwrap_or_else(|| OtelcolConfig::default().binary),
            ..OtelcolConfig::default()
        },
        ..AgentConfig::default()
    };
    let control = Arc::new(HttpControlPlane::new(&ctx.base_url)?);
    let agent = Agent::new(config, control);
    let mut status = agent.status();
    let state = Arc::clone(&ctx.state);
    let running = tokio::spawn(agent.run(async move { state.shutdown_signal().await }));
    let enrolled = status.wait_for(|s| s.agent_id.is_some()).await?.clone();
    if let Some(addr) = enrolled.listen {
        println!(
            "  Local agent:           enrolled; baseline at http://{addr}/metrics/baseline, candidate at http://{addr}/metrics/candidate"
        );
    }

    let client = phoenix_client::Client::new(&ctx.base_url)?.with_token(ctx.admin_token.clone());
    let mut baseline = PipelineRef::new("baseline");
    let mut candidate = PipelineRef::new("topk").with_param("k", ParamValue::Int(options.k));
    if options.runtime == RuntimeKind::Otelcol {
        // The Collector scrapes at its receivers' interval: make it the sampling interval,
        // so each measured window holds one scrape.
        let every = ParamValue::String(format!("{}s", options.sample_interval_secs));
        baseline = baseline.with_param("collection_interval", every.clone());
        candidate = candidate.with_param("collection_interval", every);
    }
    let mut spec = ExperimentSpec::new(baseline, candidate, options.demo_duration_secs);
    spec.sample_interval_secs = options.sample_interval_secs;
    spec.warmup_secs = u64::from(options.sample_interval_secs) * 2;
    spec.critical_processes = vec![own_executable_name()];
    let experiment = client
        .create_experiment(&phoenix_api::experiment::NewExperiment {
            name: format!("demo: top-{} processes on this machine", options.k),
            description:
                "baseline vs topk on this machine's real processes, measured by the local agent"
                    .to_owned(),
            spec: spec.into(),
        })
        .await?;
    client.start_experiment(experiment.id).await?;
    println!(
        "  Demo experiment:       {id} (baseline vs topk K={k}, {d} s); follow it with\n    curl -H \"Authorization: Bearer {token}\" {base}/api/v1/experiments/{id}/kpis",
        id = experiment.id,
        k = options.k,
        d = options.demo_duration_secs,
        token = ctx.admin_token,
        base = ctx.base_url,
    );
    let outcome = running.await?;
    let _ = std::fs::remove_dir_all(&state_dir);
    outcome?;
    Ok(())
}
