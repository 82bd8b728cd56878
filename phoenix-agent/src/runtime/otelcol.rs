//! The otelcol runtime: for hosts that run the real OpenTelemetry Collector.
//!
//! The agent writes the rendered Collector config to its state directory and supervises
//! the configured binary:
//! - **start**: `<binary> [args] --config <file>`, then wait until the `health_check`
//!   extension answers 2xx (within `start_timeout`);
//! - **stop**: SIGTERM, then SIGKILL after `stop_timeout`;
//! - **crash**: restarted with exponential backoff (from `restart_backoff`, up to a
//!   minute), the pipelines reported unhealthy meanwhile;
//! - **last-known-good**: a config that became healthy is kept as `lkg.yaml`; when a new
//!   config does not become healthy, the collector is started again on `lkg.yaml` and the
//!   change fails.
//!
//! **Measurement.** While an experiment's candidate runs, the Collector runs the combined
//! config exactly as rendered plus the measurement tap overlay rendered by core
//! ([`phoenix_core::pipeline::render::tap`]), passed as a second `--config`: it copies the
//! shared receivers' output (`input`) and each variant's exported output to the agent's
//! loopback tap listener ([`super::tap`]). Per window, the agent measures each variant's
//! actual output against the input with the core engine's statistics
//! ([`Engine::output_stats`]: series, points, Prometheus text bytes, fidelity, critical
//! coverage) and reports a [`MeasurementSample`] like the native runtime. The host figures'
//! `agent_cpu_pct` and `agent_rss_bytes` are the agent's plus the Collector process's
//! (`/proc/<pid>/stat`, `/proc/<pid>/statm`); both variants run in that one process, so no
//! per-variant CPU is reported (`eval_nanos` stays 0; the KPI says "not measured").
//! Without a candidate (a rolled-back experiment, the host pipeline) no tap is added.
//!
//! Points in and out can also be read from the collector's own telemetry
//! ([`OtelcolRuntime::telemetry`]): `otelcol_receiver_accepted_metric_points` and
//! `otelcol_exporter_sent_metric_points`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::agent::{ActivePipeline, PipelineHealth};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::SnapshotSeries;
use phoenix_core::pipeline::render::tap::{TapTarget, measurement_tap};
use phoenix_core::pipeline::{Engine, Sample};
use phoenix_core::queries::QuerySet;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use self::measure::{Measuring, measure_windows, window_of};
use super::tap::{TapSink, TapStats, TapWindows};
use super::{Deployments, ExperimentDeployment, PipelineKey, PipelineRuntime, RuntimeError};
use crate::config::OtelcolConfig;
use crate::config::backoff_sequence;
use crate::host::HostProbe;
use crate::report::Reporter;
use crate::seq::Sequences;

/// What the runtime needs to report measurements.
#[derive(Debug, Clone)]
pub struct MeasureContext {
    /// This agent.
    pub agent_id: AgentId,
    /// The host name (in snapshots).
    pub host: String,
    /// Host figures.
    pub probe: Arc<Mutex<HostProbe>>,
}

/// Points the collector reports about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CollectorTelemetry {
    /// `otelcol_receiver_accepted_metric_points`, summed.
    pub points_in: f64,
    /// `otelcol_exporter_sent_metric_points`, summed.
    pub points_out: f64,
    /// `otelcol_exporter_send_failed_metric_points`, summed.
    pub points_failed: f64,
}

/// Sums the self-telemetry counters of a collector's `/metrics` text.
#[must_use]
pub fn parse_telemetry(text: &str) -> CollectorTelemetry {
    let mut t = CollectorTelemetry::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or("");
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        match name.trim_end_matches("_total") {
            "otelcol_receiver_accepted_metric_points" => t.points_in += v,
            "otelcol_exporter_sent_metric_points" => t.points_out += v,
            "otelcol_exporter_send_failed_metric_points" => t.points_failed += v,
            _ => {}
        }
    }
    t
}

#[derive(Debug, Default)]
struct Supervised {
    child: Option<Child>,
    /// Bumped at every intentional start/stop, so the crash watcher knows a stop was ours.
    generation: u64,
    /// The tap overlay passed after the config, while an experiment is measured.
    overlay: Option<PathBuf>,
    /// What the running config measures, and what the last-known-good one measured.
    measuring: Option<Measuring>,
    lkg_measuring: Option<Measuring>,
    /// Tap generations handed out so far.
    tap_generations: u64,
    /// When the child started and the CPU seconds it had used at the last report.
    cpu_mark: Option<(tokio::time::Instant, f64)>,
}

