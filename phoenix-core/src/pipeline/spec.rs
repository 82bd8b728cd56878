//! The typed pipeline: receivers, ordered processor stages, exporters.
//!
//! The same [`PipelineSpec`] drives the native engine ([`super::engine`]) and the Collector
//! renderer ([`super::render`]); stage semantics are documented on each stage and, for the
//! Collector mapping, in `docs/templates.md`.

use serde::{Deserialize, Serialize};

use super::pattern::Pattern;
use super::syntax::{check_host_port, check_http_url};
use crate::validation::FieldError;

/// Largest K a `topk` stage may keep.
pub const MAX_TOPK: u32 = 1000;

/// The typed pipeline the native engine runs and the renderer turns into Collector YAML.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PipelineSpec {
    /// Where the data comes from.
    #[serde(default)]
    pub receivers: Vec<ReceiverSpec>,
    /// Processor stages, applied in order.
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// Where the data goes.
    #[serde(default)]
    pub exporters: Vec<ExporterSpec>,
}

/// A receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReceiverSpec {
    /// Per-process metrics (the Collector's `hostmetrics` receiver, `process` scraper).
    HostmetricsProcess(HostmetricsProcessReceiver),
    /// Scrape Prometheus exposition endpoints (such as node_exporter).
    Prometheus(PrometheusReceiver),
}

/// Settings of the process scraper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostmetricsProcessReceiver {
    /// Scrape interval, seconds.
    pub collection_interval_secs: u32,
    /// Also report the opt-in `process.cpu.utilization` (needed to rank or threshold by CPU).
    #[serde(default)]
    pub cpu_utilization: bool,
}

/// Settings of a Prometheus scrape job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrometheusReceiver {
    /// Job name.
    pub job_name: String,
    /// Scrape interval, seconds.
    pub scrape_interval_secs: u32,
    /// `host:port` targets.
    pub targets: Vec<String>,
}

/// An exporter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExporterSpec {
    /// A Prometheus exposition endpoint to be scraped.
    Prometheus {
        /// `host:port` to listen on.
        endpoint: String,
    },
    /// OTLP over HTTP (protobuf).
    OtlpHttp {
        /// Base URL, such as `http://collector:4318`.
        endpoint: String,
    },
}

/// A processor stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Stage {
    /// Keep or drop series by metric name pattern and label match.
    Filter(FilterStage),
    /// Demote process entities whose CPU and memory stay under thresholds.
    Threshold(ThresholdStage),
    /// Keep the K process entities with the highest ranking value; demote the rest.
    #[serde(rename = "topk")]
    TopK(TopKStage),
    /// Roll every demoted entity up into one `other` entity, preserving sums.
    AggregateOther(AggregateOtherStage),
    /// Protect critical processes and metrics from every later dropping stage.
    KeepCritical(KeepCriticalStage),
    /// Remove labels and sum the series that become identical.
    DropLabels(DropLabelsStage),
    /// Keep only the listed resource attributes of process entities and sum.
    AggregateBy(AggregateByStage),
    /// Batching (Collector only; a no-op natively).
    Batch(BatchStage),
    /// Memory limiting (Collector only; a no-op natively).
    MemoryLimit(MemoryLimitStage),
}

impl Stage {
    /// The stage's type name, as in the wire format.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Filter(_) => "filter",
            Self::Threshold(_) => "threshold",
            Self::TopK(_) => "topk",
            Self::AggregateOther(_) => "aggregate_other",
            Self::KeepCritical(_) => "keep_critical",
            Self::DropLabels(_) => "drop_labels",
            Self::AggregateBy(_) => "aggregate_by",
            Self::Batch(_) => "batch",
            Self::MemoryLimit(_) => "memory_limit",
        }
    }
}

/// Whether a filter keeps or drops what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Keep matching series, drop the rest.
    Keep,
    /// Drop matching series.
    Drop,
}

