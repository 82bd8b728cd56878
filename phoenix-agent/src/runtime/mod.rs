//! Pipeline runtimes: what runs the deployed pipelines on the host.
//!
//! The task executor decides *what* should run (a [`Deployments`] value: each experiment's
//! baseline and candidate, and the host's own pipeline after a promotion or a quick
//! deploy); a runtime makes it run and says whether it serves:
//! - [`native::NativeRuntime`] (default) evaluates the pipelines with the core engine on one
//!   sample per interval and serves them on the agent's listener;
//! - [`otelcol::OtelcolRuntime`] writes one Collector config and supervises the binary.

pub mod native;
pub mod otelcol;
pub mod tap;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::agent::{ActivePipeline, PipelineHealth};
use phoenix_core::ids::{DeploymentId, ExperimentId};
use phoenix_core::measure::Variant;
use phoenix_core::pipeline::RenderedPipeline;
use phoenix_core::queries::ExperimentQuery;
use serde::{Deserialize, Serialize};

/// Both pipelines of an experiment on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDeployment {
    /// The operation (experiment event) that deployed it.
    pub op_seq: u64,
    /// The baseline.
    pub baseline: RenderedPipeline,
    /// The candidate; `None` once rolled back.
    pub candidate: Option<RenderedPipeline>,
    /// Sample both every this many seconds.
    pub sample_interval_secs: u32,
    /// Processes that must stay visible.
    #[serde(default)]
    pub critical_processes: Vec<String>,
    /// Metric patterns that must stay visible.
    #[serde(default)]
    pub critical_metrics: Vec<String>,
    /// Both variants in one Collector config (what the otelcol runtime runs while the
    /// candidate is deployed); empty from a server that does not send it.
    #[serde(default)]
    pub collector_yaml: String,
    /// The experiment's frozen queries, evaluated on both outputs of every sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<ExperimentQuery>,
}

/// The host's own pipeline, outside any running experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPipeline {
    /// The pipeline.
    pub pipeline: RenderedPipeline,
    /// The experiment that promoted it, if any.
    pub experiment_id: Option<ExperimentId>,
    /// The quick deployment that installed it, if any.
    pub deployment_id: Option<DeploymentId>,
}

/// Everything that should run on this host.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Deployments {
    /// Running experiments.
    #[serde(default)]
    pub experiments: BTreeMap<ExperimentId, ExperimentDeployment>,
    /// The host's own pipeline.
    #[serde(default)]
    pub host: Option<HostPipeline>,
}

/// One pipeline of a [`Deployments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PipelineKey {
    /// A variant of an experiment.
    Experiment(ExperimentId, Variant),
    /// The host's own pipeline.
    Host,
}

impl fmt::Display for PipelineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Experiment(id, variant) => write!(f, "experiment/{id}/{variant}"),
            Self::Host => f.write_str("host"),
        }
    }
}

impl Deployments {
    /// True when nothing should run.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.experiments.is_empty() && self.host.is_none()
    }

    /// Every pipeline with its key.
    #[must_use]
    pub fn pipelines(&self) -> Vec<(PipelineKey, &RenderedPipeline)> {
        let mut out = Vec::new();
        for (id, d) in &self.experiments {
            out.push((PipelineKey::Experiment(*id, Variant::Baseline), &d.baseline));
            if let Some(c) = &d.candidate {
                out.push((PipelineKey::Experiment(*id, Variant::Candidate), c));
            }
        }
        if let Some(h) = &self.host {
            out.push((PipelineKey::Host, &h.pipeline));
        }
        out
    }

    /// The pipeline at `key`.
    #[must_use]
    pub fn get(&self, key: PipelineKey) -> Option<&RenderedPipeline> {
        match key {
            PipelineKey::Experiment(id, Variant::Baseline) => {
                self.experiments.get(&id).map(|d| &d.baseline)
            }
            PipelineKey::Experiment(id, Variant::Candidate) => {
                self.experiments.get(&id).and_then(|d| d.candidate.as_ref())
            }
            PipelineKey::Host => self.host.as_ref().map(|h| &h.pipeline),
        }
    }

    /// The most recently started experiment (ids are time-ordered UUID v7).
    #[must_use]
    pub fn latest_experiment(&self) -> Option<ExperimentId> {
        self.experiments.keys().next_back().copied()
    }

    /// The shortest sampling interval wanted, if anything runs.
    #[must_use]
    pub fn interval(&self) -> Option<Duration> {
        let experiments = self.experiments.values().map(|d| d.sample_interval_secs);
        let host = self.host.iter().flat_map(|h| {
            h.pipeline.spec.receivers.iter().map(|r| match r {
                phoenix_core::pipeline::spec::ReceiverSpec::HostmetricsProcess(p) => {
                    p.collection_interval_secs
                }
                phoenix_core::pipeline::spec::ReceiverSpec::Prometheus(p) => p.scrape_interval_secs,
            })
        });
        experiments
            .chain(host)
            .filter(|s| *s > 0)
            .min()
            .or_else(|| (!self.is_empty()).then_some(10))
            .map(|s| Duration::from_secs(u64::from(s)))
    }

    /// The pipelines as a heartbeat reports them, each with `health`.
    #[must_use]
    pub fn active(
        &self,
        health: impl Fn(PipelineKey) -> (PipelineHealth, Option<String>),
    ) -> Vec<ActivePipeline> {
        self.pipelines()
            .into_iter()
            .map(|(key, p)| {
                let (health, detail) = health(key);
                ActivePipeline {
                    name: key.to_string(),
                    experiment_id: match key {
                        PipelineKey::Experiment(id, _) => Some(id),
                        PipelineKey::Host => self.host.as_ref().and_then(|h| h.experiment_id),
                    },
                    template: p.template.clone(),
                    config_hash: p.config_hash.clone(),
                    health,
                    detail,
                }
            })
            .collect()
    }
}

