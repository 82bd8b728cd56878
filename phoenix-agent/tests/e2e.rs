//! End to end: the real server (in-process on 127.0.0.1:0, short lease and heartbeat) and
//! real `phoenix-agent` processes on this machine, talking HTTP.
//!
//! 1. baseline vs `topk` (K=10) with a critical process: Completed, Pass, process-series
//!    reduction >= 80 %, critical coverage 100 %, from both agents' measurements;
//! 2. a bad candidate (`topk` K=1 that does not protect the critical process): the judge
//!    fails it, it is rolled back automatically, and the candidate endpoint serves nothing;
//! 3. `kill -9` of an agent mid-deploy: the restarted agent gives back the lease it held
//!    (recorded in its state directory) instead of waiting for it to expire, the task is
//!    delivered again to it, the experiment completes, no measurement is duplicated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_api::experiment::Experiment;
use phoenix_client::Client;
use phoenix_core::experiment::{ExperimentSpec, Phase, TargetSelector};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::judge::{Criterion, KpiName, VerdictOutcome};
use phoenix_core::page::PageRequest;
use phoenix_core::pipeline::{ParamValue, PipelineRef};
use phoenix_core::task::{TaskFilter, TaskKind, TaskState};
use phoenix_core::{Phoenix, PhoenixConfig};
use tokio::process::Child;

mod support;
use support::processes::NamedProcesses;
use support::stand::{FINAL_PHASES, Stand, wait_phase};

struct AgentProcess {
    child: Child,
    state_dir: PathBuf,
    label: String,
}

async fn start_agent(stand: &Stand, state_dir: &Path, label: &str, name: &str) -> AgentProcess {
    let child = stand
        .agent(state_dir, name)
        .listen("127.0.0.1:0")
        .args(["--label", &format!("e2e={label}")])
        .spawn();
    AgentProcess {
        child,
        state_dir: state_dir.to_path_buf(),
        label: label.to_owned(),
    }
}

impl AgentProcess {
    async fn agent_id(&self) -> AgentId {
        let file = self.state_dir.join("credential.json");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                return v["agent_id"].as_str().unwrap().parse().unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent did not enroll"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn listen(&self) -> String {
        let file = self.state_dir.join("listen.addr");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(addr) = std::fs::read_to_string(&file) {
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "agent did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spec(
    label: &str,
    critical: &str,
    candidate: PipelineRef,
    duration: u64,
    interval: u32,
) -> ExperimentSpec {
    let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), candidate, duration);
    spec.targets = TargetSelector {
        labels: BTreeMap::from([("e2e".to_owned(), label.to_owned())]),
        hosts: Vec::new(),
    };
    spec.sample_interval_secs = interval;
    spec.critical_processes = vec![critical.to_owned()];
    spec.criteria = vec![
        Criterion::at_least(KpiName::CardinalityReductionPct, 80.0, true),
        Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true),
    ];
    spec
}

async fn create_and_start(client: &Client, name: &str, spec: ExperimentSpec) -> Experiment {
    let e = client
        .create_experiment(&phoenix_api::experiment::NewExperiment {
            name: name.to_owned(),
            description: String::new(),
            spec: spec.into(),
        })
        .await
        .expect("created");
    client.start_experiment(e.id).await.expect("started")
}

async fn samples_by_agent(
    phoenix: &Phoenix,
    id: ExperimentId,
) -> BTreeMap<AgentId, Vec<phoenix_core::measure::MeasurementSample>> {
    let mut out: BTreeMap<AgentId, Vec<_>> = BTreeMap::new();
    for s in phoenix.stores().metrics.samples(id, 100_000).await.unwrap() {
        out.entry(s.agent_id).or_default().push(s);
    }
    out
}

