//! Projections by the native pipeline engine: each host's snapshot is turned back into an
//! engine [`Sample`] and a pipeline is evaluated on it, so a recommendation's projected
//! series are what the `drop_labels` / `aggregate_by` stages would really emit.
//!
//! A snapshot carries no values, so only stages that do not rank by value can be projected
//! this way (`filter`, `drop_labels`, `aggregate_by`, `keep_critical`, `batch`,
//! `memory_limit`); `topk`, `threshold` and `aggregate_other` need the agents' live samples.

use chrono::{DateTime, Utc};

use super::table::SeriesTable;
use crate::pipeline::sample::MetricKind;
use crate::pipeline::{Engine, PipelineSpec, Sample, SampleBuilder, Stage};

/// Label key prefixes treated as resource attributes when a snapshot (where resource and
/// point attributes are merged) is turned back into a sample: the OpenTelemetry resource
/// semantic-convention namespaces. Every other label is a point attribute.
pub const RESOURCE_PREFIXES: [&str; 9] = [
    "process.",
    "host.",
    "service.",
    "k8s.",
    "container.",
    "os.",
    "cloud.",
    "deployment.",
    "telemetry.",
];

/// True when `key` is a resource attribute under [`RESOURCE_PREFIXES`].
#[must_use]
pub fn is_resource_key(key: &str) -> bool {
    RESOURCE_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Why a pipeline cannot be projected from snapshots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    /// The pipeline has a stage that ranks by value, which a snapshot does not carry.
    #[error("stage `{stage}` ranks series by value, which a cardinality snapshot does not carry")]
    NeedsValues {
        /// The stage's kind.
        stage: &'static str,
    },
}

/// What a pipeline would emit for the analysed hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct EngineProjection {
    pub(crate) series: u64,
    /// Millionths of points per minute.
    pub(crate) micro_ppm: u64,
    /// Encoded bytes per month, measured by encoding the engine's output.
    pub(crate) bytes_per_month: u64,
}

/// Checks that `spec` can be evaluated on value-less snapshots.
pub fn check_projectable(spec: &PipelineSpec) -> Result<(), ProjectionError> {
    for stage in &spec.stages {
        if matches!(
            stage,
            Stage::TopK(_) | Stage::Threshold(_) | Stage::AggregateOther(_)
        ) {
            return Err(ProjectionError::NeedsValues {
                stage: stage.kind(),
            });
        }
    }
    Ok(())
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl SeriesTable {
    /// One engine sample per host, values 0.
    pub(crate) fn host_samples(&self) -> Vec<Sample> {
        let mut builders: Vec<SampleBuilder> = self
            .hosts
            .iter()
            .map(|h| SampleBuilder::new(millis(h.taken_at)))
            .collect();
        let mut resource: Vec<(&str, &str)> = Vec::new();
        let mut point: Vec<(&str, &str)> = Vec::new();
        for (m, &(start, end)) in self.metric_ranges.iter().enumerate() {
            let metric = self.metrics.resolve(m as u32);
            for i in start as usize..end as usize {
                resource.clear();
                point.clear();
                for l in self.series_labels(i) {
                    let key = self.keys.resolve(l.key);
                    let value = self.values[l.key as usize].resolve(l.value);
                    if is_resource_key(key) {
                        resource.push((key, value));
                    } else {
                        point.push((key, value));
                    }
                }
                let builder = &mut builders[self.series_host[i] as usize];
                let id = builder.resource(resource.iter().copied());
                builder.push(id, metric, MetricKind::Gauge, point.iter().copied(), 0.0);
            }
        }
        builders.into_iter().map(SampleBuilder::build).collect()
    }

    /// Evaluates `spec` on every host's sample and sums what it emits. Points per minute and
    /// bytes scale with the host's points per series in the snapshot.
    pub(crate) fn project_with_engine(
        &self,
        samples: &[Sample],
        spec: &PipelineSpec,
    ) -> Result<EngineProjection, ProjectionError> {
        check_projectable(spec)?;
        let mut host_series = vec![0_u64; self.hosts.len()];
        let mut host_points = vec![0_u64; self.hosts.len()];
        for (i, &h) in self.series_host.iter().enumerate() {
            host_series[h as usize] += 1;
            host_points[h as usize] += self.series_points[i];
        }
        let mut total = EngineProjection::default();
        for (h, sample) in samples.iter().enumerate() {
            let evaluation = Engine::new(spec.clone()).evaluate(sample);
            let out = evaluation.stats.series;
            let interval = u128::from(self.hosts[h].interval_secs.max(1));
            let in_series = u128::from(host_series[h].max(1));
            let points = u128::from(host_points[h]);
            // Output points per interval: output series x the host's points per series.
            let out_points = u128::from(out) * points / in_series;
            total.series += out;
            total.micro_ppm = total.micro_ppm.saturating_add(
                u64::try_from(out_points * 60_000_000 / interval).unwrap_or(u64::MAX),
            );
            // The engine encodes one point per series; scale to the points sent per month.
            let bytes_per_interval = u128::from(evaluation.stats.bytes) * points / in_series.max(1);
            total.bytes_per_month = total.bytes_per_month.saturating_add(
                u64::try_from(
                    bytes_per_interval * u128::from(crate::cost::SECONDS_PER_MONTH) / interval,
                )
                .unwrap_or(u64::MAX),
            );
        }
        Ok(total)
    }
}