#[derive(Debug)]
struct Inner {
    config: OtelcolConfig,
    dir: PathBuf,
    http: reqwest::Client,
    supervised: tokio::sync::Mutex<Supervised>,
    desired: watch::Sender<Deployments>,
    health: Mutex<(PipelineHealth, Option<String>)>,
    telemetry: Mutex<CollectorTelemetry>,
    measure: MeasureContext,
    reporter: Arc<Reporter>,
    sequences: Arc<Sequences>,
    tap: Arc<TapSink>,
    tap_addr: SocketAddr,
    last_input: Mutex<Option<Arc<Sample>>>,
    /// The measured experiment's churn trackers, one per variant.
    churn: Mutex<super::ChurnTrackers>,
}

/// The otelcol runtime.
#[derive(Debug)]
pub struct OtelcolRuntime {
    inner: Arc<Inner>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The one Collector config for `desired`: nothing, one pipeline's config, or an
/// experiment's combined config (baseline and candidate sharing the receivers, rendered by
/// the server) while its candidate runs.
///
/// # Errors
/// `Unsupported` when the pipelines cannot be one config: two experiments at once, an
/// experiment beside the host pipeline (per-pipeline configs cannot simply be concatenated:
/// component ids and ports would clash), or a candidate without a combined config (a server
/// that does not send it).
pub fn collector_config(desired: &Deployments) -> Result<Option<String>, RuntimeError> {
    let pipelines = desired.pipelines();
    match pipelines.as_slice() {
        [] => return Ok(None),
        [(_, p)] => return Ok(Some(p.collector_yaml.clone())),
        _ => {}
    }
    let mut experiments = desired.experiments.values();
    if let (Some(d), None, None) = (experiments.next(), experiments.next(), &desired.host)
        && d.candidate.is_some()
        && !d.collector_yaml.is_empty()
    {
        return Ok(Some(d.collector_yaml.clone()));
    }
    Err(RuntimeError::Unsupported(
        "the otelcol runtime runs one collector config: one experiment (with its combined config) or one pipeline at a time".to_owned(),
    ))
}

/// The experiment whose combined config [`collector_config`] runs, which the tap measures.
fn measured_experiment(desired: &Deployments) -> Option<(ExperimentId, &ExperimentDeployment)> {
    let mut experiments = desired.experiments.iter();
    match (experiments.next(), experiments.next(), &desired.host) {
        (Some((id, d)), None, None) if d.candidate.is_some() && !d.collector_yaml.is_empty() => {
            Some((*id, d))
        }
        _ => None,
    }
}

impl OtelcolRuntime {
    /// A runtime writing configs under `dir`; the collector starts with the first apply.
    /// Binds the measurement tap listener (`127.0.0.1`, an ephemeral port); must be called
    /// within a Tokio runtime.
    ///
    /// # Errors
    /// When the binary does not exist or the tap listener cannot be bound.
    pub fn start(
        config: OtelcolConfig,
        dir: PathBuf,
        measure: MeasureContext,
        reporter: Arc<Reporter>,
        sequences: Arc<Sequences>,
    ) -> Result<Self, RuntimeError> {
        if config.binary.components().count() > 1 && !config.binary.exists() {
            return Err(RuntimeError::Unsupported(format!(
                "collector binary {} not found",
                config.binary.display()
            )));
        }
        let tap = Arc::new(TapSink::new(super::tap::random_token()));
        let (tap_addr, tap_task) = super::tap::serve(Arc::clone(&tap)).map_err(RuntimeError::Io)?;
        let inner = Arc::new(Inner {
            config,
            dir,
            http: reqwest::Client::new(),
            supervised: tokio::sync::Mutex::new(Supervised::default()),
            desired: watch::channel(Deployments::default()).0,
            health: Mutex::new((PipelineHealth::Starting, None)),
            telemetry: Mutex::new(CollectorTelemetry::default()),
            measure,
            reporter,
            sequences,
            tap,
            tap_addr,
            last_input: Mutex::new(None),
            churn: Mutex::new(super::ChurnTrackers::default()),
        });
        let watcher = tokio::spawn(watch_crashes(Arc::clone(&inner)));
        let measurer = tokio::spawn(measure_windows(Arc::clone(&inner)));
        Ok(Self {
            inner,
            watcher: Mutex::new(Some(watcher)),
            tasks: Mutex::new(vec![tap_task, measurer]),
        })
    }