/// A series matches when its metric name matches one of `metrics` (or `metrics` is empty)
/// and every label matcher matches (point attributes first, then resource attributes).
/// Protected series (see [`KeepCriticalStage`]) are never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterStage {
    /// Keep or drop.
    pub action: FilterAction,
    /// Metric name patterns.
    #[serde(default)]
    pub metrics: Vec<Pattern>,
    /// Label matchers.
    #[serde(default)]
    pub labels: Vec<LabelMatch>,
}

/// `key` has a value matching `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatch {
    /// Label (attribute) key.
    pub key: String,
    /// Value pattern.
    pub value: Pattern,
}

/// What ranks or thresholds a process entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// `process.cpu.utilization`, summed over states.
    Cpu,
    /// `process.memory.usage` (resident bytes).
    Memory,
}

impl RankBy {
    /// The metric it reads.
    #[must_use]
    pub fn metric(self) -> &'static str {
        match self {
            Self::Cpu => super::sample::names::PROCESS_CPU_UTILIZATION,
            Self::Memory => super::sample::names::PROCESS_MEMORY_USAGE,
        }
    }
}

/// A process entity is kept when its CPU utilisation (summed over states) is at least
/// `min_cpu_utilization` or its resident memory is at least `min_memory_bytes`; otherwise it
/// is demoted. With `hysteresis_pct`, an entity kept in the previous interval stays kept
/// until it falls below the thresholds lowered by that percentage, so entities near a
/// threshold do not flap. With `auto_tune`, both thresholds move toward a series budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStage {
    /// CPU threshold, 0 to 1 of all cores.
    pub min_cpu_utilization: f64,
    /// Memory threshold, bytes.
    pub min_memory_bytes: u64,
    /// Keep-side hysteresis, percent (0 to 100).
    #[serde(default)]
    pub hysteresis_pct: f64,
    /// Optional automatic tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_tune: Option<AutoTune>,
}

/// Moves thresholds toward a budget of output process series: after an interval whose
/// output exceeds the budget by more than `tolerance_pct`, both thresholds are multiplied by
/// `1 + step_pct/100`; below the budget by more than `tolerance_pct`, divided by it. Inside
/// the tolerance band nothing moves (hysteresis). When a move overshoots the band (the next
/// move goes the other way), the step is halved, down to 1 %, so the thresholds settle
/// instead of oscillating. Thresholds never leave
/// `[initial / 1000, initial * 1000]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoTune {
    /// Target process series per interval.
    pub target_series: u64,
    /// Dead band around the target, percent.
    pub tolerance_pct: f64,
    /// Multiplicative step, percent.
    pub step_pct: f64,
}

/// Rank process entities by `rank_by` (summed over the entity's series of that metric;
/// missing counts as 0, NaN ranks last) and keep the top `k`; ties keep input order.
/// Protected entities are kept in addition and do not use up K. The rest are demoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopKStage {
    /// How many entities to keep (1 to [`MAX_TOPK`]).
    pub k: u32,
    /// Ranking metric.
    pub rank_by: RankBy,
    /// The Collector has no top-K processor: the rendered config keeps entities whose
    /// ranking value is at least this (utilisation ratio or bytes) instead.
    pub collector_min_value: f64,
}

/// Every series of a demoted entity is moved to one roll-up entity whose only resource
/// attribute is `process.executable.name = other_value`; series that then coincide are
/// summed, so per-metric totals are preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateOtherStage {
    /// The roll-up entity's executable name.
    pub other_value: String,
}

impl Default for AggregateOtherStage {
    fn default() -> Self {
        Self {
            other_value: super::sample::names::OTHER.to_owned(),
        }
    }
}

/// Series of processes whose executable name matches `processes`, and series whose metric
/// name matches `metrics`, are protected: no later stage drops or demotes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KeepCriticalStage {
    /// Executable name patterns.
    #[serde(default)]
    pub processes: Vec<Pattern>,
    /// Metric name patterns.
    #[serde(default)]
    pub metrics: Vec<Pattern>,
}

