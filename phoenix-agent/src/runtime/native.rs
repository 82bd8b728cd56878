//! The native runtime: one sample per interval, every pipeline evaluated on it with the
//! core engine, outputs served on the agent's listener and pushed over OTLP.
//!
//! Each interval the sampler builds **one** [`Sample`] from the union of the receivers of
//! every running pipeline (the process receiver via [`HostProbe`], Prometheus targets by
//! scraping them), then evaluates the baseline and the candidate of every experiment (and
//! the host pipeline) on that same sample, each with its own [`Engine`] whose state
//! (thresholds, hysteresis) survives from one interval to the next. Per experiment it
//! reports one [`MeasurementSample`] with both variants' statistics and the host figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::Utc;
use phoenix_core::agent::{ActivePipeline, PipelineHealth};
use phoenix_core::cost::churn::sample_identities;
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{HostStats, MeasurementSample, SnapshotSeries, Variant, VariantStats};
use phoenix_core::pipeline::exposition::parse_exposition;
use phoenix_core::pipeline::spec::{ExporterSpec, ReceiverSpec};
use phoenix_core::pipeline::{Engine, Sample, SampleBuilder};
use phoenix_core::queries::{QuerySet, SampleQueries, Series, series_of};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{ChurnTrackers, Deployments, PipelineKey, PipelineRuntime, RuntimeError};
use crate::exposition;
use crate::host::{HostProbe, thread_cpu_nanos};
use crate::otlp;
use crate::report::Reporter;
use crate::seq::Sequences;
use crate::serve::Expositions;

/// Settings of the native runtime.
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// This agent.
    pub agent_id: AgentId,
    /// The host name (in snapshots).
    pub host: String,
    /// An OTLP/HTTP endpoint every pipeline also exports to (besides the ones in its spec).
    pub otlp_endpoint: Option<String>,
    /// Timeout of a Prometheus scrape and of an OTLP export.
    pub io_timeout: Duration,
}

/// What the last interval produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// Intervals evaluated so far.
    pub seq: u64,
    /// True when every metric was available (not the first process scan).
    pub complete: bool,
    /// Pipelines that produced output.
    pub produced: BTreeSet<PipelineKey>,
}

type Health = BTreeMap<PipelineKey, (PipelineHealth, Option<String>)>;

