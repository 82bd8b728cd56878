//! What agents measure and report: per-variant statistics of one evaluation interval, host
//! figures, and host cardinality snapshots. Produced by the pipeline engine on agents,
//! stored by the [`MetricStore`](crate::store::MetricStore), consumed by KPIs and the cost model.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, ExperimentId};

mod packed;
pub use packed::{PackedSeries, PackedSnapshot};

/// One of the two pipelines an experiment compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The pipeline in use today.
    Baseline,
    /// The cheaper pipeline under test.
    Candidate,
}

impl Variant {
    /// Both variants, baseline first.
    pub const ALL: [Variant; 2] = [Variant::Baseline, Variant::Candidate];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Candidate => "candidate",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Variant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "baseline" => Ok(Self::Baseline),
            "candidate" => Ok(Self::Candidate),
            other => Err(format!(
                "unknown variant `{other}` (expected baseline or candidate)"
            )),
        }
    }
}

/// Distinct values of one label key in a variant's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCardinality {
    /// The label (attribute) key.
    pub key: String,
    /// How many distinct values it had.
    pub distinct_values: u64,
}

/// Share of the host's resource usage carried by the series a variant keeps, in percent
/// (0 to 100). A top-K that hides the hottest process scores low; `aggregate_other` keeps
/// totals, so it scores 100 on totals even though entities are merged.
///
/// A share is `None` (**not measured**) when the input has no series of its metric on a
/// process resource: nothing was there to keep or lose, and 100 % would be a figure
/// without a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Fidelity {
    /// Percent of total process CPU carried by kept series; `None` when the input had no
    /// process CPU series.
    #[serde(default)]
    pub cpu_pct: Option<f64>,
    /// Percent of total process memory carried by kept series; `None` when the input had
    /// no process memory series.
    #[serde(default)]
    pub memory_pct: Option<f64>,
}

impl Fidelity {
    /// The lower of the measured shares; `None` when neither was measured.
    #[must_use]
    pub fn lower(&self) -> Option<f64> {
        match (self.cpu_pct, self.memory_pct) {
            (Some(c), Some(m)) => Some(c.min(m)),
            (one, other) => one.or(other),
        }
    }
}

/// Which critical processes and metric patterns the variant's output still contains.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CriticalCoverage {
    /// Critical processes / patterns that were present in the input.
    pub expected: Vec<String>,
    /// Those still present in the output.
    pub present: Vec<String>,
    /// Those missing from the output.
    pub missing: Vec<String>,
}

impl CriticalCoverage {
    /// Coverage in percent; 100 when nothing critical was expected.
    #[must_use]
    pub fn percent(&self) -> f64 {
        if self.expected.is_empty() {
            100.0
        } else {
            #[allow(clippy::cast_precision_loss, reason = "counts are tiny")]
            {
                self.present.len() as f64 * 100.0 / self.expected.len() as f64
            }
        }
    }
}

/// What one variant produced from one sample.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VariantStats {
    /// Distinct series in the output (exact).
    pub series: u64,
    /// Data points in the output.
    pub points: u64,
    /// Encoded size of the output in bytes (measured by encoding it, not estimated).
    pub bytes: u64,
    /// Output series per metric name.
    #[serde(default)]
    pub series_by_metric: BTreeMap<String, u64>,
    /// Label keys with the most distinct values, highest first.
    #[serde(default)]
    pub top_labels: Vec<LabelCardinality>,
    /// Resource share carried.
    #[serde(default)]
    pub fidelity: Fidelity,
    /// Critical coverage.
    #[serde(default)]
    pub critical: CriticalCoverage,
    /// CPU time the agent spent evaluating this variant, in nanoseconds.
    #[serde(default)]
    pub eval_nanos: u64,
    /// Series active at the sample's time under Grafana Cloud's rule: a data point in the
    /// last 20 minutes of this variant's output, this interval's series included
    /// ([`crate::cost::churn::ChurnTracker`]). `None` from agents that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_series: Option<u64>,
    /// Distinct series of this variant's output so far in the sample's clock hour (UTC),
    /// this interval's included: Datadog's and CloudWatch's hourly count. `None` from
    /// agents that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour_distinct_series: Option<u64>,
}

/// Host-level figures taken with the sample.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HostStats {
    /// Host CPU utilisation, percent of all cores.
    pub cpu_pct: f64,
    /// Used memory in bytes.
    pub memory_used_bytes: u64,
    /// Total memory in bytes.
    pub memory_total_bytes: u64,
    /// Number of processes on the host.
    pub process_count: u64,
    /// The agent's own CPU, percent of one core.
    pub agent_cpu_pct: f64,
    /// The agent's own resident set size in bytes.
    pub agent_rss_bytes: u64,
}