/// Remove these keys from resource and point attributes, then sum series that coincide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropLabelsStage {
    /// Label keys.
    pub labels: Vec<String>,
}

/// Process entities keep only these resource attributes; series that coincide are summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AggregateByStage {
    /// Resource attribute keys to keep.
    pub resource_labels: Vec<String>,
}

/// The Collector's `batch` processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchStage {
    /// Items per batch.
    pub send_batch_size: u32,
    /// Flush after, seconds.
    pub timeout_secs: u32,
}

/// The Collector's `memory_limiter` processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLimitStage {
    /// Hard limit, MiB.
    pub limit_mib: u32,
    /// Spike allowance below the limit, MiB.
    pub spike_limit_mib: u32,
    /// Check interval, seconds.
    pub check_interval_secs: u32,
}

impl PipelineSpec {
    /// What the rendered Collector config of this spec does, in native terms: stock
    /// components keep no state between batches and cannot rank, so a `topk` stage becomes
    /// the static threshold it renders to (`collector_min_value` on its ranking metric) and
    /// a `threshold` stage loses its hysteresis and auto-tuning. Evaluating the result with
    /// the native engine from a fresh state predicts the Collector's output for one
    /// interval (the differential test checks it against a real Collector).
    #[must_use]
    pub fn collector_semantics(&self) -> PipelineSpec {
        let mut spec = self.clone();
        for stage in &mut spec.stages {
            match stage {
                Stage::TopK(t) => {
                    let (cpu, memory) = match t.rank_by {
                        RankBy::Cpu => (t.collector_min_value, 0),
                        #[allow(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "byte thresholds are non-negative integers"
                        )]
                        RankBy::Memory => (0.0, t.collector_min_value.max(0.0) as u64),
                    };
                    *stage = Stage::Threshold(ThresholdStage {
                        min_cpu_utilization: cpu,
                        min_memory_bytes: memory,
                        hysteresis_pct: 0.0,
                        auto_tune: None,
                    });
                }
                Stage::Threshold(t) => {
                    t.hysteresis_pct = 0.0;
                    t.auto_tune = None;
                }
                _ => {}
            }
        }
        spec
    }

    /// Every problem with the spec, with paths under `path`.
    #[must_use]
    pub fn validate(&self, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut err = |p: String, m: &str| errors.push(FieldError::new(p, m));
        if self.receivers.is_empty() {
            err(
                format!("{path}.receivers"),
                "at least one receiver is required",
            );
        }
        if self.exporters.is_empty() {
            err(
                format!("{path}.exporters"),
                "at least one exporter is required",
            );
        }
        for (i, r) in self.receivers.iter().enumerate() {
            let p = format!("{path}.receivers[{i}]");
            match r {
                ReceiverSpec::HostmetricsProcess(h) => {
                    if !(1..=3600).contains(&h.collection_interval_secs) {
                        err(format!("{p}.collection_interval_secs"), "must be 1 to 3600");
                    }
                }
                ReceiverSpec::Prometheus(pr) => {
                    if !(1..=3600).contains(&pr.scrape_interval_secs) {
                        err(format!("{p}.scrape_interval_secs"), "must be 1 to 3600");
                    }
                    if !is_identifier(&pr.job_name) {
                        err(
                            format!("{p}.job_name"),
                            "must be 1 to 64 letters, digits, `_` or `-`",
                        );
                    }
                    if pr.targets.is_empty() {
                        err(format!("{p}.targets"), "at least one target is required");
                    }
                    for (j, t) in pr.targets.iter().enumerate() {
                        if let Err(m) = check_host_port(t) {
                            err(format!("{p}.targets[{j}]"), m);
                        }
                    }
                }
            }
        }
        for (i, e) in self.exporters.iter().enumerate() {
            let p = format!("{path}.exporters[{i}].endpoint");
            let checked = match e {
                ExporterSpec::Prometheus { endpoint } => check_host_port(endpoint),
                ExporterSpec::OtlpHttp { endpoint } => check_http_url(endpoint),
            };
            if let Err(m) = checked {
                err(p, m);
            }
        }
        for (i, stage) in self.stages.iter().enumerate() {
            let p = format!("{path}.stages[{i}]");
            validate_stage(stage, &p, &mut err);
        }
        errors
    }

    /// True when a stage of this kind is present.
    #[must_use]
    pub fn has_stage(&self, kind: &str) -> bool {
        self.stages.iter().any(|s| s.kind() == kind)
    }

    /// The critical processes and metrics of every `keep_critical` stage.
    #[must_use]
    pub fn critical(&self) -> KeepCriticalStage {
        let mut all = KeepCriticalStage::default();
        for s in &self.stages {
            if let Stage::KeepCritical(k) = s {
                for p in &k.processes {
                    if !all.processes.contains(p) {
                        all.processes.push(p.clone());
                    }
                }
                for m in &k.metrics {
                    if !all.metrics.contains(m) {
                        all.metrics.push(m.clone());
                    }
                }
            }
        }
        all
    }
}