    /// The tap overlay file (present while an experiment is measured).
    #[must_use]
    pub fn tap_path(&self) -> PathBuf {
        self.inner.dir.join("tap.yaml")
    }

    /// Where the measurement tap listens (loopback).
    #[must_use]
    pub fn tap_addr(&self) -> SocketAddr {
        self.inner.tap_addr
    }

    /// What the tap received so far for the experiment measured now, if any.
    pub async fn tap_stats(&self) -> Option<TapStats> {
        let generation = self
            .inner
            .supervised
            .lock()
            .await
            .measuring
            .as_ref()?
            .generation;
        self.inner.tap.with_windows(generation, |w| w.stats())
    }

    /// The config file the collector runs.
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.inner.dir.join("config.yaml")
    }

    /// The last-known-good config file.
    #[must_use]
    pub fn lkg_path(&self) -> PathBuf {
        self.inner.dir.join("lkg.yaml")
    }

    /// The collector's pid, when running.
    pub async fn pid(&self) -> Option<u32> {
        self.inner
            .supervised
            .lock()
            .await
            .child
            .as_ref()
            .and_then(Child::id)
    }

    /// Reads the collector's self-telemetry now.
    ///
    /// # Errors
    /// When it cannot be fetched.
    pub async fn telemetry(&self) -> Result<CollectorTelemetry, RuntimeError> {
        let text = self
            .inner
            .http
            .get(&self.inner.config.telemetry_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?
            .text()
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        let t = parse_telemetry(&text);
        *lock(&self.inner.telemetry) = t;
        Ok(t)
    }
}

/// The Collector gets SIGKILL when the agent dies, however it dies (`kill -9` included), so
/// no orphan keeps its ports or its pipelines running behind a restarted agent's back. On
/// Linux this is `PR_SET_PDEATHSIG`, set in the child between fork and exec; a parent that
/// died before that point is caught by comparing the parent pid. Elsewhere `kill_on_drop`
/// and [`Inner::stop`] are the only guards.
///
/// The signal follows the spawning *thread*: collectors are spawned from async tasks, on
/// runtime worker threads, which live as long as the agent's runtime (never from
/// `spawn_blocking`, whose idle threads exit).
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pre_exec runs in the forked child; the hook only makes two syscalls"
)]
fn die_with_agent(command: &mut Command) {
    let agent = rustix::process::getpid();
    // SAFETY: the closure runs in the child after fork and before exec. It calls only
    // `prctl(PR_SET_PDEATHSIG)` and `getppid`, both async-signal-safe system calls, and
    // allocates nothing (the error is built from an errno or a constant kind).
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() == Some(agent) {
                Ok(())
            } else {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_agent(_: &mut Command) {}

impl Inner {
    async fn spawn(&self, s: &mut Supervised, config_file: &PathBuf) -> Result<(), RuntimeError> {
        let mut command = Command::new(&self.config.binary);
        command
            .args(&self.config.args)
            .arg("--config")
            .arg(config_file);
        if let Some(overlay) = &s.overlay {
            command.arg("--config").arg(overlay);
        }
        die_with_agent(&mut command);
        // A new process: its scrapes run at a new phase, so windows start again.
        if let Some(m) = &s.measuring {
            self.tap.with_windows(m.generation, TapWindows::reset);
        }
        let child = command
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                RuntimeError::Unsupported(format!(
                    "cannot start collector {}: {e}",
                    self.config.binary.display()
                ))
            })?;
        s.child = Some(child);
        s.generation += 1;
        s.cpu_mark = Some((tokio::time::Instant::now(), 0.0));
        Ok(())
    }

    /// Starts measuring `m` through the tap (fresh windows), or stops measuring.
    fn measure(&self, s: &mut Supervised, m: Option<Measuring>) {
        match &m {
            Some(m) => self.tap.start(
                m.generation,
                TapWindows::new(
                    i64::from(m.interval_secs) * 1000,
                    i64::from(m.grace_secs) * 1000,
                ),
            ),
            None => self.tap.stop(),
        }
        s.measuring = m;
    }

    /// SIGTERM, then SIGKILL after `stop_timeout`.
    async fn stop(&self, s: &mut Supervised) {
        s.generation += 1;
        let Some(mut child) = s.child.take() else {
            return;
        };
        if let Some(pid) = child
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(i32::try_from(p).unwrap_or(0)))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(self.config.stop_timeout, child.wait())
            .await
            .is_err()
        {
            tracing::warn!("collector ignored SIGTERM; killing it");
            let _ = child.kill().await;
        }
    }

    async fn healthy_within(&self, s: &mut Supervised, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = backoff_sequence(Duration::from_millis(50), Duration::from_millis(500));
        loop {
            if let Some(child) = s.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                s.child = None;
                return Err(format!("collector exited during start ({status})"));
            }
            let ok = self
                .http
                .get(&self.config.health_url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "health check {} not healthy within {timeout:?}",
                    self.config.health_url
                ));
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    fn set_health(&self, health: PipelineHealth, detail: Option<String>) {
        *lock(&self.health) = (health, detail);
    }
}

