//! The agent as a library, in-process (`InProcessControlPlane`), against a real `Phoenix`
//! facade on the in-memory store: enrollment, a real experiment on this machine's processes (baseline vs top-K),
//! measurements from the native runtime, the judge's verdict, and the served expositions.

mod support;

use std::sync::Arc;
use std::time::Duration;

use phoenix_agent::{Agent, AgentConfig, InProcessControlPlane};
use phoenix_core::clock::SystemClock;
use phoenix_core::experiment::{Actor, ExperimentSpec, NewExperiment, Phase};
use phoenix_core::judge::{Criterion, KpiName, VerdictOutcome};
use phoenix_core::pipeline::{ParamValue, PipelineRef};
use phoenix_core::{Controller, MemoryStore, Phoenix, PhoenixConfig};
use support::processes::NamedProcesses;
use tokio::sync::oneshot;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("listener answers");
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_real_topk_experiment_to_a_pass_verdict() {
    // A critical process that top-K by CPU would not keep on its own, under a name nothing
    // else on the host uses; and at least 300 processes on the host, the size the agent's
    // overhead is measured at (idle ones, which report fewer series each than busy ones,
    // are added on a quiet machine), so that K=10 cuts the process series by well over 80 %.
    let mut processes = NamedProcesses::new();
    let critical = NamedProcesses::unique_name("pxcrit");
    processes.spawn(&critical, 1);
    processes.fill_host_to(&NamedProcesses::unique_name("pxfill"), 300);

    let store = MemoryStore::new();
    let phoenix = Phoenix::new(
        store.stores(),
        Arc::new(SystemClock),
        PhoenixConfig {
            lease: chrono::Duration::seconds(5),
            heartbeat_interval: chrono::Duration::seconds(1),
            ..PhoenixConfig::default()
        },
    );
    let control = Arc::new(InProcessControlPlane::new(phoenix.clone(), "enroll-me"));
    let state = tempfile::tempdir().unwrap();
    let config = AgentConfig {
        enrollment_token: Some("enroll-me".to_owned()),
        state_dir: state.path().to_path_buf(),
        heartbeat_interval: Duration::from_secs(1),
        poll_wait: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..AgentConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = Agent::new(config, control).with_listener(listener);
    let mut status = agent.status();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run(async {
        let _ = stop_rx.await;
    }));
    let agent_id = status
        .wait_for(|s| s.agent_id.is_some())
        .await
        .unwrap()
        .agent_id
        .unwrap();

    let controller = Controller::new(phoenix.clone());
    let ticking = tokio::spawn(async move {
        loop {
            let _ = controller.tick().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let mut spec = ExperimentSpec::new(
        PipelineRef::new("baseline"),
        PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
        10,
    );
    spec.sample_interval_secs = 1;
    spec.critical_processes = vec![critical.clone()];
    spec.criteria = vec![
        Criterion::at_least(KpiName::CardinalityReductionPct, 80.0, true),
        Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true),
    ];
    let operator = Actor::user("test");
    let experiment = phoenix
        .create_experiment(
            NewExperiment {
                name: "topk on this host".to_owned(),
                description: String::new(),
                spec,
            },
            &operator,
        )
        .await
        .unwrap();
    phoenix.start(experiment.id, &operator).await.unwrap();

    // While it runs, both variants are served and pass the strict exposition check.
    let mut phase_changes = phoenix.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut checked_expositions = false;
    let finished = loop {
        let e = phoenix.experiment(experiment.id).await.unwrap();
        if e.phase == Phase::Running && !checked_expositions {
            let (s, baseline) = get(&format!("http://{addr}/metrics/baseline")).await;
            let (_, candidate) = get(&format!("http://{addr}/metrics/candidate")).await;
            if s == 200 && !baseline.is_empty() && !candidate.is_empty() {
                let b = phoenix_agent::exposition::check(&baseline)
                    .expect("baseline exposition is valid");
                let c = phoenix_agent::exposition::check(&candidate)
                    .expect("candidate exposition is valid");
                assert!(c.samples < b.samples);
                assert!(candidate.contains(&format!("process_executable_name=\"{critical}\"")));
                checked_expositions = true;
            }
        }
        if e.phase.is_terminal() || e.phase == Phase::Completed {
            break e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "experiment stuck in {:?}",
            e.phase
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), phase_changes.recv()).await;
    };
    assert!(
        checked_expositions,
        "expositions were checked while running"
    );
    assert_eq!(finished.phase, Phase::Completed, "{finished:#?}");
    let verdict = finished.verdict.expect("judged");
    assert_eq!(verdict.outcome, VerdictOutcome::Pass, "{verdict:#?}");
    let reduction = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == KpiName::CardinalityReductionPct)
        .and_then(|c| c.measured)
        .unwrap();
    assert!(reduction >= 80.0, "{reduction}");

    // The figures are the agent's own measurements, each sequence number once.
    let samples = phoenix
        .stores()
        .metrics
        .samples(experiment.id, 10_000)
        .await
        .unwrap();
    assert!(samples.len() >= 6, "{} samples", samples.len());
    assert!(samples.iter().all(|s| s.agent_id == agent_id));
    let seqs: std::collections::BTreeSet<u64> = samples.iter().map(|s| s.seq).collect();
    assert_eq!(seqs.len(), samples.len());
    assert!(
        samples
            .iter()
            .all(|s| s.host.process_count > 10 && s.host.agent_rss_bytes > 0)
    );
    assert!(
        samples
            .iter()
            .all(|s| s.candidate.critical.missing.is_empty())
    );

    // The agent heartbeats its pipelines; a snapshot reached the server.
    let agent_record = phoenix.agent(agent_id).await.unwrap();
    assert!(
        agent_record
            .pipelines
            .iter()
            .any(|p| p.name.ends_with("/candidate"))
    );
    assert!(!phoenix.snapshots().await.unwrap().is_empty());

    ticking.abort();
    let _ = stop_tx.send(());
    agent_task.await.unwrap().unwrap();
    // Stopped pipelines serve nothing.
    assert!(
        reqwest::get(format!("http://{addr}/metrics/candidate"))
            .await
            .is_err()
    );
    drop(processes);
}