struct Shared {
    config: NativeConfig,
    probe: Arc<Mutex<HostProbe>>,
    engines: Arc<Mutex<BTreeMap<PipelineKey, (String, Engine)>>>,
    /// Each experiment's frozen queries, compiled once.
    queries: Mutex<BTreeMap<ExperimentId, Arc<QuerySet>>>,
    desired: watch::Sender<Deployments>,
    ticks: watch::Sender<Tick>,
    expositions: Arc<Expositions>,
    reporter: Arc<Reporter>,
    sequences: Arc<Sequences>,
    http: reqwest::Client,
    started_unix_nano: u64,
    health: Mutex<Health>,
    last_input: Mutex<Option<Arc<Sample>>>,
    /// The host pipeline's last output (what the host ships), with its config hash.
    last_shipped: Mutex<Option<(String, Arc<Sample>)>>,
    /// Each experiment variant's churn tracker.
    churn: Mutex<ChurnTrackers>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The native runtime.
#[derive(Debug)]
pub struct NativeRuntime {
    shared: Arc<Shared>,
    sampler: Mutex<Option<JoinHandle<()>>>,
}

/// What one evaluation produced, computed on a blocking thread.
struct Output {
    key: PipelineKey,
    stats: VariantStats,
    /// An experiment variant's output series identities (for its churn tracker).
    identities: Vec<u64>,
    text: String,
    otlp: Vec<(String, Vec<u8>)>,
}

struct TickOutput {
    input: Arc<Sample>,
    /// The host pipeline's output, with its config hash.
    shipped: Option<(String, Sample)>,
    complete: bool,
    host: HostStats,
    outputs: Vec<Output>,
    /// Each experiment's queries evaluated on its two outputs.
    queries: BTreeMap<ExperimentId, SampleQueries>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receivers one sample must serve: the union over every running pipeline.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Receivers {
    process: bool,
    cpu_utilization: bool,
    /// (job, target)
    scrapes: BTreeSet<(String, String)>,
}

fn receivers_of(d: &Deployments) -> Receivers {
    let mut r = Receivers::default();
    for (_, p) in d.pipelines() {
        for rec in &p.spec.receivers {
            match rec {
                ReceiverSpec::HostmetricsProcess(h) => {
                    r.process = true;
                    r.cpu_utilization |= h.cpu_utilization;
                }
                ReceiverSpec::Prometheus(p) => {
                    for t in &p.targets {
                        r.scrapes.insert((p.job_name.clone(), t.clone()));
                    }
                }
            }
        }
    }
    r
}

impl NativeRuntime {
    /// Starts the runtime (its sampler idles until something is deployed).
    #[must_use]
    pub fn start(
        config: NativeConfig,
        probe: Arc<Mutex<HostProbe>>,
        expositions: Arc<Expositions>,
        reporter: Arc<Reporter>,
        sequences: Arc<Sequences>,
    ) -> Self {
        let started_unix_nano = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let shared = Arc::new(Shared {
            config,
            probe,
            engines: Arc::new(Mutex::new(BTreeMap::new())),
            queries: Mutex::new(BTreeMap::new()),
            desired: watch::channel(Deployments::default()).0,
            ticks: watch::channel(Tick::default()).0,
            expositions,
            reporter,
            sequences,
            http: reqwest::Client::new(),
            started_unix_nano,
            health: Mutex::new(BTreeMap::new()),
            last_input: Mutex::new(None),
            last_shipped: Mutex::new(None),
            churn: Mutex::new(ChurnTrackers::default()),
        });
        let sampler = tokio::spawn(sampler(Arc::clone(&shared)));
        Self {
            shared,
            sampler: Mutex::new(Some(sampler)),
        }
    }

