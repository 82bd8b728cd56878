//! Measures the agent's own overhead: the whole agent (heartbeat, long-poll, native
//! runtime evaluating a baseline and a top-K candidate on every sample, expositions,
//! reporting) running in this process against a control plane that hands it one deploy
//! task and accepts every report, on a host with at least `--processes` processes
//! (`sleep` children are spawned to reach it).
//!
//! ```sh
//! cargo run --release -p phoenix-agent --bin phoenix-agent-bench -- \
//!     --processes 300 --interval-secs 10 --duration-secs 300 --write docs/benchmarks.md
//! ```
//!
//! CPU is this process's CPU time over the measured window (after the first interval) as
//! a percentage of one core; RSS is sampled once per second from `/proc/self/status`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::Parser as _;
use phoenix_agent::host::own_cpu_seconds;
use phoenix_agent::{Agent, AgentConfig, ControlError, ControlPlane, Enrollment, MetricsAck};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::ids::{AgentId, ExperimentId, LeaseToken, TaskId};
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample, Variant};
use phoenix_core::phoenix::TaskReport;
use phoenix_core::pipeline::{ParamValue, PipelineRef, RenderContext, TemplateRegistry};
use phoenix_core::task::{LeaseRef, LeasedTask, NewTask, Task, TaskPayload, TaskState, priority};

#[derive(Debug, clap::Parser)]
struct Args {
    /// Make sure the host has at least this many processes.
    #[arg(long, default_value_t = 300)]
    processes: usize,
    /// Sampling interval.
    #[arg(long, default_value_t = 10)]
    interval_secs: u32,
    /// Measured duration (after the first interval).
    #[arg(long, default_value_t = 300)]
    duration_secs: u64,
    /// K of the candidate.
    #[arg(long, default_value_t = 10)]
    k: i64,
    /// Insert the results into this markdown file (section `## Agent overhead`).
    #[arg(long)]
    write: Option<std::path::PathBuf>,
}

/// Hands out one deploy task, accepts everything, counts samples.
struct BenchControl {
    task: std::sync::Mutex<Option<LeasedTask>>,
    samples: AtomicU64,
    series: AtomicU64,
    candidate_series: AtomicU64,
    delivered: AtomicBool,
}