/// One interval's measurement of both variants on the same input, from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasurementSample {
    /// The experiment measured.
    pub experiment_id: ExperimentId,
    /// The agent that measured.
    pub agent_id: AgentId,
    /// Per (experiment, agent) sequence number, assigned by the agent, starting at 1.
    /// Stores deduplicate on (experiment, agent, seq): a retried report is not new data.
    pub seq: u64,
    /// When the sample was taken (agent clock).
    pub taken_at: DateTime<Utc>,
    /// The interval this sample covers, in seconds.
    pub interval_secs: u32,
    /// Baseline output statistics.
    pub baseline: VariantStats,
    /// Candidate output statistics.
    pub candidate: VariantStats,
    /// Host figures.
    pub host: HostStats,
    /// The experiment's queries evaluated on both outputs; absent when the experiment has
    /// no queries (and in samples of agents that predate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<crate::queries::SampleQueries>,
}

impl MeasurementSample {
    /// The statistics of `variant`.
    #[must_use]
    pub fn variant(&self, variant: Variant) -> &VariantStats {
        match variant {
            Variant::Baseline => &self.baseline,
            Variant::Candidate => &self.candidate,
        }
    }
}

/// One series in a cardinality snapshot: metric name and its full label set
/// (resource and point attributes merged), with the points it produced in the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSeries {
    /// Metric name.
    pub metric: String,
    /// Labels (resource and point attributes).
    pub labels: BTreeMap<String, String>,
    /// Data points in the interval.
    #[serde(default = "one")]
    pub points: u64,
    /// The series' value when the snapshot was taken (what a preview on the snapshot ranks
    /// processes by and measures fidelity with); absent from snapshots of agents that
    /// predate it, and for values that are not finite or beyond
    /// [`crate::inputs::MAX_SERIES_VALUE`] in magnitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

impl SnapshotSeries {
    /// A series' labels in a snapshot: its resource's attributes, then its own (which win
    /// on a key both carry). The one rule for every input (a sample's series, an OTLP data
    /// point the agent receives).
    #[must_use]
    pub fn labels_of<'a>(
        resource: impl IntoIterator<Item = (&'a str, &'a str)>,
        attributes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> BTreeMap<String, String> {
        resource
            .into_iter()
            .chain(attributes)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// `value` as a snapshot carries it: `None` when not finite or out of bounds.
    #[must_use]
    pub fn value_of(value: f64) -> Option<f64> {
        (value.is_finite() && value.abs() <= crate::inputs::MAX_SERIES_VALUE).then_some(value)
    }
}

fn one() -> u64 {
    1
}

/// What a snapshot describes. Stores keep one current snapshot per agent and source.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotSource {
    /// The host's raw input: every series before any pipeline reduces it. The fleet views'
    /// host set, and what samples are held to.
    #[default]
    Input,
    /// The output of the pipeline deployed or promoted on the host: what it ships.
    Shipped,
}

impl SnapshotSource {
    /// Both sources, input first.
    pub const ALL: [SnapshotSource; 2] = [SnapshotSource::Input, SnapshotSource::Shipped];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Shipped => "shipped",
        }
    }
}

impl fmt::Display for SnapshotSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "input" => Ok(Self::Input),
            "shipped" => Ok(Self::Shipped),
            other => Err(format!("unknown snapshot source `{other}`")),
        }
    }
}

/// A snapshot as an agent reports it: packed, as agents send it, or spelled out, as
/// agents that predate packing do (checked as such, then packed).
#[derive(Debug, Clone, Copy)]
pub enum ReportedSnapshot<'a> {
    /// Strings once ([`PackedSnapshot`]).
    Packed(&'a PackedSnapshot),
    /// Every series' strings in full.
    SpelledOut(&'a CardinalitySnapshot),
}

impl<'a> From<&'a PackedSnapshot> for ReportedSnapshot<'a> {
    fn from(s: &'a PackedSnapshot) -> Self {
        Self::Packed(s)
    }
}

impl<'a> From<&'a CardinalitySnapshot> for ReportedSnapshot<'a> {
    fn from(s: &'a CardinalitySnapshot) -> Self {
        Self::SpelledOut(s)
    }
}

/// What a fleet view's host set is chosen by, of one stored snapshot (its body aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The agent that took it.
    pub agent_id: AgentId,
    /// What it describes.
    pub source: SnapshotSource,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
}

/// Every series a host emits before any reduction (its input), or what its deployed
/// pipeline ships (its output), as seen by its agent. Inputs feed the cardinality
/// explorer, the cost flow and recommendations; shipped outputs the cost flow's raw vs
/// shipped comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardinalitySnapshot {
    /// The agent that took it.
    pub agent_id: AgentId,
    /// What it describes (absent in JSON written before sources existed: the input).
    #[serde(default)]
    pub source: SnapshotSource,
    /// The host name.
    pub host: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Interval covered, seconds.
    pub interval_secs: u32,
    /// The series.
    pub series: Vec<SnapshotSeries>,
}

impl CardinalitySnapshot {
    /// What the host set is chosen by.
    #[must_use]
    pub fn meta(&self) -> SnapshotMeta {
        SnapshotMeta {
            agent_id: self.agent_id,
            source: self.source,
            taken_at: self.taken_at,
            interval_secs: self.interval_secs,
        }
    }
}
