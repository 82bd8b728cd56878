//! End to end on the real OpenTelemetry Collector: the real server (in-process on
//! 127.0.0.1:0) and a real `phoenix-agent` process with `--runtime otelcol`, supervising
//! Phoenix's pinned Collector distribution (`support::collector::collector_binary()`).
//!
//! An experiment (baseline vs a `topk` K=1 that does not protect the critical process) runs
//! both variants in one Collector; the agent measures each variant's actual output through
//! the measurement tap. The judge reaches a real verdict from those measurements (the
//! Collector dropped the critical process: Fail), the experiment is rolled back, and the
//! running Collector's config is the baseline's rendered config again, without the tap.
//! Then a good candidate (top-K protecting the critical process) passes and is promoted:
//! the Collector runs exactly the candidate's rendered config, without the tap.
//! A graceful stop of the agent stops its Collector; so does a `kill -9` of the agent (no
//! orphan keeps the Collector's ports).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use phoenix_core::PhoenixConfig;
use phoenix_core::experiment::{ExperimentSpec, Phase, TargetSelector};
use phoenix_core::ids::ExperimentId;
use phoenix_core::judge::{Criterion, KpiName, VerdictOutcome};
use phoenix_core::kpi::Undefined;
use phoenix_core::pipeline::{ParamValue, PipelineRef, TemplateRegistry};
use tokio::process::Child;

mod support;
use support::collector::collector_binary;
use support::processes::NamedProcesses;
use support::stand::{Stand, eventually};

fn start_agent(stand: &Stand, state_dir: &Path, label: &str, collector: &Path) -> Child {
    stand
        .agent(state_dir, "otelcol-e2e")
        .listen("127.0.0.1:0")
        .args(["--label", &format!("e2e={label}")])
        .args(["--runtime", "otelcol", "--otelcol-binary"])
        .args([collector])
        .spawn()
}

/// A free loopback port for a Collector exporter (outside the ephemeral range: see
/// `support::harness::free_port`).
fn free_port() -> i64 {
    i64::from(support::harness::free_port())
}