#[async_trait]
impl ControlPlane for BenchControl {
    async fn enroll(&self, _: &str, _: &AgentRegistration) -> Result<Enrollment, ControlError> {
        Ok(Enrollment {
            agent_id: AgentId::new(),
            credential: "bench".to_owned(),
            heartbeat_interval: None,
        })
    }
    async fn heartbeat(&self, _: &str, _: &Heartbeat) -> Result<(), ControlError> {
        Ok(())
    }
    async fn poll_tasks(
        &self,
        _: &str,
        wait: Duration,
        _: usize,
    ) -> Result<Vec<LeasedTask>, ControlError> {
        if !self.delivered.swap(true, Ordering::SeqCst)
            && let Some(t) = self.task.lock().unwrap().take()
        {
            return Ok(vec![t]);
        }
        tokio::time::sleep(wait).await;
        Ok(Vec::new())
    }
    async fn report_task(
        &self,
        _: &str,
        _: LeaseRef,
        _: TaskReport,
    ) -> Result<Option<DateTime<Utc>>, ControlError> {
        Ok(None)
    }
    async fn release_task(&self, _: &str, _: LeaseRef) -> Result<(), ControlError> {
        Ok(())
    }
    async fn report_metrics(
        &self,
        _: &str,
        samples: &[MeasurementSample],
        _: Option<&CardinalitySnapshot>,
    ) -> Result<MetricsAck, ControlError> {
        for s in samples {
            self.samples.fetch_add(1, Ordering::Relaxed);
            self.series
                .store(s.variant(Variant::Baseline).series, Ordering::Relaxed);
            self.candidate_series
                .store(s.variant(Variant::Candidate).series, Ordering::Relaxed);
        }
        Ok(MetricsAck {
            inserted: samples.len() as u64,
            duplicates: 0,
        })
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn count_processes() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut children = Vec::new();
    while count_processes() < args.processes {
        children.push(
            tokio::process::Command::new("sleep")
                .arg("100000")
                .kill_on_drop(true)
                .spawn()?,
        );
    }
    let host_processes = count_processes();
    let registry = TemplateRegistry::builtin();
    // The bench itself is the critical process (as `/proc` names it: 15 characters); the
    // `sleep` fillers must stay ordinary processes or they would all be kept.
    let own_name: String = std::env::current_exe()?
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(15).collect())
        .unwrap_or_default();
    let critical = vec![own_name];
    let context = |variant| RenderContext {
        variant: Some(variant),
        critical_processes: critical.clone(),
        critical_metrics: Vec::new(),
    };
    let interval = ParamValue::String(format!("{}s", args.interval_secs));
    let baseline = registry.render(
        &PipelineRef::new("baseline").with_param("collection_interval", interval.clone()),
        &context(Variant::Baseline),
    )?;
    let candidate = registry.render(
        &PipelineRef::new("topk")
            .with_param("k", ParamValue::Int(args.k))
            .with_param("collection_interval", interval),
        &context(Variant::Candidate),
    )?;
    let now = Utc::now();
    let payload = TaskPayload::DeployPipelines {
        experiment_id: ExperimentId::new(),
        op_seq: 1,
        baseline,
        candidate,
        collector_yaml: String::new(),
        sample_interval_secs: args.interval_secs,
        critical_processes: critical.clone(),
        critical_metrics: Vec::new(),
    };
    let mut task = Task::from_new(
        &NewTask::new(AgentId::new(), payload, priority::DEPLOY),
        now,
    );
    task.state = TaskState::Leased;
    task.id = TaskId::new();
    let control = Arc::new(BenchControl {
        task: std::sync::Mutex::new(Some(LeasedTask {
            task,
            lease_token: LeaseToken::new(),
            lease_expires_at: now + chrono::Duration::hours(1),
        })),
        samples: AtomicU64::new(0),
        series: AtomicU64::new(0),
        candidate_series: AtomicU64::new(0),
        delivered: AtomicBool::new(false),
    });
    let state = tempfile::tempdir()?;
    let config = AgentConfig {
        enrollment_token: Some("bench".to_owned()),
        state_dir: state.path().to_path_buf(),
        listen: Some("127.0.0.1:0".parse()?),
        snapshot_every: 30,
        deploy_timeout: Duration::from_secs(u64::from(args.interval_secs) * 3 + 10),
        ..AgentConfig::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(Agent::new(config, control.clone()).run(async {
        let _ = stop_rx.await;
    }));
    // Warm up: the deploy and the first interval (its scan has no CPU utilisation yet).
    let warmup = Duration::from_secs(u64::from(args.interval_secs) + 2);
    tokio::time::sleep(warmup).await;
    let cpu0 = own_cpu_seconds();
    let t0 = Instant::now();
    let samples0 = control.samples.load(Ordering::Relaxed);
    let mut rss_max = 0u64;
    let mut rss_sum = 0u64;
    let mut rss_n = 0u64;
    while t0.elapsed() < Duration::from_secs(args.duration_secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = rss_bytes();
        rss_max = rss_max.max(rss);
        rss_sum += rss;
        rss_n += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu_pct = 100.0 * (own_cpu_seconds() - cpu0) / wall;
    let samples = control.samples.load(Ordering::Relaxed) - samples0;
    let _ = stop_tx.send(());
    agent.await??;
    drop(children);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let section = format!(
        "## Agent overhead (phoenix-agent)\n\n\
Machine: 2 vCPU, 24 GiB RAM, release build; other builds and tests were running on the machine during the run.\n\n\
Command: `cargo run --release -p phoenix-agent --bin phoenix-agent-bench -- --processes {p} --interval-secs {i} --duration-secs {d} --write docs/benchmarks.md`\n\n\
The whole agent runs in the bench process (heartbeats, long-poll, native runtime, exposition listener, reporting) against a control plane that hands it one deploy task (built-in `baseline` vs `topk` K={k}, the bench process itself critical) and accepts every report; `sleep` children bring the host to the process count. CPU is the process's CPU time over the measured window (after the first interval) per wall second; RSS is sampled every second from `/proc/self/status`.\n\n\
| Figure | Result | Target (design 6) |\n|---|---|---|\n\
| Processes on the host | {hp} | >= 300 |\n\
| Interval | {i} s | 10 s |\n\
| Series per sample, baseline / candidate | {bs} / {cs} | |\n\
| Samples measured | {samples} over {wall:.0} s | |\n\
| Agent CPU | {cpu_pct:.3} % of one core | < 1 % |\n\
| Agent RSS | mean {rss_mean:.1} MiB, max {rss_max:.1} MiB | < 30 MB |\n",
        p = args.processes,
        i = args.interval_secs,
        d = args.duration_secs,
        k = args.k,
        hp = host_processes,
        bs = control.series.load(Ordering::Relaxed),
        cs = control.candidate_series.load(Ordering::Relaxed),
        rss_mean = mib(rss_sum / rss_n.max(1)),
        rss_max = mib(rss_max),
    );
    println!("{section}");
    if let Some(path) = args.write {
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let marker = "## Agent overhead (phoenix-agent)";
        let updated = match doc.find(marker) {
            Some(start) => {
                let rest = &doc[start + marker.len()..];
                let end = rest
                    .find("\n## ")
                    .map_or(doc.len(), |e| start + marker.len() + e + 1);
                format!("{}{section}{}", &doc[..start], &doc[end..])
            }
            None => format!(
                "{}\n{section}",
                doc.trim_end_matches('\n').to_owned() + "\n"
            ),
        };
        std::fs::write(&path, updated)?;
    }
    Ok(())
}
