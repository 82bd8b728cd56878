//! `phoenix-core` embedded in an application, with no server: the application owns the
//! store ([`MemoryStore`]), runs a real agent in-process ([`InProcessControlPlane`]) and
//! drives the controller from its own loop instead of a background timer.
//!
//! Run: `cargo run -p example-embed-core` (about 20 s: baseline against `topk` K=10 on
//! this machine's real processes, then the judge's verdict with the measured reduction).
//! `tests/runs.rs` runs the same function to completion; the `postgres` example runs it on
//! two replicas sharing one PostgreSQL database.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use phoenix_agent::{Agent, AgentConfig, InProcessControlPlane};
use phoenix_core::clock::SystemClock;
use phoenix_core::experiment::{Actor, Experiment, ExperimentSpec, NewExperiment, Phase};
use phoenix_core::judge::{Criterion, KpiName};
use phoenix_core::pipeline::{ParamValue, PipelineRef};
use phoenix_core::{Controller, MemoryStore, Phoenix, PhoenixConfig};
use tokio::sync::oneshot;

/// How long the experiment runs and how often the agent samples.
#[derive(Debug, Clone)]
pub struct Options {
    /// Experiment duration in seconds.
    pub duration_secs: u64,
    /// Sampling interval in seconds.
    pub interval_secs: u32,
    /// The catalogue entry that prices both variants (default: the spec's default).
    pub pricing_model: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            duration_secs: 20,
            interval_secs: 2,
            pricing_model: None,
        }
    }
}

/// The facade's tunables for a short run (agents heartbeat every second).
#[must_use]
pub fn config() -> PhoenixConfig {
    PhoenixConfig {
        lease: chrono::Duration::seconds(10),
        heartbeat_interval: chrono::Duration::seconds(1),
        ..PhoenixConfig::default()
    }
}

/// Runs one experiment to its verdict on the in-memory store.
///
/// # Errors
/// See [`run_on`].
pub async fn run(options: Options) -> Result<Experiment, Box<dyn Error + Send + Sync>> {
    // The store and the facade: everything Phoenix decides goes through `Phoenix`.
    let store = MemoryStore::new();
    let phoenix = Phoenix::new(store.stores(), Arc::new(SystemClock), config());
    run_on(phoenix.clone(), phoenix, options).await
}

/// Runs one experiment to its verdict and returns the finished experiment. The agent
/// talks to `agent_side`; the experiment is created, started and driven through
/// `operator_side`. Both may be the same facade, or two replicas on one durable store.
///
/// # Errors
/// When the facade refuses a call, the agent fails to start, or the experiment does not
/// finish within its duration plus a minute.
pub async fn run_on(
    agent_side: Phoenix,
    phoenix: Phoenix,
    options: Options,
) -> Result<Experiment, Box<dyn Error + Send + Sync>> {
    // 1. A real agent on this host, talking to the facade in-process. Its variant
    //    expositions are served on an ephemeral local port.
    let enrollment = "embedded-enrollment-token";
    let control = Arc::new(InProcessControlPlane::new(agent_side, enrollment));
    let state_dir = tempfile::tempdir()?;
    let config = AgentConfig {
        enrollment_token: Some(enrollment.to_owned()),
        state_dir: state_dir.path().to_path_buf(),
        heartbeat_interval: Duration::from_secs(1),
        poll_wait: Duration::from_secs(2),
        ..AgentConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let exposition = listener.local_addr()?;
    let agent = Agent::new(config, control).with_listener(listener);
    let mut status = agent.status();
    let (stop_agent, agent_stopped) = oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run(async {
        let _ = agent_stopped.await;
    }));
    status.wait_for(|s| s.agent_id.is_some()).await?;

    // 2. An experiment: the current pipeline against top-K, keeping this very program
    //    visible as a critical process whatever its CPU use.
    let operator = Actor::user("embedding-app");
    let mut spec = ExperimentSpec::new(
        PipelineRef::new("baseline"),
        PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
        options.duration_secs,
    );
    spec.sample_interval_secs = options.interval_secs;
    if let Some(model) = options.pricing_model {
        spec.pricing_model = model;
    }
    spec.critical_processes = vec![own_process_name()];
    spec.criteria = vec![
        Criterion::at_least(KpiName::CardinalityReductionPct, 50.0, true),
        Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true),
    ];
    let experiment = phoenix
        .create_experiment(
            NewExperiment {
                name: "top-k, embedded".to_owned(),
                description: "phoenix-core in-process with its own driver loop".to_owned(),
                spec,
            },
            &operator,
        )
        .await?;
    phoenix.start(experiment.id, &operator).await?;
    println!(
        "experiment {} started; variants served at http://{exposition}/metrics/{{baseline,candidate}}",
        experiment.id
    );

    // 3. The application's own driver loop: one controller tick per turn (timers, lost
    //    agents, judging), until the experiment reaches a phase the app cares about.
    let controller = Controller::new(phoenix.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(options.duration_secs + 60);
    let mut last_phase = None;
    let finished = loop {
        controller.tick().await?;
        let e = phoenix.experiment(experiment.id).await?;
        if last_phase != Some(e.phase) {
            println!("phase: {:?}", e.phase);
            last_phase = Some(e.phase);
        }
        if e.phase.is_terminal() || e.phase == Phase::Completed {
            break e;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("experiment stuck in {:?}", e.phase).into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    if let Some(verdict) = &finished.verdict {
        println!(
            "verdict: {:?} on {} samples",
            verdict.outcome, verdict.samples
        );
        for c in &verdict.criteria {
            println!("  {}", c.reason);
        }
    }
    let _ = stop_agent.send(());
    agent_task.await??;
    Ok(finished)
}

/// The name this process has in the process table (what `critical_processes` matches).
fn own_process_name() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim().to_owned())
        .ok()
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "example-embed-core".to_owned())
}
