//! The otelcol runtime supervising a collector-like executable (`phoenix-fake-otelcol`),
//! through the production code path: config written, health waited for, last-known-good
//! restored when a new config does not become healthy, restart after a crash, SIGTERM
//! then SIGKILL on stop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use phoenix_agent::config::OtelcolConfig;
use phoenix_agent::host::HostProbe;
use phoenix_agent::report::{ReportConfig, Reporter};
use phoenix_agent::runtime::otelcol::{MeasureContext, OtelcolRuntime};
use phoenix_agent::runtime::{Deployments, HostPipeline, PipelineRuntime, RuntimeError};
use phoenix_agent::seq::Sequences;
use phoenix_agent::state::StateDir;
use phoenix_core::agent::PipelineHealth;
use phoenix_core::ids::AgentId;
use phoenix_core::pipeline::{PipelineSpec, RenderedPipeline};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pipeline(port: u16, marker: &str) -> Deployments {
    let yaml = format!(
        "# {marker}\nextensions:\n  health_check:\n    endpoint: \"127.0.0.1:{port}\"\nservice:\n  extensions: [health_check]\n"
    );
    Deployments {
        experiments: BTreeMap::new(),
        host: Some(HostPipeline {
            pipeline: RenderedPipeline {
                template: "baseline".to_owned(),
                params: BTreeMap::new(),
                spec: PipelineSpec::default(),
                config_hash: marker.to_owned(),
                collector_yaml: yaml,
            },
            experiment_id: None,
            deployment_id: None,
        }),
    }
}

fn runtime(dir: &std::path::Path, port: u16, stop_timeout: Duration) -> OtelcolRuntime {
    let state = StateDir::open(dir).unwrap();
    OtelcolRuntime::start(
        OtelcolConfig {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_phoenix-fake-otelcol")),
            args: Vec::new(),
            health_url: format!("http://127.0.0.1:{port}/"),
            telemetry_url: format!("http://127.0.0.1:{port}/metrics"),
            start_timeout: Duration::from_secs(3),
            stop_timeout,
            restart_backoff: Duration::from_millis(100),
        },
        state.subdir("otelcol").unwrap(),
        MeasureContext {
            agent_id: AgentId::new(),
            host: "test".to_owned(),
            probe: Arc::new(std::sync::Mutex::new(HostProbe::new())),
        },
        Arc::new(Reporter::new(ReportConfig::default())),
        Arc::new(Sequences::load(state).unwrap()),
    )
    .unwrap()
}

fn alive(pid: u32) -> bool {
    // A zombie is gone for our purpose: the supervisor reaps it.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[tokio::test]
async fn supervises_restores_last_known_good_and_restarts_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rt = runtime(dir.path(), port, Duration::from_secs(5));

    rt.apply(&pipeline(port, "good")).await.unwrap();
    let first = rt.pid().await.expect("running");
    assert!(
        std::fs::read_to_string(rt.lkg_path())
            .unwrap()
            .contains("# good")
    );
    assert_eq!(rt.active()[0].health, PipelineHealth::Healthy);
    rt.confirm_serving(&[], false, Duration::from_secs(2))
        .await
        .unwrap();

    // A config that never becomes healthy: the change fails and the good one runs again.
    let err = rt.apply(&pipeline(port, "fail-health")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Unhealthy(_)), "{err:?}");
    let restored = rt.pid().await.expect("running again");
    assert_ne!(restored, first);
    assert!(!alive(first));
    let running = std::fs::read_to_string(rt.config_path()).unwrap();
    assert!(running.contains("# good"), "{running}");
    assert!(
        std::fs::read_to_string(rt.lkg_path())
            .unwrap()
            .contains("# good")
    );
    rt.confirm_serving(&[], false, Duration::from_secs(2))
        .await
        .unwrap();

    // A crash (SIGKILL from outside): restarted with backoff, healthy again.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(i32::try_from(restored).unwrap()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        if let Some(pid) = rt.pid().await
            && pid != restored
        {
            break pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    rt.confirm_serving(&[], false, Duration::from_secs(3))
        .await
        .unwrap();

    // Stop: SIGTERM, and it exits.
    rt.shutdown().await;
    assert!(rt.pid().await.is_none());
    assert!(!alive(restarted));
}

#[tokio::test]
async fn stop_escalates_to_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rt = runtime(dir.path(), port, Duration::from_millis(300));
    rt.apply(&pipeline(port, "ignore-sigterm")).await.unwrap();
    let pid = rt.pid().await.unwrap();
    let started = tokio::time::Instant::now();
    rt.apply(&Deployments::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(rt.pid().await.is_none());
    assert!(!alive(pid));
}
