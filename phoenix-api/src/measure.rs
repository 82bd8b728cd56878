//! What agents measure and report.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Host-level figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct HostStats {
    /// Host CPU utilisation, percent of all cores.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub cpu_pct: f64,
    /// Used memory, bytes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub memory_used_bytes: u64,
    /// Total memory, bytes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub memory_total_bytes: u64,
    /// Processes on the host.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub process_count: u64,
    /// The agent's own CPU, percent of one core.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub agent_cpu_pct: f64,
    /// The agent's own resident set size, bytes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub agent_rss_bytes: u64,
}

impl From<core::HostStats> for HostStats {
    fn from(h: core::HostStats) -> Self {
        Self {
            cpu_pct: h.cpu_pct,
            memory_used_bytes: h.memory_used_bytes,
            memory_total_bytes: h.memory_total_bytes,
            process_count: h.process_count,
            agent_cpu_pct: h.agent_cpu_pct,
            agent_rss_bytes: h.agent_rss_bytes,
        }
    }
}

impl From<HostStats> for core::HostStats {
    fn from(h: HostStats) -> Self {
        Self {
            cpu_pct: h.cpu_pct,
            memory_used_bytes: h.memory_used_bytes,
            memory_total_bytes: h.memory_total_bytes,
            process_count: h.process_count,
            agent_cpu_pct: h.agent_cpu_pct,
            agent_rss_bytes: h.agent_rss_bytes,
        }
    }
}

/// Distinct values of one label key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct LabelCardinality {
    /// Label key.
    pub key: String,
    /// Distinct values.
    pub distinct_values: u64,
}

/// Share of host CPU and memory carried by the kept series, percent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(
    feature = "openapi",
    oai(deny_unknown_fields, skip_serializing_if_is_none)
)]
pub struct Fidelity {
    /// Percent of process CPU carried; absent when the input had no process CPU series
    /// (not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// Percent of process memory carried; absent when the input had no process memory
    /// series (not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pct: Option<f64>,
}

/// Critical processes and patterns present in a variant's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct CriticalCoverage {
    /// Present in the input.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub expected: Vec<String>,
    /// Still present in the output.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub present: Vec<String>,
    /// Missing from the output.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub missing: Vec<String>,
}

/// What one variant produced from one sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct VariantStats {
    /// Distinct output series.
    pub series: u64,
    /// Output data points.
    pub points: u64,
    /// Encoded output bytes.
    pub bytes: u64,
    /// Series per metric name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub series_by_metric: BTreeMap<String, u64>,
    /// Label keys with the most distinct values.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub top_labels: Vec<LabelCardinality>,
    /// Resource share carried.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub fidelity: Fidelity,
    /// Critical coverage.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical: CriticalCoverage,
    /// CPU time spent evaluating this variant, nanoseconds.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub eval_nanos: u64,
    /// Series with a data point in the last 20 minutes of this variant's output, at the
    /// sample's time, this interval's included (Grafana Cloud's active series). At least
    /// `series`, at most `series` plus the agent's tracking cap. Absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_series: Option<u64>,
    /// Distinct series of this variant's output so far in the sample's clock hour (UTC),
    /// this interval's included (Datadog's and CloudWatch's hourly count). Same bounds.
    /// Absent from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour_distinct_series: Option<u64>,
}

impl From<core::VariantStats> for VariantStats {
    fn from(v: core::VariantStats) -> Self {
        Self {
            series: v.series,
            points: v.points,
            bytes: v.bytes,
            series_by_metric: v.series_by_metric,
            top_labels: v
                .top_labels
                .into_iter()
                .map(|l| LabelCardinality {
                    key: l.key,
                    distinct_values: l.distinct_values,
                })
                .collect(),
            fidelity: Fidelity {
                cpu_pct: v.fidelity.cpu_pct,
                memory_pct: v.fidelity.memory_pct,
            },
            critical: CriticalCoverage {
                expected: v.critical.expected,
                present: v.critical.present,
                missing: v.critical.missing,
            },
            eval_nanos: v.eval_nanos,
            active_series: v.active_series,
            hour_distinct_series: v.hour_distinct_series,
        }
    }
}

impl From<VariantStats> for core::VariantStats {
    fn from(v: VariantStats) -> Self {
        Self {
            series: v.series,
            points: v.points,
            bytes: v.bytes,
            series_by_metric: v.series_by_metric,
            top_labels: v
                .top_labels
                .into_iter()
                .map(|l| core::LabelCardinality {
                    key: l.key,
                    distinct_values: l.distinct_values,
                })
                .collect(),
            fidelity: core::Fidelity {
                cpu_pct: v.fidelity.cpu_pct,
                memory_pct: v.fidelity.memory_pct,
            },
            critical: core::CriticalCoverage {
                expected: v.critical.expected,
                present: v.critical.present,
                missing: v.critical.missing,
            },
            eval_nanos: v.eval_nanos,
            active_series: v.active_series,
            hour_distinct_series: v.hour_distinct_series,
        }
    }
}

/// One interval's measurement of both variants on the same input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct MeasurementSample {
    /// The experiment measured (it must target the reporting agent).
    pub experiment_id: Uuid,
    /// The reporting agent's own id.
    pub agent_id: Uuid,
    /// Per (experiment, agent) sequence number from 1; a repeated one is a duplicate.
    pub seq: u64,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
    /// Baseline output.
    pub baseline: VariantStats,
    /// Candidate output.
    pub candidate: VariantStats,
    /// Host figures.
    pub host: HostStats,
    /// The experiment's queries evaluated on both outputs; only for an experiment with
    /// queries (`Experiment.queries`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub queries: Option<crate::query::SampleQueries>,
}

