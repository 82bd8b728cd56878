//! The judge: success criteria, and the verdict an experiment ends with.

mod signed_rank;
mod stats;
#[cfg(test)]
mod tests;
mod verdict;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

pub use signed_rank::{
    EXACT_MAX_PAIRS, SignedRank, SignedRankMethod, signed_rank_with, wilcoxon_signed_rank,
};
pub use stats::{EXACT_MAX_GROUP, MannWhitney, MannWhitneyMethod, mann_whitney_u};
pub use verdict::{FLEET_ROBUST_HOSTS, JudgeConfig, fleet_median, judge, judge_with};

/// A KPI a criterion can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KpiName {
    /// Candidate series vs baseline series, percent fewer.
    CardinalityReductionPct,
    /// Candidate data points vs baseline, percent fewer.
    DataPointReductionPct,
    /// Candidate cost vs baseline cost under the experiment's pricing model, percent less.
    CostReductionPct,
    /// Share of host CPU and memory the candidate still carries, percent (the lower of the two).
    FidelityPct,
    /// Share of critical processes and metric patterns present in the candidate, percent.
    CriticalCoveragePct,
    /// Extra agent CPU the candidate costs relative to the baseline, percent.
    AgentCpuOverheadPct,
    /// Inventoried queries the candidate breaks (a count, not a percentage): queries that
    /// return nothing, on any host's sample, where the baseline returned something.
    QueriesBroken,
    /// Extra agent memory the candidate costs relative to the baseline, percent.
    /// **Withdrawn**: no agent measures it (see [`KpiName::offered`]), so
    /// `ExperimentSpec::validate` refuses a criterion on it and no KPI reports it. The name
    /// stays so that experiments stored before the withdrawal still read.
    AgentRssOverheadPct,
}

impl KpiName {
    /// Why a criterion cannot test this KPI, when it cannot: the agents measure nothing it
    /// could be computed from. `None` for every KPI that is measured.
    ///
    /// `agent_rss_overhead_pct`: the native runtime evaluates both variants in the agent's
    /// one process, and the otelcol runtime runs both in one Collector process; a sample
    /// carries one resident set size (`HostStats::agent_rss_bytes`, the agent's plus the
    /// Collector's) for the two together, so no per-variant memory exists to compare.
    #[must_use]
    pub fn withdrawn(self) -> Option<&'static str> {
        match self {
            Self::AgentRssOverheadPct => Some(
                "agent_rss_overhead_pct is not measured: both variants run in one process (the agent's, or one Collector in otelcol mode), whose resident set size agents report for the two together, so no per-variant memory exists to compare; a criterion on it could never be decided",
            ),
            _ => None,
        }
    }

    /// Whether a criterion may test this KPI (it is measured; see [`KpiName::withdrawn`]).
    #[must_use]
    pub fn offered(self) -> bool {
        self.withdrawn().is_none()
    }

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CardinalityReductionPct => "cardinality_reduction_pct",
            Self::DataPointReductionPct => "data_point_reduction_pct",
            Self::CostReductionPct => "cost_reduction_pct",
            Self::FidelityPct => "fidelity_pct",
            Self::CriticalCoveragePct => "critical_coverage_pct",
            Self::AgentCpuOverheadPct => "agent_cpu_overhead_pct",
            Self::AgentRssOverheadPct => "agent_rss_overhead_pct",
            Self::QueriesBroken => "queries_broken",
        }
    }

    /// Whether the KPI is a percentage (every KPI but `queries_broken`, a count).
    #[must_use]
    pub fn is_percent(self) -> bool {
        self != Self::QueriesBroken
    }

    /// The unit written after a value: `%`, or nothing for a count.
    #[must_use]
    pub fn unit(self) -> &'static str {
        if self.is_percent() { "%" } else { "" }
    }

    /// `value` in the KPI's unit, for reasons: `12.50%`, or `3` for a count.
    #[must_use]
    pub fn format(self, value: f64) -> String {
        if self.is_percent() {
            format!("{value:.2}%")
        } else {
            format!("{value}")
        }
    }

    /// Whether a criterion on this KPI is decided on every host's samples pooled rather
    /// than on the median of the hosts' own values: a query broken on any host is broken
    /// (the count of distinct queries broken anywhere), so that no majority of hosts
    /// whose outputs happen to keep a query can hide the host where it broke.
    #[must_use]
    pub fn decided_pooled(self) -> bool {
        self == Self::QueriesBroken
    }
}

impl fmt::Display for KpiName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Direction of a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// The measured value must be at least the threshold.
    AtLeast,
    /// The measured value must be at most the threshold.
    AtMost,
}

impl Comparison {
    /// The operator, `>=` or `<=`.
    #[must_use]
    pub fn symbol(self) -> &'static str {
        match self {
            Self::AtLeast => ">=",
            Self::AtMost => "<=",
        }
    }

    /// True when `value` meets `threshold` in this direction.
    #[must_use]
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::AtLeast => value >= threshold,
            Self::AtMost => value <= threshold,
        }
    }
}

