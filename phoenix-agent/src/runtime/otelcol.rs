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
//! Points in and out come from the collector's own telemetry (`:8888/metrics`):
//! `otelcol_receiver_accepted_metric_points` and `otelcol_exporter_sent_metric_points`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::agent::{ActivePipeline, PipelineHealth};
use phoenix_core::ids::AgentId;
use phoenix_core::measure::SnapshotSeries;
use phoenix_core::pipeline::exposition::sample_from_exposition;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::{Deployments, PipelineKey, PipelineRuntime, RuntimeError};
use crate::backoff::Backoff;
use crate::config::OtelcolConfig;
use crate::report::Reporter;
use crate::seq::Sequences;

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
}

/// The otelcol runtime.
#[derive(Debug)]
pub struct OtelcolRuntime {
    inner: Arc<Inner>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
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

impl OtelcolRuntime {
    /// A runtime writing configs under `dir`; the collector starts with the first apply.
    ///
    /// # Errors
    /// When the binary does not exist.
    pub fn start(
        config: OtelcolConfig,
        dir: PathBuf,
        _agent_id: AgentId,
        _reporter: Arc<Reporter>,
        _sequences: Arc<Sequences>,
    ) -> Result<Self, RuntimeError> {
        if config.binary.components().count() > 1 && !config.binary.exists() {
            return Err(RuntimeError::Unsupported(format!(
                "collector binary {} not found",
                config.binary.display()
            )));
        }
        let inner = Arc::new(Inner {
            config,
            dir,
            http: reqwest::Client::new(),
            supervised: tokio::sync::Mutex::new(Supervised::default()),
            desired: watch::channel(Deployments::default()).0,
            health: Mutex::new((PipelineHealth::Starting, None)),
            telemetry: Mutex::new(CollectorTelemetry::default()),
        });
        let watcher = tokio::spawn(watch_crashes(Arc::clone(&inner)));
        Ok(Self {
            inner,
            watcher: Mutex::new(Some(watcher)),
        })
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

impl Inner {
    async fn spawn(&self, s: &mut Supervised, config_file: &PathBuf) -> Result<(), RuntimeError> {
        let child = Command::new(&self.config.binary)
            .args(&self.config.args)
            .arg("--config")
            .arg(config_file)
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
        Ok(())
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
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
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
    let mut backoff = Backoff::new(inner.config.restart_backoff, Duration::from_secs(60));
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
        let inner = &self.inner;
        let mut s = inner.supervised.lock().await;
        let config = self.config_path();
        let lkg = self.lkg_path();
        let Some(yaml) = yaml else {
            inner.stop(&mut s).await;
            inner.desired.send_replace(desired.clone());
            return Ok(());
        };
        if std::fs::read_to_string(&config).is_ok_and(|c| c == yaml) && s.child.is_some() {
            inner.desired.send_replace(desired.clone());
            return Ok(());
        }
        crate::state::write_private(&config, yaml.as_bytes())
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        inner.stop(&mut s).await;
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
                inner.set_health(PipelineHealth::Healthy, None);
                inner.desired.send_replace(desired.clone());
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(%reason, "new collector config did not become healthy; restoring the last-known-good one");
                inner.stop(&mut s).await;
                if lkg.exists() {
                    std::fs::copy(&lkg, &config).map_err(RuntimeError::Io)?;
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
        // The collector's own exporters are the only view of its data this runtime has:
        // snapshot what the running config exports on its first Prometheus exporter.
        let desired = self.inner.desired.borrow().clone();
        let endpoint = desired.pipelines().into_iter().find_map(|(_, p)| {
            p.spec.exporters.iter().find_map(|e| match e {
                phoenix_core::pipeline::spec::ExporterSpec::Prometheus { endpoint } => {
                    Some(endpoint.replace("0.0.0.0", "127.0.0.1"))
                }
                phoenix_core::pipeline::spec::ExporterSpec::OtlpHttp { .. } => None,
            })
        });
        let Some(endpoint) = endpoint else {
            return Ok(Vec::new());
        };
        let text = self
            .inner
            .http
            .get(format!("http://{endpoint}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?
            .text()
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
        let sample = sample_from_exposition(
            &text,
            chrono::Utc::now().timestamp_millis(),
            BTreeMap::<String, String>::new(),
        )
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e.to_string())))?;
        Ok(sample.snapshot_series())
    }

    async fn shutdown(&self) {
        let mut s = self.inner.supervised.lock().await;
        self.inner.stop(&mut s).await;
        if let Some(w) = lock(&self.watcher).take() {
            w.abort();
        }
    }
}

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