impl From<core::MeasurementSample> for MeasurementSample {
    fn from(s: core::MeasurementSample) -> Self {
        Self {
            experiment_id: s.experiment_id.0,
            agent_id: s.agent_id.0,
            seq: s.seq,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            baseline: s.baseline.into(),
            candidate: s.candidate.into(),
            host: s.host.into(),
            queries: s.queries.map(Into::into),
        }
    }
}

impl From<MeasurementSample> for core::MeasurementSample {
    fn from(s: MeasurementSample) -> Self {
        Self {
            experiment_id: ExperimentId(s.experiment_id),
            agent_id: AgentId(s.agent_id),
            seq: s.seq,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            baseline: s.baseline.into(),
            candidate: s.candidate.into(),
            host: s.host.into(),
            queries: s.queries.map(Into::into),
        }
    }
}

/// One series of a cardinality snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct SnapshotSeries {
    /// Metric name.
    pub metric: String,
    /// Labels (resource and point attributes merged).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub labels: BTreeMap<String, String>,
    /// Data points in the interval.
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", oai(default = "one"))]
    pub points: u64,
    /// The series' value when the snapshot was taken (absent from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub value: Option<f64>,
}

fn one() -> u64 {
    1
}

mirror_enum! {
    /// What a snapshot describes; the server keeps one current snapshot per agent and
    /// source.
    SnapshotSource => core::SnapshotSource {
        /// The host's raw input: every series before any pipeline reduces it.
        Input,
        /// The output of the pipeline deployed or promoted on the host: what it ships.
        Shipped,
    }
}

impl Default for SnapshotSource {
    fn default() -> Self {
        core::SnapshotSource::default().into()
    }
}

/// Every series a host emits before reduction (its input), or what its deployed pipeline
/// ships (its output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct CardinalitySnapshot {
    /// The reporting agent's own id.
    pub agent_id: Uuid,
    /// What it describes (default: the input).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub source: SnapshotSource,
    /// Host name.
    pub host: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
    /// The series.
    pub series: Vec<SnapshotSeries>,
}

impl From<core::CardinalitySnapshot> for CardinalitySnapshot {
    fn from(s: core::CardinalitySnapshot) -> Self {
        Self {
            agent_id: s.agent_id.0,
            source: s.source.into(),
            host: s.host,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            series: s
                .series
                .into_iter()
                .map(|x| SnapshotSeries {
                    metric: x.metric,
                    labels: x.labels,
                    points: x.points,
                    value: x.value,
                })
                .collect(),
        }
    }
}

impl From<CardinalitySnapshot> for core::CardinalitySnapshot {
    fn from(s: CardinalitySnapshot) -> Self {
        Self {
            agent_id: AgentId(s.agent_id),
            source: s.source.into(),
            host: s.host,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            series: s
                .series
                .into_iter()
                .map(|x| core::SnapshotSeries {
                    metric: x.metric,
                    labels: x.labels,
                    points: x.points,
                    value: x.value,
                })
                .collect(),
        }
    }
}

/// A cardinality snapshot with every string once, the form agents send: series `i` is
/// the metric `strings[metrics[i]]` with labels `strings[labels[i][0]]` =
/// `strings[labels[i][1]]`, and so on, `points[i]` points in the interval and value
/// `values[i]`. Canonical: one entry per series in `metrics`, `labels`, `points` and
/// `values`; each series' label keys distinct and ascending; every string used and listed
/// once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct PackedSnapshot {
    /// The reporting agent's own id.
    pub agent_id: Uuid,
    /// What it describes (default: the input).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub source: SnapshotSource,
    /// Host name.
    pub host: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
    /// Every metric name, label key and label value of the series, each once.
    pub strings: Vec<String>,
    /// Per series: its metric name, an index into `strings`.
    pub metrics: Vec<u32>,
    /// Per series: its labels as indexes into `strings`, key then value, keys ascending.
    pub labels: Vec<Vec<u32>>,
    /// Per series: data points in the interval.
    pub points: Vec<u64>,
    /// Per series: its value when the snapshot was taken, or null.
    pub values: Vec<Option<f64>>,
}

impl From<core::PackedSnapshot> for PackedSnapshot {
    fn from(s: core::PackedSnapshot) -> Self {
        Self {
            agent_id: s.agent_id.0,
            source: s.source.into(),
            host: s.host,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            strings: s.strings,
            metrics: s.metrics,
            labels: s.labels,
            points: s.points,
            values: s.values,
        }
    }
}

impl From<PackedSnapshot> for core::PackedSnapshot {
    fn from(s: PackedSnapshot) -> Self {
        Self {
            agent_id: AgentId(s.agent_id),
            source: s.source.into(),
            host: s.host,
            taken_at: s.taken_at,
            interval_secs: s.interval_secs,
            strings: s.strings,
            metrics: s.metrics,
            labels: s.labels,
            points: s.points,
            values: s.values,
        }
    }
}

/// Body of `POST /agent/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct MetricsReport {
    /// Per-variant measurements of running experiments.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub samples: Vec<MeasurementSample>,
    /// The host's latest cardinality snapshot, spelled out (agents before packing send
    /// this; at most one of `snapshot` and `packed_snapshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub snapshot: Option<CardinalitySnapshot>,
    /// The host's latest cardinality snapshot, packed: what agents send (a host's strings
    /// once, about a fifth of the bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub packed_snapshot: Option<PackedSnapshot>,
}

/// The answer to a metrics report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct MetricsReceipt {
    /// New samples stored.
    pub inserted: u64,
    /// Samples already stored (a retried report), ignored.
    pub duplicates: u64,
    /// Whether a snapshot was stored.
    pub snapshot_stored: bool,
}