/// Why a runtime could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The pipelines cannot run here (bad spec for this runtime, missing binary...):
    /// retrying the same task cannot help.
    #[error("pipeline cannot run on this host: {0}")]
    Unsupported(String),
    /// Did not become healthy or serve in time; the previous configuration was restored.
    #[error("pipeline did not become healthy: {0}")]
    Unhealthy(String),
    /// The runtime is shutting down.
    #[error("runtime is shutting down")]
    ShuttingDown,
    /// An IO failure.
    #[error("runtime IO failed")]
    Io(#[source] std::io::Error),
}

impl RuntimeError {
    /// True when trying the same task again may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Unsupported(_))
    }
}

/// A pipeline runtime. Calls that change what runs are serialized by the caller.
#[async_trait]
pub trait PipelineRuntime: Send + Sync + 'static {
    /// `native` or `otelcol` (reported as a capability).
    fn name(&self) -> &'static str;

    /// Makes `desired` the set of running pipelines. Unchanged pipelines keep running
    /// undisturbed (and keep their state); removed ones stop serving before this returns.
    async fn apply(&self, desired: &Deployments) -> Result<(), RuntimeError>;

    /// Waits until every pipeline in `keys` has produced output from a sample taken after
    /// this call, and (with `complete`) a sample with every metric available (CPU
    /// utilisation needs two scrapes).
    async fn confirm_serving(
        &self,
        keys: &[PipelineKey],
        complete: bool,
        timeout: Duration,
    ) -> Result<(), RuntimeError>;

    /// The running pipelines with their health.
    fn active(&self) -> Vec<ActivePipeline>;

    /// Takes a sample of the host now and returns its cardinality snapshot series.
    async fn snapshot(&self) -> Result<Vec<phoenix_core::measure::SnapshotSeries>, RuntimeError>;

    /// The series the host's own pipeline (promoted or quick-deployed) last shipped, its
    /// output; `None` while no host pipeline runs or before it produced output.
    async fn shipped(
        &self,
    ) -> Result<Option<Vec<phoenix_core::measure::SnapshotSeries>>, RuntimeError>;

    /// Stops every pipeline.
    async fn shutdown(&self);
}

/// Each experiment variant's churn tracker: the vendors' activity windows over the series
/// identities of the variant's actual output, sample after sample. Every reported
/// sample's `active_series` and `hour_distinct_series` come from here (both runtimes).
#[derive(Debug, Default)]
pub(crate) struct ChurnTrackers {
    trackers: BTreeMap<(ExperimentId, Variant), phoenix_core::cost::churn::ChurnTracker>,
}

impl ChurnTrackers {
    /// Records the output series `identities` of `variant` of experiment `id` at `at`,
    /// and fills the variant's churn figures in `stats`.
    pub(crate) fn record(
        &mut self,
        id: ExperimentId,
        variant: Variant,
        at: chrono::DateTime<chrono::Utc>,
        identities: &[u64],
        stats: &mut phoenix_core::measure::VariantStats,
    ) {
        let tracker = self.trackers.entry((id, variant)).or_default();
        let untracked = tracker.untracked();
        let f = tracker.observe(at, identities.iter().copied());
        if untracked == 0 && tracker.untracked() > 0 {
            tracing::warn!(
                experiment = %id,
                variant = variant.as_str(),
                cap = phoenix_core::cost::churn::MAX_TRACKED_SERIES,
                "more series than the churn tracker remembers: active and hourly distinct series are lower bounds from now on"
            );
        }
        // Identities merge resource and point attributes, as a vendor names a series, so
        // two series of one output can share one (the same label set under different
        // resources): the distinct count can fall below the sample's series. The
        // interval's own series are active and seen in its hour, which is the floor the
        // server holds every report to (`inputs::variant_stats`); a report under it would
        // be refused whole, and the sample lost.
        stats.active_series = Some(f.active.max(stats.series));
        stats.hour_distinct_series = Some(f.hour_distinct.max(stats.series));
    }

    /// Forgets the trackers of experiments `keep` refuses.
    pub(crate) fn retain(&mut self, keep: impl Fn(ExperimentId) -> bool) {
        self.trackers.retain(|(id, _), _| keep(*id));
    }
}