/// Every (agent, seq) once, and no measurement sent twice under two numbers.
fn assert_no_duplicates(samples: &[phoenix_core::measure::MeasurementSample]) {
    let seqs: BTreeSet<u64> = samples.iter().map(|s| s.seq).collect();
    assert_eq!(seqs.len(), samples.len(), "a sequence number stored twice");
    let taken: BTreeSet<_> = samples.iter().map(|s| s.taken_at).collect();
    assert_eq!(
        taken.len(),
        samples.len(),
        "one measurement stored under two numbers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_processes_run_experiments_end_to_end() {
    // The critical process has a name nothing else on the host uses, and the host runs at
    // least 300 processes, the size the agent's overhead is measured at (idle ones, which
    // report fewer series each than busy ones, are added on a quiet machine), so that K=10
    // cuts the process series by well over 80 %.
    let mut processes = NamedProcesses::new();
    let critical = NamedProcesses::unique_name("pxcrit");
    processes.spawn(&critical, 1);
    processes.fill_host_to(&NamedProcesses::unique_name("pxfill"), 300);
    let stand = Stand::start(PhoenixConfig {
        // Longer than the test: a task held by the killed agent must come back through
        // the restarted agent's release, not through expiry.
        lease: chrono::Duration::seconds(120),
        heartbeat_interval: chrono::Duration::seconds(2),
        safety_poll: chrono::Duration::milliseconds(200),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (stand.client.clone(), stand.phoenix.clone());
    let dirs = tempfile::tempdir().unwrap();
    let label = uuid::Uuid::new_v4().to_string();

    // Two agent processes.
    let mut a = start_agent(&stand, &dirs.path().join("a"), &label, "e2e-a").await;
    let mut b = start_agent(&stand, &dirs.path().join("b"), &label, "e2e-b").await;
    let (id_a, id_b) = (a.agent_id().await, b.agent_id().await);
    let listen_a = a.listen().await;

    // 1. A good candidate.
    let good = create_and_start(
        &client,
        "topk on this host",
        spec(
            &label,
            &critical,
            PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
            12,
            1,
        ),
    )
    .await;
    let good_id = ExperimentId(good.id);
    let done = wait_phase(&phoenix, good_id, &FINAL_PHASES, 120).await;
    assert_eq!(done.phase, Phase::Completed, "{done:#?}");
    let verdict = done.verdict.clone().unwrap();
    assert_eq!(verdict.outcome, VerdictOutcome::Pass, "{verdict:#?}");
    let measured = |kpi| {
        verdict
            .criteria
            .iter()
            .find(|c| c.criterion.kpi == kpi)
            .and_then(|c| c.measured)
            .unwrap()
    };
    let reduction = measured(KpiName::CardinalityReductionPct);
    assert!(reduction >= 80.0, "reduction {reduction}");
    assert!((measured(KpiName::CriticalCoveragePct) - 100.0).abs() < 1e-9);
    let by_agent = samples_by_agent(&phoenix, good_id).await;
    assert_eq!(
        by_agent.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([id_a, id_b])
    );
    for samples in by_agent.values() {
        assert!(samples.len() >= 3);
        assert_no_duplicates(samples);
        for s in samples {
            let r = phoenix_core::pipeline::engine::reduction_pct(
                s.baseline.series,
                s.candidate.series,
            );
            assert!(r >= 80.0, "a sample with {r} % reduction");
            assert!(s.candidate.critical.missing.is_empty());
            assert!(s.host.process_count > 10);
        }
    }
    // The candidate endpoint serves a valid, smaller exposition.
    let candidate = reqwest::get(format!("http://{listen_a}/metrics/candidate"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let baseline = reqwest::get(format!("http://{listen_a}/metrics/baseline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (c, b_) = (
        phoenix_agent::exposition::check(&candidate).expect("valid candidate exposition"),
        phoenix_agent::exposition::check(&baseline).expect("valid baseline exposition"),
    );
    assert!(
        c.samples > 0 && c.samples * 5 <= b_.samples,
        "{c:?} vs {b_:?}"
    );

    // 2. A bad candidate: K=1 without protecting the critical process.
    let mut bad_spec = spec(
        &label,
        &critical,
        PipelineRef::new("topk")
            .with_param("k", ParamValue::Int(1))
            .with_param("protect_critical", ParamValue::Bool(false)),
        10,
        1,
    );
    bad_spec.auto_rollback = true;
    let bad = create_and_start(&client, "hides a critical process", bad_spec).await;
    let bad_id = ExperimentId(bad.id);
    let rolled = wait_phase(&phoenix, bad_id, &FINAL_PHASES, 120).await;
    assert_eq!(rolled.phase, Phase::RolledBack, "{rolled:#?}");
    assert_eq!(
        rolled.verdict.as_ref().unwrap().outcome,
        VerdictOutcome::Fail
    );
    let bad_samples = samples_by_agent(&phoenix, bad_id).await;
    assert!(
        bad_samples
            .values()
            .flatten()
            .any(|s| s.candidate.critical.missing == [critical.clone()])
    );
    // The latest experiment on agent A is the bad one: its candidate serves nothing now.
    let after = reqwest::get(format!("http://{listen_a}/metrics/candidate"))
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(after.text().await.unwrap(), "");
    let baseline_after = reqwest::get(format!("http://{listen_a}/metrics/baseline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!baseline_after.is_empty(), "the baseline keeps serving");

    // 3. kill -9 mid-deploy: a fresh agent (idle sampler, so its deploy takes an interval).
    let kill_label = uuid::Uuid::new_v4().to_string();
    let c_dir = dirs.path().join("c");
    let mut c = start_agent(&stand, &c_dir, &kill_label, "e2e-c").await;
    let id_c = c.agent_id().await;
    let third = create_and_start(
        &client,
        "survives kill -9",
        spec(
            &kill_label,
            &critical,
            PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
            10,
            2,
        ),
    )
    .await;
    let third_id = ExperimentId(third.id);
    let deploy_filter = TaskFilter {
        agent_id: Some(id_c),
        experiment_id: Some(third_id),
        kind: Some(TaskKind::DeployPipelines),
        ..TaskFilter::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = phoenix
            .tasks(&deploy_filter, &PageRequest::default())
            .await
            .unwrap();
        if tasks.items.iter().any(|t| t.state == TaskState::Leased) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deploy never leased"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The agent records a lease before it runs the task; kill it once it has.
    let leases_file = c_dir.join("leases.json");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let leased = loop {
        let tasks = phoenix
            .tasks(&deploy_filter, &PageRequest::default())
            .await
            .unwrap();
        let recorded = std::fs::read_to_string(&leases_file).unwrap_or_default();
        if let Some(t) = tasks
            .items
            .iter()
            .find(|t| t.state == TaskState::Leased && recorded.contains(&t.id.to_string()))
        {
            break t.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never recorded its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(leased.attempts, 1);
    c.child.start_kill().unwrap(); // SIGKILL
    c.child.wait().await.unwrap();
    let mut c2 = start_agent(&stand, &c_dir, &c.label, "e2e-c").await;
    assert_eq!(
        c2.agent_id().await,
        id_c,
        "the restarted agent keeps its identity"
    );
    let finished = wait_phase(&phoenix, third_id, &FINAL_PHASES, 120).await;
    assert_eq!(finished.phase, Phase::Completed, "{finished:#?}");
    let deploy = phoenix
        .tasks(&deploy_filter, &PageRequest::default())
        .await
        .unwrap();
    let deploy = &deploy.items[0];
    assert_eq!(deploy.state, TaskState::Succeeded);
    // A released task's attempt is not counted; an expired lease's is (that would be 2,
    // and would have taken the 120 s lease).
    assert_eq!(
        deploy.attempts, 1,
        "the restarted agent released the deploy it held and ran it again: {deploy:#?}"
    );
    let c_samples = &samples_by_agent(&phoenix, third_id).await[&id_c];
    assert!(c_samples.len() >= 3);
    assert_no_duplicates(c_samples);

    // Graceful stop of every agent (SIGTERM).
    for p in [&mut a, &mut b, &mut c2] {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(p.child.id().unwrap()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    }
    for p in [&mut a, &mut b, &mut c2] {
        let status = tokio::time::timeout(Duration::from_secs(20), p.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "agent exited with {status}");
    }
    stand.stop().await;
}

/// An alert on per-process memory (it needs `process_pid`) and a dashboard totalling memory
/// by executable (it does not).
const QUERY_RULES: &str = "groups:\n  - name: processes\n    rules:\n      - alert: ProcessMemoryRunaway\n        expr: process_memory_usage{process_pid!=\"\"} > 1e15\n        for: 5m\n";
const QUERY_DASHBOARD: &str = r#"{"title": "Processes", "panels": [{"title": "Memory by executable", "type": "timeseries", "targets": [{"refId": "A", "expr": "sum by (process_executable_name) (process_memory_usage{process_executable_name=~\"$exe\"})"}]}]}"#;

/// The query inventory through the API, then a real agent process: a candidate that sums
/// processes by executable drops `process_pid`, which the alert matches on, and fails on
/// `queries_broken` naming the alert; a top-K candidate keeps every query and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_kept_fails_a_candidate_that_drops_a_label_an_alert_uses() {
    use phoenix_api::query::{NewQuerySource, SourceKind};
    let stand = Stand::start(PhoenixConfig {
        heartbeat_interval: chrono::Duration::seconds(2),
        safety_poll: chrono::Duration::milliseconds(200),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (stand.client.clone(), stand.phoenix.clone());
    for (name, kind, content) in [
        ("processes.rules.yml", SourceKind::RuleFile, QUERY_RULES),
        (
            "processes.json",
            SourceKind::GrafanaDashboard,
            QUERY_DASHBOARD,
        ),
    ] {
        client
            .import_query_source(&NewQuerySource {
                name: name.to_owned(),
                kind,
                content: content.to_owned(),
            })
            .await
            .expect("imported");
    }
    let dirs = tempfile::tempdir().unwrap();
    let label = uuid::Uuid::new_v4().to_string();
    let mut agent = start_agent(&stand, &dirs.path().join("q"), &label, "e2e-q").await;
    agent.agent_id().await;

    let run = |candidate: PipelineRef, name: &'static str| {
        let client = client.clone();
        let phoenix = phoenix.clone();
        let label = label.clone();
        async move {
            let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), candidate, 10);
            spec.targets = TargetSelector {
                labels: BTreeMap::from([("e2e".to_owned(), label)]),
                hosts: Vec::new(),
            };
            spec.sample_interval_secs = 1;
            // Only what this test is about; the inventory adds `queries_broken <= 0`.
            spec.criteria = vec![Criterion::at_least(
                KpiName::CriticalCoveragePct,
                100.0,
                true,
            )];
            let created = create_and_start(&client, name, spec).await;
            assert_eq!(
                created.queries, 2,
                "the inventory is frozen into the experiment"
            );
            let id = ExperimentId(created.id);
            let done = wait_phase(&phoenix, id, &FINAL_PHASES, 120).await;
            let kpis = client.experiment_kpis(created.id).await.unwrap();
            let samples = samples_by_agent(&phoenix, id).await;
            (done, kpis, samples)
        }
    };

    // 1. `aggregate` sums processes by executable: `process_pid` is gone.
    let (done, kpis, samples) = run(PipelineRef::new("aggregate"), "aggregate by executable").await;
    let verdict = done.verdict.clone().expect("judged");
    assert_eq!(verdict.outcome, VerdictOutcome::Fail, "{verdict:#?}");
    let kept = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == KpiName::QueriesBroken)
        .expect("the default criterion");
    assert!(kept.criterion.critical);
    assert_eq!((kept.passed, kept.measured), (Some(false), Some(1.0)));
    assert!(
        kept.reason
            .contains("broken: `ProcessMemoryRunaway` (processes.rules.yml: "),
        "{}",
        kept.reason
    );
    // Every sample carries the agent's evaluation, in the frozen order (sources by name):
    // the panel answered, the alert broken.
    for s in samples.values().flatten() {
        let q = s
            .queries
            .as_ref()
            .expect("the sample evaluated the queries");
        assert_eq!(q.statuses, "ab", "{q:?}");
        assert_eq!(q.reasons[0].query, 1);
        assert!(q.reasons[0].reasons[0].contains("`process_pid`"), "{q:?}");
    }
    let queries = kpis.kpis.queries.expect("the KPI report names the queries");
    assert_eq!((queries.broken, queries.answered), (1, 1));
    assert_eq!(queries.affected[0].name, "ProcessMemoryRunaway");
    assert!(
        queries.affected[0].reasons[0].contains("drops label `process_pid`"),
        "{:?}",
        queries.affected[0]
    );

    // 2. Top-K keeps the busiest processes with every label: every query answers.
    let (done, kpis, _) = run(
        PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
        "topk keeps every query",
    )
    .await;
    let verdict = done.verdict.clone().expect("judged");
    assert_eq!(verdict.outcome, VerdictOutcome::Pass, "{verdict:#?}");
    let queries = kpis.kpis.queries.unwrap();
    assert_eq!(
        (queries.broken, queries.changed, queries.answered),
        (0, 0, 2)
    );

    let pid =
        rustix::process::Pid::from_raw(i32::try_from(agent.child.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(20), agent.child.wait()).await;
    stand.stop().await;
}