/// The pids of the Collectors whose command line names a file under `dir` (the agent's
/// `otelcol` state directory), read from `/proc`.
fn collectors_under(dir: &Path) -> Vec<u32> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("otelcol") && c.contains(&dir)
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiments_on_the_real_collector_are_judged_from_its_output_then_rolled_back_or_promoted()
{
    let Some(collector) = collector_binary() else {
        return;
    };
    let mut processes = NamedProcesses::new();
    let critical = NamedProcesses::unique_name("pxotc");
    processes.spawn(&critical, 1);
    processes.fill_host_to(&NamedProcesses::unique_name("pxofil"), 100);

    let stand = Stand::start(PhoenixConfig {
        lease: chrono::Duration::seconds(5),
        heartbeat_interval: chrono::Duration::seconds(2),
        safety_poll: chrono::Duration::milliseconds(200),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (&stand.client, &stand.phoenix);
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("agent");
    let label = uuid::Uuid::new_v4().to_string();
    let mut agent = start_agent(&stand, &state_dir, &label, &collector);
    eventually("the agent enrolled", 180, async || {
        state_dir.join("credential.json").exists().then_some(())
    })
    .await;

    // Two-second scrapes, exporters on free ports (the health check keeps its rendered port).
    let interval = ParamValue::String("2s".to_owned());
    let baseline = PipelineRef::new("baseline")
        .with_param("collection_interval", interval.clone())
        .with_param("prometheus_port", ParamValue::Int(free_port()));
    // The candidate's Collector form is a threshold, not a rank (docs/templates.md): on
    // resident memory at 64 MiB it keeps a few large processes in every window (the
    // Collector itself is one) and never the critical sleeper. A CPU threshold could keep
    // nothing in a quiet window.
    let candidate = PipelineRef::new("topk")
        .with_param("collection_interval", interval)
        .with_param("prometheus_port", ParamValue::Int(free_port()))
        .with_param("k", ParamValue::Int(1))
        .with_param("rank_by", ParamValue::String("memory".to_owned()))
        .with_param("collector_min_memory_mib", ParamValue::Int(64))
        .with_param("protect_critical", ParamValue::Bool(false));
    let mut spec = ExperimentSpec::new(baseline.clone(), candidate.clone(), 30);
    spec.targets = TargetSelector {
        labels: BTreeMap::from([("e2e".to_owned(), label.clone())]),
        hosts: Vec::new(),
    };
    spec.sample_interval_secs = 2;
    spec.critical_processes = vec![critical.clone()];
    spec.criteria = vec![
        Criterion::at_least(KpiName::CardinalityReductionPct, 30.0, true),
        Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true),
    ];
    spec.auto_rollback = true;
    let created = client
        .create_experiment(&phoenix_api::experiment::NewExperiment {
            name: "topk K=1 on the real collector".to_owned(),
            description: String::new(),
            spec: spec.into(),
        })
        .await
        .expect("created");
    client.start_experiment(created.id).await.expect("started");
    let id = ExperimentId(created.id);

    // While it runs: the Collector runs the combined config plus the tap overlay.
    let otelcol_dir = state_dir.join("otelcol");
    let rendered = TemplateRegistry::builtin()
        .render_experiment(&baseline, &candidate, std::slice::from_ref(&critical), &[])
        .unwrap();
    eventually(
        "the combined config running with the tap",
        180,
        async || {
            let config = std::fs::read_to_string(otelcol_dir.join("config.yaml")).ok()?;
            (config == rendered.collector_yaml && otelcol_dir.join("tap.yaml").exists())
                .then_some(())
        },
    )
    .await;

    let done = eventually("a final phase", 180, async || {
        let e = phoenix.experiment(id).await.unwrap();
        matches!(
            e.phase,
            Phase::RolledBack | Phase::Completed | Phase::Failed
        )
        .then_some(e)
    })
    .await;
    assert_eq!(done.phase, Phase::RolledBack, "{done:#?}");
    let verdict = done.verdict.clone().expect("a verdict");
    assert_eq!(verdict.outcome, VerdictOutcome::Fail, "{verdict:#?}");
    let criterion = |kpi| {
        verdict
            .criteria
            .iter()
            .find(|c| c.criterion.kpi == kpi)
            .unwrap()
            .clone()
    };
    // The Collector really cut the process series, and really dropped the critical process.
    let reduction = criterion(KpiName::CardinalityReductionPct);
    assert_eq!(reduction.passed, Some(true), "{reduction:#?}");
    let coverage = criterion(KpiName::CriticalCoveragePct);
    assert_eq!(coverage.passed, Some(false), "{coverage:#?}");
    assert_eq!(coverage.measured, Some(0.0));

    let samples = phoenix.stores().metrics.samples(id, 100_000).await.unwrap();
    assert!(samples.len() >= 3, "{} samples", samples.len());
    let first = &samples[0];
    eprintln!(
        "measured from the Collector: {} samples; first: baseline {} series / {} points / {} bytes, candidate {} series / {} points / {} bytes, agent+collector CPU {:.1} % RSS {} MiB",
        samples.len(),
        first.baseline.series,
        first.baseline.points,
        first.baseline.bytes,
        first.candidate.series,
        first.candidate.points,
        first.candidate.bytes,
        first.host.agent_cpu_pct,
        first.host.agent_rss_bytes / (1024 * 1024)
    );
    for s in &samples {
        // Measured from the Collector's output: the baseline carries every process (the
        // input), the candidate one process plus the host-level series at most.
        assert!(
            s.baseline.series >= 100 * 5,
            "baseline {}",
            s.baseline.series
        );
        assert!(
            s.candidate.series > 0 && s.candidate.series * 2 < s.baseline.series,
            "candidate {} of baseline {}",
            s.candidate.series,
            s.baseline.series
        );
        assert!(s.baseline.bytes > s.candidate.bytes && s.candidate.bytes > 0);
        assert!(s.baseline.points >= s.baseline.series);
        assert_eq!(s.baseline.critical.missing, Vec::<String>::new());
        assert_eq!(s.candidate.critical.missing, vec![critical.clone()]);
        assert_eq!(s.baseline.fidelity.memory_pct, Some(100.0));
        assert!(s.candidate.fidelity.memory_pct.is_some_and(|m| m < 100.0));
        assert_eq!((s.baseline.eval_nanos, s.candidate.eval_nanos), (0, 0));
        // Agent plus Collector.
        assert!(s.host.agent_rss_bytes > 20 * 1024 * 1024);
        assert_eq!(s.interval_secs, 2);
    }
    let kpis = phoenix_core::kpi::compute(&done, &samples, phoenix.catalogue());
    let cpu = kpis.kpi(KpiName::AgentCpuOverheadPct).unwrap();
    assert_eq!(cpu.undefined, Some(Undefined::NotMeasured));

    // Rolled back: the Collector runs the baseline's own config, without the tap.
    let baseline_yaml = rendered.baseline.collector_yaml.clone();
    eventually("the baseline config running alone", 180, async || {
        let config = std::fs::read_to_string(otelcol_dir.join("config.yaml")).ok()?;
        (config == baseline_yaml && !otelcol_dir.join("tap.yaml").exists()).then_some(())
    })
    .await;
    // ... and it is healthy and exports the baseline's output.
    let port = rendered
        .baseline
        .params
        .get("prometheus_port")
        .and_then(|p| match p {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        })
        .unwrap();
    let text = eventually("the baseline exporter serving", 180, async || {
        let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("process_memory_usage").then_some(text)
    })
    .await;
    assert!(text.contains(&critical));

    // A graceful stop stops the Collector too.
    assert!(
        !collectors_under(&otelcol_dir).is_empty(),
        "a Collector runs"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(agent.id().unwrap()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), agent.wait())
        .await
        .expect("the agent stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(collectors_under(&otelcol_dir), Vec::<u32>::new());

    // 2. A good candidate (top-K protecting the critical process), promoted automatically:
    // the Collector then runs exactly the candidate's rendered config, without the tap.
    // A fresh agent (one experiment per Collector; the first one stays rolled back there).
    let state_dir = dir.path().join("agent-2");
    let label = uuid::Uuid::new_v4().to_string();
    let mut agent = start_agent(&stand, &state_dir, &label, &collector);
    eventually("the agent enrolled", 180, async || {
        state_dir.join("credential.json").exists().then_some(())
    })
    .await;
    let baseline = PipelineRef::new("baseline")
        .with_param("collection_interval", ParamValue::String("2s".to_owned()))
        .with_param("prometheus_port", ParamValue::Int(free_port()));
    let candidate = PipelineRef::new("topk")
        .with_param("collection_interval", ParamValue::String("2s".to_owned()))
        .with_param("prometheus_port", ParamValue::Int(free_port()))
        .with_param("k", ParamValue::Int(10));
    let mut spec = ExperimentSpec::new(baseline.clone(), candidate.clone(), 30);
    spec.targets = TargetSelector {
        labels: BTreeMap::from([("e2e".to_owned(), label.clone())]),
        hosts: Vec::new(),
    };
    spec.sample_interval_secs = 2;
    spec.critical_processes = vec![critical.clone()];
    spec.criteria = vec![
        Criterion::at_least(KpiName::CardinalityReductionPct, 30.0, true),
        Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true),
    ];
    spec.auto_promote = true;
    // One agent runs this experiment, so one host's agreement is all there can be.
    spec.auto_promote_min_hosts = 1;
    let created = client
        .create_experiment(&phoenix_api::experiment::NewExperiment {
            name: "topk K=10 on the real collector".to_owned(),
            description: String::new(),
            spec: spec.into(),
        })
        .await
        .expect("created");
    client.start_experiment(created.id).await.expect("started");
    let id = ExperimentId(created.id);
    let done = eventually("a final phase", 180, async || {
        let e = phoenix.experiment(id).await.unwrap();
        matches!(e.phase, Phase::Promoted | Phase::RolledBack | Phase::Failed).then_some(e)
    })
    .await;
    assert_eq!(done.phase, Phase::Promoted, "{done:#?}");
    let verdict = done.verdict.clone().expect("a verdict");
    assert_eq!(verdict.outcome, VerdictOutcome::Pass, "{verdict:#?}");
    let samples = phoenix.stores().metrics.samples(id, 100_000).await.unwrap();
    assert!(samples.len() >= 3, "{} samples", samples.len());
    for s in &samples {
        assert!(s.candidate.series > 0 && s.candidate.series < s.baseline.series);
        assert_eq!(s.candidate.critical.missing, Vec::<String>::new());
    }
    let rendered = TemplateRegistry::builtin()
        .render_experiment(&baseline, &candidate, std::slice::from_ref(&critical), &[])
        .unwrap();
    let otelcol_dir = state_dir.join("otelcol");
    let candidate_yaml = rendered.candidate.collector_yaml.clone();
    eventually(
        "the promoted candidate config running alone",
        180,
        async || {
            let config = std::fs::read_to_string(otelcol_dir.join("config.yaml")).ok()?;
            (config == candidate_yaml && !otelcol_dir.join("tap.yaml").exists()).then_some(())
        },
    )
    .await;
    // `kill -9` of the agent: nothing runs its shutdown, and the Collector still dies with
    // it (the parent-death signal), so no orphan keeps running the pipeline or its ports.
    assert!(
        !collectors_under(&otelcol_dir).is_empty(),
        "a Collector runs"
    );
    agent.start_kill().unwrap();
    let status = agent.wait().await.unwrap();
    assert!(!status.success(), "{status}");
    eventually("the Collector gone with its agent", 180, async || {
        collectors_under(&otelcol_dir).is_empty().then_some(())
    })
    .await;

    stand.stop().await;
}