async fn watch_crashes(inner: Arc<Inner>) {
    let mut backoff = backoff_sequence(inner.config.restart_backoff, Duration::from_secs(60));
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = inner.supervised.lock().await;
        let exited = match s.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        };
        let Some(status) = exited else {
            if s.child.is_some() {
                backoff.reset();
            }
            continue;
        };
        s.child = None;
        let generation = s.generation;
        tracing::warn!(%status, "collector exited; restarting");
        inner.set_health(
            PipelineHealth::Unhealthy,
            Some(format!("collector exited ({status}); restarting")),
        );
        drop(s);
        tokio::time::sleep(backoff.next_delay()).await;
        let mut s = inner.supervised.lock().await;
        if s.generation != generation || s.child.is_some() {
            continue; // an apply or stop happened meanwhile
        }
        let config = inner.dir.join("config.yaml");
        if inner.spawn(&mut s, &config).await.is_ok() {
            match inner
                .healthy_within(&mut s, inner.config.start_timeout)
                .await
            {
                Ok(()) => inner.set_health(PipelineHealth::Healthy, None),
                Err(e) => inner.set_health(PipelineHealth::Unhealthy, Some(e)),
            }
        }
    }
}

#[async_trait]
impl PipelineRuntime for OtelcolRuntime {
    fn name(&self) -> &'static str {
        "otelcol"
    }

    async fn apply(&self, desired: &Deployments) -> Result<(), RuntimeError> {
        let yaml = collector_config(desired)?;
        let measured = measured_experiment(desired);
        let inner = &self.inner;
        let mut s = inner.supervised.lock().await;
        let config = self.config_path();
        let lkg = self.lkg_path();
        let tap = self.tap_path();
        let lkg_tap = inner.dir.join("lkg-tap.yaml");
        let Some(yaml) = yaml else {
            inner.stop(&mut s).await;
            inner.measure(&mut s, None);
            s.overlay = None;
            let _ = std::fs::remove_file(&tap);
            inner.desired.send_replace(desired.clone());
            return Ok(());
        };
        let same_measuring = match (&s.measuring, measured) {
            (Some(m), Some((id, _))) => m.experiment_id == id,
            (None, None) => true,
            _ => false,
        };
        if std::fs::read_to_string(&config).is_ok_and(|c| c == yaml)
            && s.child.is_some()
            && same_measuring
        {
            inner.desired.send_replace(desired.clone());
            return Ok(());
        }
        // The tap first: a config it cannot tap changes nothing.
        let next = match measured {
            Some((id, d)) => {
                let generation = s.tap_generations + 1;
                let overlay = measurement_tap(
                    &yaml,
                    &TapTarget {
                        endpoint: format!("http://{}", inner.tap_addr),
                        token: inner.tap.token().to_owned(),
                        generation,
                    },
                )
                .map_err(|e| RuntimeError::Unsupported(e.to_string()))?;
                s.tap_generations = generation;
                let (interval_secs, grace_secs, needs_utilization) = window_of(d);
                Some((
                    overlay,
                    Measuring {
                        generation,
                        experiment_id: id,
                        engine: Engine::with_critical(
                            d.baseline.spec.clone(),
                            &d.critical_processes,
                            &d.critical_metrics,
                        ),
                        queries: (!d.queries.is_empty())
                            .then(|| Arc::new(QuerySet::new(&d.queries))),
                        needs_utilization,
                        interval_secs,
                        grace_secs,
                    },
                ))
            }
            None => None,
        };
        crate::state::write_private(&config, yaml.as_bytes())
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        inner.stop(&mut s).await;
        match next {
            Some((overlay, m)) => {
                crate::state::write_private(&tap, overlay.as_bytes())
                    .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
                s.overlay = Some(tap.clone());
                inner.measure(&mut s, Some(m));
            }
            None => {
                let _ = std::fs::remove_file(&tap);
                s.overlay = None;
                inner.measure(&mut s, None);
            }
        }
        inner.set_health(PipelineHealth::Starting, None);
        let started = match inner.spawn(&mut s, &config).await {
            Ok(()) => {
                inner
                    .healthy_within(&mut s, inner.config.start_timeout)
                    .await
            }
            Err(e) => Err(e.to_string()),
        };
        match started {
            Ok(()) => {
                std::fs::copy(&config, &lkg).map_err(RuntimeError::Io)?;
                if s.overlay.is_some() {
                    std::fs::copy(&tap, &lkg_tap).map_err(RuntimeError::Io)?;
                } else {
                    let _ = std::fs::remove_file(&lkg_tap);
                }
                s.lkg_measuring = s.measuring.clone();
                inner.set_health(PipelineHealth::Healthy, None);
                inner.desired.send_replace(desired.clone());
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(%reason, "new collector config did not become healthy; restoring the last-known-good one");
                inner.stop(&mut s).await;
                if lkg.exists() {
                    std::fs::copy(&lkg, &config).map_err(RuntimeError::Io)?;
                    if lkg_tap.exists() {
                        std::fs::copy(&lkg_tap, &tap).map_err(RuntimeError::Io)?;
                        s.overlay = Some(tap.clone());
                    } else {
                        let _ = std::fs::remove_file(&tap);
                        s.overlay = None;
                    }
                    let previous = s.lkg_measuring.clone();
                    inner.measure(&mut s, previous);
                    if inner.spawn(&mut s, &config).await.is_ok()
                        && inner
                            .healthy_within(&mut s, inner.config.start_timeout)
                            .await
                            .is_ok()
                    {
                        inner.set_health(PipelineHealth::Healthy, None);
                    }
                } else {
                    let _ = std::fs::remove_file(&config);
                    let _ = std::fs::remove_file(&tap);
                    s.overlay = None;
                    inner.measure(&mut s, None);
                }
                Err(RuntimeError::Unhealthy(reason))
            }
        }
    }

    async fn confirm_serving(
        &self,
        _keys: &[PipelineKey],
        _complete: bool,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let mut s = self.inner.supervised.lock().await;
        if s.child.is_none() {
            return Err(RuntimeError::Unhealthy(
                "collector is not running".to_owned(),
            ));
        }
        self.inner
            .healthy_within(&mut s, timeout)
            .await
            .map_err(RuntimeError::Unhealthy)
    }

    fn active(&self) -> Vec<ActivePipeline> {
        let (health, detail) = lock(&self.inner.health).clone();
        self.inner
            .desired
            .borrow()
            .active(|_| (health, detail.clone()))
    }

    async fn snapshot(&self) -> Result<Vec<SnapshotSeries>, RuntimeError> {
        // The tap's last input window, while an experiment is measured.
        let last = lock(&self.inner.last_input).clone();
        if let Some(input) = last {
            return tokio::task::spawn_blocking(move || input.snapshot_series())
                .await
                .map_err(|e| RuntimeError::Io(std::io::Error::other(e)));
        }
        // Otherwise (nothing measured yet, or a deployment without the tap) the host's
        // processes in the hostmetrics shape: what the Collector's process receiver reads.
        // Never a pipeline's exporter: that is an output, and a snapshot is the host's input
        // (the server bounds every sample by it, since a pipeline cannot output more series
        // than its input).
        let probe = Arc::clone(&self.inner.measure.probe);
        tokio::task::spawn_blocking(move || {
            let scan = probe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .scan();
            phoenix_core::pipeline::Sample::from_processes(
                chrono::Utc::now().timestamp_millis(),
                &scan.processes,
            )
            .snapshot_series()
        })
        .await
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))
    }

    async fn shipped(&self) -> Result<Option<Vec<SnapshotSeries>>, RuntimeError> {
        // What the host pipeline ships, read where it ships it: its Prometheus exporter.
        // Only while it is the config that runs (an experiment's config replaces it), and
        // only when it exports to Prometheus (OTLP exports cannot be read back).
        let endpoint = {
            let desired = self.inner.desired.borrow();
            let Some(host) = desired
                .host
                .as_ref()
                .filter(|_| desired.experiments.is_empty())
            else {
                return Ok(None);
            };
            host.pipeline.spec.exporters.iter().find_map(|e| match e {
                phoenix_core::pipeline::spec::ExporterSpec::Prometheus { endpoint } => {
                    Some(endpoint.replace("0.0.0.0", "127.0.0.1"))
                }
                phoenix_core::pipeline::spec::ExporterSpec::OtlpHttp { .. } => None,
            })
        };
        let Some(endpoint) = endpoint else {
            return Ok(None);
        };
        if lock(&self.inner.health).0 != PipelineHealth::Healthy {
            return Ok(None);
        }
        let text = crate::snapshot::scrape(&self.inner.http, &endpoint, Duration::from_secs(5))
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        tokio::task::spawn_blocking(move || {
            phoenix_core::pipeline::exposition::sample_from_exposition(
                &text,
                chrono::Utc::now().timestamp_millis(),
                std::iter::empty::<(&str, &str)>(),
            )
            .map(|sample| Some(sample.snapshot_series()))
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e.to_string())))
        })
        .await
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?
    }

    async fn shutdown(&self) {
        let mut s = self.inner.supervised.lock().await;
        self.inner.stop(&mut s).await;
        if let Some(w) = lock(&self.watcher).take() {
            w.abort();
        }
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        self.inner.tap.stop();
    }
}