    /// A subscription to interval results.
    #[must_use]
    pub fn ticks(&self) -> watch::Receiver<Tick> {
        self.shared.ticks.subscribe()
    }
}

async fn sampler(shared: Arc<Shared>) {
    let mut desired = shared.desired.subscribe();
    let mut known: BTreeSet<PipelineKey> = BTreeSet::new();
    let mut next_at: Option<Instant> = None;
    loop {
        let current = desired.borrow_and_update().clone();
        let keys: BTreeSet<PipelineKey> = current.pipelines().into_iter().map(|(k, _)| k).collect();
        let Some(interval) = current.interval() else {
            known.clear();
            next_at = None;
            if desired.changed().await.is_err() {
                return;
            }
            continue;
        };
        let added = !keys.is_subset(&known);
        known = keys;
        if !added && let Some(at) = next_at {
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Re-read: a new pipeline is sampled at once, a removal keeps the pace.
                    continue;
                }
            }
        }
        let started = Instant::now();
        match tick(&shared, &current).await {
            Ok(()) => {}
            Err(e) => tracing::warn!(error = %e, "sampling interval failed"),
        }
        next_at = Some(started + interval);
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

async fn tick(shared: &Arc<Shared>, current: &Deployments) -> Result<(), RuntimeError> {
    let receivers = receivers_of(current);
    let scraped = futures::future::join_all(receivers.scrapes.iter().map(|(job, target)| {
        let client = shared.http.clone();
        let timeout = shared.config.io_timeout;
        async move {
            (
                job.clone(),
                target.clone(),
                crate::snapshot::scrape(&client, target, timeout).await,
            )
        }
    }))
    .await;
    let mut scrape_errors = Vec::new();
    for (job, target, result) in &scraped {
        if let Err(e) = result {
            scrape_errors.push(format!("{job}/{target}: {e}"));
        }
    }
    let otlp_endpoints: BTreeMap<PipelineKey, Vec<String>> = current
        .pipelines()
        .into_iter()
        .map(|(key, p)| {
            let mut endpoints: Vec<String> = p
                .spec
                .exporters
                .iter()
                .filter_map(|e| match e {
                    ExporterSpec::OtlpHttp { endpoint } => Some(endpoint.clone()),
                    ExporterSpec::Prometheus { .. } => None,
                })
                .collect();
            endpoints.extend(shared.config.otlp_endpoint.clone());
            (key, endpoints)
        })
        .collect();
    let worker = Arc::clone(shared);
    let output = tokio::task::spawn_blocking(move || -> TickOutput {
        let timestamp = now_ms();
        let mut builder = SampleBuilder::new(timestamp);
        let (complete, host) = {
            let mut probe = lock(&worker.probe);
            let (complete, count) = if receivers.process {
                let scan = probe.scan();
                let count = Some(scan.processes.len() as u64);
                let complete = scan.has_utilization || !receivers.cpu_utilization;
                for mut p in scan.processes {
                    if !receivers.cpu_utilization {
                        p.cpu_utilization = None;
                    }
                    builder.add_process(&p);
                }
                (complete, count)
            } else {
                (true, None)
            };
            (complete, probe.host_stats(count))
        };
        for (job, target, result) in scraped {
            if let Ok(text) = result {
                let resource = builder.resource([
                    ("service.name", job.as_str()),
                    ("service.instance.id", target.as_str()),
                ]);
                if let Err(e) = parse_exposition(&text, &mut builder, resource, timestamp) {
                    tracing::warn!(%job, %target, error = %e, "scraped exposition is malformed; kept the lines before the error");
                }
            }
        }
        let input = Arc::new(builder.build());
        let mut outputs = Vec::new();
        let query_sets = lock(&worker.queries).clone();
        let mut variant_series: BTreeMap<PipelineKey, Vec<Series>> = BTreeMap::new();
        let mut shipped = None;
        let mut engines = lock(&worker.engines);
        for (key, (hash, engine)) in engines.iter_mut() {
            let before = thread_cpu_nanos();
            let evaluation = engine.evaluate(&input);
            let mut stats = evaluation.stats;
            stats.eval_nanos = thread_cpu_nanos().saturating_sub(before);
            let name = key.to_string();
            let origin = match key {
                PipelineKey::Experiment(_, v) => v.as_str(),
                PipelineKey::Host => "host",
            };
            if let PipelineKey::Experiment(id, _) = key
                && query_sets.contains_key(id)
            {
                // As the exposition names them: what a query selects when Prometheus
                // scrapes `/metrics/baseline` and `/metrics/candidate`.
                variant_series.insert(*key, series_of(&evaluation.output));
            }
            let text = exposition::render(&evaluation.output, origin);
            let otlp = otlp_endpoints
                .get(key)
                .filter(|e| !e.is_empty())
                .map(|endpoints| {
                    let body = otlp::to_bytes(&otlp::encode_request(
                        &evaluation.output,
                        &name,
                        worker.started_unix_nano,
                    ));
                    endpoints.iter().map(|e| (e.clone(), body.clone())).collect()
                })
                .unwrap_or_default();
            let identities = match key {
                PipelineKey::Experiment(..) => sample_identities(&evaluation.output),
                PipelineKey::Host => Vec::new(),
            };
            if *key == PipelineKey::Host {
                shipped = Some((hash.clone(), evaluation.output));
            }
            outputs.push(Output {
                key: *key,
                stats,
                identities,
                text,
                otlp,
            });
        }
        let queries = query_sets
            .iter()
            .filter_map(|(id, set)| {
                let baseline = variant_series.get(&PipelineKey::Experiment(*id, Variant::Baseline))?;
                let candidate =
                    variant_series.get(&PipelineKey::Experiment(*id, Variant::Candidate))?;
                Some((*id, set.evaluate(baseline, candidate)))
            })
            .collect();
        TickOutput {
            input,
            shipped,
            complete,
            host,
            outputs,
            queries,
        }
    })
    .await
    .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;

    let desired_now = shared.desired.borrow().clone();
    let mut queries = output.queries;
    let mut produced = BTreeSet::new();
    let mut stats: BTreeMap<PipelineKey, VariantStats> = BTreeMap::new();
    let taken_at = Utc::now();
    {
        let mut health = lock(&shared.health);
        let mut churn = lock(&shared.churn);
        churn.retain(|id| desired_now.experiments.contains_key(&id));
        for mut out in output.outputs {
            if desired_now.get(out.key).is_none() {
                continue;
            }
            // Every served output counts, reported or not: the vendor would bill it.
            if let PipelineKey::Experiment(id, variant) = out.key {
                churn.record(id, variant, taken_at, &out.identities, &mut out.stats);
            }
            shared.expositions.publish(out.key, out.text);
            produced.insert(out.key);
            let detail = (!scrape_errors.is_empty()).then(|| scrape_errors.join("; "));
            health.insert(
                out.key,
                (
                    if detail.is_some() {
                        PipelineHealth::Unhealthy
                    } else {
                        PipelineHealth::Healthy
                    },
                    detail,
                ),
            );
            for (endpoint, body) in out.otlp {
                let client = shared.http.clone();
                let timeout = shared.config.io_timeout;
                let key = out.key;
                let worker = Arc::clone(shared);
                tokio::spawn(async move {
                    if let Err(e) = otlp::export(&client, &endpoint, body, timeout).await {
                        tracing::warn!(pipeline = %key, %endpoint, error = %e, "OTLP export failed");
                        lock(&worker.health).insert(
                            key,
                            (
                                PipelineHealth::Unhealthy,
                                Some(format!("OTLP export to {endpoint} failed: {e}")),
                            ),
                        );
                    }
                });
            }
            stats.insert(out.key, out.stats);
        }
    }
    // A scan without CPU utilisation (the first one: utilisation is a difference between
    // two scans) is served but not reported: a candidate ranking processes by CPU has no
    // input then and keeps them all, which would measure the scan, not the pipeline.
    let reportable = if output.complete {
        &desired_now.experiments
    } else {
        tracing::debug!("first scan has no CPU utilisation yet: sample served, not reported");
        &BTreeMap::new()
    };
    for (id, deployment) in reportable {
        let baseline = stats.remove(&PipelineKey::Experiment(*id, Variant::Baseline));
        let candidate = stats.remove(&PipelineKey::Experiment(*id, Variant::Candidate));
        let (Some(baseline), Some(candidate)) = (baseline, candidate) else {
            continue;
        };
        let seq = match shared.sequences.next(*id) {
            Ok(seq) => seq,
            Err(e) => {
                tracing::error!(error = %e, "cannot reserve measurement sequence numbers; sample not reported");
                continue;
            }
        };
        shared.reporter.push(MeasurementSample {
            experiment_id: *id,
            agent_id: shared.config.agent_id,
            seq,
            taken_at,
            interval_secs: deployment.sample_interval_secs.max(1),
            baseline,
            candidate,
            host: output.host.clone(),
            queries: queries.remove(id),
        });
    }
    *lock(&shared.last_input) = Some(output.input);
    if let Some((hash, sample)) = output.shipped
        && desired_now
            .host
            .as_ref()
            .is_some_and(|h| h.pipeline.config_hash == hash)
    {
        *lock(&shared.last_shipped) = Some((hash, Arc::new(sample)));
    }
    shared.ticks.send_modify(|t| {
        t.seq += 1;
        t.complete = output.complete;
        t.produced = produced;
    });
    Ok(())
}

#[async_trait]
impl PipelineRuntime for NativeRuntime {
    fn name(&self) -> &'static str {
        "native"
    }