fn validate_stage(stage: &Stage, p: &str, err: &mut impl FnMut(String, &str)) {
    let check_patterns = |field: &str, pats: &[Pattern], err: &mut dyn FnMut(String, &str)| {
        for (j, pat) in pats.iter().enumerate() {
            if pat.as_str().is_empty() || pat.as_str().len() > 256 {
                err(format!("{p}.{field}[{j}]"), "must be 1 to 256 characters");
            } else if pat.as_str().chars().any(char::is_control) {
                err(
                    format!("{p}.{field}[{j}]"),
                    "control characters are not allowed",
                );
            }
        }
    };
    let check_keys = |field: &str, keys: &[String], err: &mut dyn FnMut(String, &str)| {
        if keys.is_empty() {
            err(format!("{p}.{field}"), "at least one label is required");
        }
        for (j, k) in keys.iter().enumerate() {
            if !is_label_key(k) {
                err(
                    format!("{p}.{field}[{j}]"),
                    "must be 1 to 128 letters, digits, `.`, `_` or `-`",
                );
            }
        }
    };
    match stage {
        Stage::Filter(f) => {
            if f.metrics.is_empty() && f.labels.is_empty() {
                err(
                    format!("{p}.metrics"),
                    "a filter needs metric patterns or label matchers",
                );
            }
            check_patterns("metrics", &f.metrics, err);
            for (j, l) in f.labels.iter().enumerate() {
                if !is_label_key(&l.key) {
                    err(format!("{p}.labels[{j}].key"), "invalid label key");
                }
                check_patterns("labels.value", std::slice::from_ref(&l.value), err);
            }
        }
        Stage::Threshold(t) => {
            if !(0.0..=1.0).contains(&t.min_cpu_utilization) {
                err(format!("{p}.min_cpu_utilization"), "must be 0 to 1");
            }
            if !(0.0..=100.0).contains(&t.hysteresis_pct) {
                err(format!("{p}.hysteresis_pct"), "must be 0 to 100");
            }
            if let Some(a) = &t.auto_tune {
                if a.target_series == 0 {
                    err(format!("{p}.auto_tune.target_series"), "must be at least 1");
                }
                if !(0.0..=100.0).contains(&a.tolerance_pct) {
                    err(format!("{p}.auto_tune.tolerance_pct"), "must be 0 to 100");
                }
                if !(1.0..=100.0).contains(&a.step_pct) {
                    err(format!("{p}.auto_tune.step_pct"), "must be 1 to 100");
                }
                if t.min_cpu_utilization <= 0.0 && t.min_memory_bytes == 0 {
                    err(
                        format!("{p}.auto_tune"),
                        "auto-tuning needs a non-zero starting threshold",
                    );
                }
            }
        }
        Stage::TopK(t) => {
            if !(1..=MAX_TOPK).contains(&t.k) {
                err(format!("{p}.k"), "must be 1 to 1000");
            }
            if !t.collector_min_value.is_finite() || t.collector_min_value < 0.0 {
                err(
                    format!("{p}.collector_min_value"),
                    "must be a non-negative number",
                );
            }
        }
        Stage::AggregateOther(a) => {
            if a.other_value.is_empty()
                || a.other_value.len() > 64
                || a.other_value.chars().any(char::is_control)
            {
                err(
                    format!("{p}.other_value"),
                    "must be 1 to 64 printable characters",
                );
            }
        }
        Stage::KeepCritical(k) => {
            check_patterns("processes", &k.processes, err);
            check_patterns("metrics", &k.metrics, err);
        }
        Stage::DropLabels(d) => check_keys("labels", &d.labels, err),
        Stage::AggregateBy(a) => check_keys("resource_labels", &a.resource_labels, err),
        Stage::Batch(b) => {
            if !(1..=1_000_000).contains(&b.send_batch_size) {
                err(format!("{p}.send_batch_size"), "must be 1 to 1000000");
            }
            if !(1..=600).contains(&b.timeout_secs) {
                err(format!("{p}.timeout_secs"), "must be 1 to 600");
            }
        }
        Stage::MemoryLimit(m) => {
            if !(1..=1_048_576).contains(&m.limit_mib) {
                err(format!("{p}.limit_mib"), "must be 1 to 1048576");
            }
            if m.spike_limit_mib >= m.limit_mib {
                err(format!("{p}.spike_limit_mib"), "must be below limit_mib");
            }
            if !(1..=60).contains(&m.check_interval_secs) {
                err(format!("{p}.check_interval_secs"), "must be 1 to 60");
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Attribute keys as the Collector and Prometheus write them.
pub(crate) fn is_label_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_json_with_tagged_stages() {
        let spec = PipelineSpec {
            receivers: vec![ReceiverSpec::HostmetricsProcess(
                HostmetricsProcessReceiver {
                    collection_interval_secs: 10,
                    cpu_utilization: true,
                },
            )],
            stages: vec![
                Stage::KeepCritical(KeepCriticalStage {
                    processes: vec!["nginx".into()],
                    metrics: vec![],
                }),
                Stage::TopK(TopKStage {
                    k: 10,
                    rank_by: RankBy::Cpu,
                    collector_min_value: 0.01,
                }),
                Stage::AggregateOther(AggregateOtherStage::default()),
            ],
            exporters: vec![ExporterSpec::Prometheus {
                endpoint: "0.0.0.0:9464".to_owned(),
            }],
        };
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["stages"][1]["type"], "topk");
        assert_eq!(json["receivers"][0]["type"], "hostmetrics_process");
        let back: PipelineSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
        assert!(spec.validate("spec").is_empty());
    }

    #[test]
    fn validation_reports_every_bad_field() {
        let spec = PipelineSpec {
            receivers: vec![ReceiverSpec::Prometheus(PrometheusReceiver {
                job_name: "bad job".to_owned(),
                scrape_interval_secs: 0,
                targets: vec!["nohost".to_owned()],
            })],
            stages: vec![
                Stage::TopK(TopKStage {
                    k: 0,
                    rank_by: RankBy::Memory,
                    collector_min_value: f64::NAN,
                }),
                Stage::DropLabels(DropLabelsStage { labels: vec![] }),
                Stage::MemoryLimit(MemoryLimitStage {
                    limit_mib: 100,
                    spike_limit_mib: 100,
                    check_interval_secs: 1,
                }),
            ],
            exporters: vec![ExporterSpec::OtlpHttp {
                endpoint: "localhost:4318".to_owned(),
            }],
        };
        let paths: Vec<String> = spec.validate("s").into_iter().map(|e| e.path).collect();
        assert_eq!(
            paths,
            [
                "s.receivers[0].scrape_interval_secs",
                "s.receivers[0].job_name",
                "s.receivers[0].targets[0]",
                "s.exporters[0].endpoint",
                "s.stages[0].k",
                "s.stages[0].collector_min_value",
                "s.stages[1].labels",
                "s.stages[2].spike_limit_mib",
            ]
        );
    }
}