mod measure;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_sums_counters_across_labels() {
        let text = "# TYPE otelcol_receiver_accepted_metric_points_total counter\notelcol_receiver_accepted_metric_points_total{receiver=\"hostmetrics\"} 120\notelcol_receiver_accepted_metric_points_total{receiver=\"prometheus\"} 30\notelcol_exporter_sent_metric_points_total{exporter=\"prometheus/baseline\"} 150\notelcol_exporter_sent_metric_points_total{exporter=\"prometheus/candidate\"} 15\notelcol_exporter_send_failed_metric_points{exporter=\"x\"} 2\nother 5\n";
        assert_eq!(
            parse_telemetry(text),
            CollectorTelemetry {
                points_in: 150.0,
                points_out: 165.0,
                points_failed: 2.0
            }
        );
    }

    #[test]
    fn an_experiment_runs_its_combined_config() {
        use phoenix_core::ids::ExperimentId;
        use phoenix_core::pipeline::{PipelineRef, TemplateRegistry};

        use crate::runtime::{ExperimentDeployment, HostPipeline};

        let rendered = TemplateRegistry::builtin()
            .render_experiment(
                &PipelineRef::new("baseline"),
                &PipelineRef::new("topk"),
                &["sshd".to_owned()],
                &[],
            )
            .unwrap();
        let deployment = |combined: &str, candidate: bool| ExperimentDeployment {
            op_seq: 1,
            baseline: rendered.baseline.clone(),
            candidate: candidate.then(|| rendered.candidate.clone()),
            sample_interval_secs: 10,
            critical_processes: vec!["sshd".to_owned()],
            critical_metrics: Vec::new(),
            collector_yaml: combined.to_owned(),
            queries: Vec::new(),
        };
        let mut desired = Deployments::default();
        assert_eq!(collector_config(&desired).unwrap(), None);

        let id = ExperimentId::new();
        desired
            .experiments
            .insert(id, deployment(&rendered.collector_yaml, true));
        let yaml = collector_config(&desired).unwrap().unwrap();
        assert_eq!(yaml, rendered.collector_yaml);
        assert!(yaml.contains("metrics/baseline") && yaml.contains("metrics/candidate"));

        // Rolled back: the baseline alone.
        desired
            .experiments
            .insert(id, deployment(&rendered.collector_yaml, false));
        assert_eq!(
            collector_config(&desired).unwrap().unwrap(),
            rendered.baseline.collector_yaml
        );

        // No combined config, or more than one thing to run: refused, nothing guessed.
        desired.experiments.insert(id, deployment("", true));
        assert!(collector_config(&desired).is_err());
        desired
            .experiments
            .insert(id, deployment(&rendered.collector_yaml, true));
        desired.host = Some(HostPipeline {
            pipeline: rendered.baseline.clone(),
            experiment_id: None,
            deployment_id: None,
        });
        assert!(collector_config(&desired).is_err());
    }
}