    async fn apply(&self, desired: &Deployments) -> Result<(), RuntimeError> {
        for (key, pipeline) in desired.pipelines() {
            if pipeline.spec.receivers.is_empty() {
                return Err(RuntimeError::Unsupported(format!(
                    "pipeline {key} (template `{}`) has no receiver",
                    pipeline.template
                )));
            }
        }
        let keys: Vec<PipelineKey> = desired.pipelines().into_iter().map(|(k, _)| k).collect();
        {
            let mut engines = lock(&self.shared.engines);
            engines.retain(|k, (hash, _)| desired.get(*k).is_some_and(|p| &p.config_hash == hash));
            for (key, pipeline) in desired.pipelines() {
                if engines.contains_key(&key) {
                    continue;
                }
                let engine = match key {
                    PipelineKey::Experiment(id, _) => {
                        let d = &desired.experiments[&id];
                        Engine::with_critical(
                            pipeline.spec.clone(),
                            &d.critical_processes,
                            &d.critical_metrics,
                        )
                    }
                    PipelineKey::Host => Engine::new(pipeline.spec.clone()),
                };
                engines.insert(key, (pipeline.config_hash.clone(), engine));
            }
            let mut queries = lock(&self.shared.queries);
            queries.retain(|id, _| {
                desired
                    .experiments
                    .get(id)
                    .is_some_and(|d| !d.queries.is_empty())
            });
            for (id, d) in &desired.experiments {
                if !d.queries.is_empty() && !queries.contains_key(id) {
                    queries.insert(*id, Arc::new(QuerySet::new(&d.queries)));
                }
            }
            drop(queries);
            let mut health = lock(&self.shared.health);
            health.retain(|k, _| keys.contains(k));
            for k in &keys {
                health.entry(*k).or_insert((PipelineHealth::Starting, None));
            }
        }
        self.shared
            .expositions
            .retain(&keys, desired.latest_experiment());
        // A removed or replaced host pipeline's output is no longer what the host ships.
        lock(&self.shared.last_shipped).take_if(|(hash, _)| {
            desired
                .host
                .as_ref()
                .is_none_or(|h| &h.pipeline.config_hash != hash)
        });
        self.shared.desired.send_replace(desired.clone());
        Ok(())
    }