/// One success criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    /// The KPI tested.
    pub kpi: KpiName,
    /// Direction.
    pub comparison: Comparison,
    /// Threshold, in the KPI's unit (percent for every built-in KPI).
    pub threshold: f64,
    /// A failed critical criterion fails the verdict; a failed non-critical one makes it marginal.
    #[serde(default)]
    pub critical: bool,
}

impl Criterion {
    /// `kpi >= threshold`.
    #[must_use]
    pub fn at_least(kpi: KpiName, threshold: f64, critical: bool) -> Self {
        Self {
            kpi,
            comparison: Comparison::AtLeast,
            threshold,
            critical,
        }
    }

    /// `kpi <= threshold`.
    #[must_use]
    pub fn at_most(kpi: KpiName, threshold: f64, critical: bool) -> Self {
        Self {
            kpi,
            comparison: Comparison::AtMost,
            threshold,
            critical,
        }
    }

    /// The criteria used when a spec states none: at least 50% fewer series, fidelity of
    /// at least 80%, every critical process visible, agent CPU overhead under 50%.
    #[must_use]
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::at_least(KpiName::CardinalityReductionPct, 50.0, true),
            Self::at_least(KpiName::CriticalCoveragePct, 100.0, true),
            Self::at_least(KpiName::FidelityPct, 80.0, false),
            Self::at_most(KpiName::AgentCpuOverheadPct, 50.0, false),
        ]
    }

    /// The criterion added to an experiment created with a query inventory (unless its
    /// spec states one on `queries_broken`): no inventoried query broken, critical.
    #[must_use]
    pub fn queries_kept() -> Self {
        Self::at_most(KpiName::QueriesBroken, 0.0, true)
    }
}

/// The judge's overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictOutcome {
    /// Every criterion met.
    Pass,
    /// Every critical criterion met, some non-critical one missed.
    Marginal,
    /// A critical criterion missed.
    Fail,
    /// Not enough evidence (too few samples, zero baseline, missing hosts).
    Inconclusive,
}

impl VerdictOutcome {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Marginal => "marginal",
            Self::Fail => "fail",
            Self::Inconclusive => "inconclusive",
        }
    }
}

impl fmt::Display for VerdictOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host's own value for a criterion, from its own samples only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostCriterion {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name.
    pub host: String,
    /// Whether its value counts in the fleet median (it has enough judged samples).
    pub voting: bool,
    /// Its value, if it could be measured.
    pub measured: Option<f64>,
    /// Whether its value meets the criterion; `None` when it could not be decided.
    pub passed: Option<bool>,
}

/// One host against the criteria, on its own values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostVerdict {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name.
    pub host: String,
    /// Its judged samples.
    pub samples: u64,
    /// Whether it counts in the fleet median (it has enough judged samples).
    pub voting: bool,
    /// Whether its own values meet every critical criterion (true when there is none).
    pub passed_critical: bool,
}

/// How one criterion fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionResult {
    /// The criterion.
    pub criterion: Criterion,
    /// The fleet value the criterion is decided on: the median of the voting hosts' own
    /// values (see [`fleet_median`]), if any host's value could be measured.
    pub measured: Option<f64>,
    /// Whether it was met; `None` when it could not be decided.
    pub passed: Option<bool>,
    /// Human explanation with the measured value next to the threshold.
    pub reason: String,
    /// The baseline's underlying figure, when the KPI has one.
    #[serde(default)]
    pub baseline: Option<f64>,
    /// The candidate's underlying figure.
    #[serde(default)]
    pub candidate: Option<f64>,
    /// The paired test behind the decision (agent CPU: Wilcoxon signed-rank over the
    /// samples' baseline and candidate evaluation times).
    #[serde(default)]
    pub paired_test: Option<SignedRank>,
    /// The KPI over every host's samples pooled (shown for context; not what decides).
    #[serde(default)]
    pub pooled: Option<f64>,
    /// Each host's own value, by agent id.
    #[serde(default)]
    pub per_host: Vec<HostCriterion>,
}

/// The judge's verdict on an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Overall outcome.
    pub outcome: VerdictOutcome,
    /// Why, in sentences.
    pub reasons: Vec<String>,
    /// Per-criterion detail.
    pub criteria: Vec<CriterionResult>,
    /// Samples judged (after warm-up).
    pub samples: u64,
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// Each host against the critical criteria, by agent id.
    #[serde(default)]
    pub hosts: Vec<HostVerdict>,
}

impl Verdict {
    /// Voting hosts whose own values meet every critical criterion: what automatic
    /// promotion asks agreement of (`ExperimentSpec::auto_promote_min_hosts`).
    #[must_use]
    pub fn hosts_passing_critical(&self) -> u64 {
        self.hosts
            .iter()
            .filter(|h| h.voting && h.passed_critical)
            .count() as u64
    }
}