    async fn confirm_serving(
        &self,
        keys: &[PipelineKey],
        complete: bool,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let mut ticks = self.shared.ticks.subscribe();
        let start = ticks.borrow_and_update().seq;
        let wait = async {
            loop {
                if ticks.changed().await.is_err() {
                    return Err(RuntimeError::ShuttingDown);
                }
                let t = ticks.borrow_and_update();
                if t.seq > start
                    && (!complete || t.complete)
                    && keys.iter().all(|k| t.produced.contains(k))
                {
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(RuntimeError::Unhealthy(format!(
                    "no output from {} within {timeout:?}",
                    keys.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            })
    }

    fn active(&self) -> Vec<ActivePipeline> {
        let health = lock(&self.shared.health).clone();
        self.shared.desired.borrow().active(|key| {
            health
                .get(&key)
                .cloned()
                .unwrap_or((PipelineHealth::Starting, None))
        })
    }

    async fn snapshot(&self) -> Result<Vec<SnapshotSeries>, RuntimeError> {
        let last = lock(&self.shared.last_input).clone();
        let probe = Arc::clone(&self.shared.probe);
        tokio::task::spawn_blocking(move || match last {
            Some(sample) => sample.snapshot_series(),
            None => {
                let scan = lock(&probe).scan();
                Sample::from_processes(now_ms(), &scan.processes).snapshot_series()
            }
        })
        .await
        .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))
    }

    async fn shipped(&self) -> Result<Option<Vec<SnapshotSeries>>, RuntimeError> {
        let current = self
            .shared
            .desired
            .borrow()
            .host
            .as_ref()
            .map(|h| h.pipeline.config_hash.clone());
        let last = lock(&self.shared.last_shipped)
            .clone()
            .filter(|(hash, _)| current.as_ref() == Some(hash));
        let Some((_, sample)) = last else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || Some(sample.snapshot_series()))
            .await
            .map_err(|e| RuntimeError::Io(std::io::Error::other(e)))
    }

    async fn shutdown(&self) {
        self.shared.expositions.retain(&[], None);
        self.shared.desired.send_replace(Deployments::default());
        if let Some(handle) = lock(&self.sampler).take() {
            handle.abort();
        }
    }
}
