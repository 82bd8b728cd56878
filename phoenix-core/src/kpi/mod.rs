//! Experiment KPIs from the agents' per-interval samples: overall values, a time series per
//! variant, and a per-host breakdown. Samples in warm-up are excluded (and counted).
//!
//! Every KPI says how it was computed (`basis`) and, when it has no value, why
//! ([`Undefined`]): a zero baseline is never reported as a 100% reduction.

mod queries;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::cost::{Catalogue, Observation, PricingModel, Savings, Usage, group_digits, savings};
use crate::experiment::{Experiment, TargetState};
use crate::ids::{AgentId, ExperimentId};
use crate::judge::{KpiName, SignedRank, wilcoxon_signed_rank};
use crate::measure::{MeasurementSample, VariantStats};
use crate::queries::{ExperimentQuery, QueriesKept};

/// Most points in a KPI time series; buckets widen to stay under it.
pub const MAX_TIME_POINTS: i64 = 240;

/// Every KPI reported, in report order: every offered [`KpiName`] (the withdrawn
/// `agent_rss_overhead_pct` is measured by no agent and not reported).
pub const ALL_KPIS: [KpiName; 7] = [
    KpiName::CardinalityReductionPct,
    KpiName::DataPointReductionPct,
    KpiName::CostReductionPct,
    KpiName::FidelityPct,
    KpiName::CriticalCoveragePct,
    KpiName::AgentCpuOverheadPct,
    KpiName::QueriesBroken,
];

/// Why a KPI has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undefined {
    /// No sample was judged.
    NoSamples,
    /// The baseline measured zero, so a relative change is undefined.
    ZeroBaseline,
    /// The agents do not report what this KPI needs.
    NotMeasured,
    /// The experiment's pricing model is not in the catalogue.
    UnknownPricingModel,
}

/// One KPI's value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiValue {
    /// Which KPI.
    pub kpi: KpiName,
    /// The value, in percent; `None` when undefined.
    pub value: Option<f64>,
    /// The baseline's underlying figure (unit in `basis`).
    pub baseline: Option<f64>,
    /// The candidate's underlying figure.
    pub candidate: Option<f64>,
    /// How the value was computed, in words, with the underlying figures.
    pub basis: String,
    /// Why `value` is `None`.
    pub undefined: Option<Undefined>,
    /// Samples it was computed from.
    pub samples: u64,
}

/// What happened to the samples read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SampleCounts {
    /// Samples passed in.
    pub received: u64,
    /// Samples the KPIs are computed from.
    pub judged: u64,
    /// Excluded: taken before warm-up ended.
    pub in_warmup: u64,
    /// Excluded: taken after the run ended.
    pub after_end: u64,
    /// Excluded: of another experiment.
    pub other_experiment: u64,
    /// Excluded: from an agent that is not a target.
    pub unknown_agent: u64,
    /// Excluded: same (agent, seq) seen before.
    pub duplicates: u64,
}

/// A host, by agent id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRef {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host name.
    pub host: String,
}

/// Which hosts reported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostCoverage {
    /// Targets of the experiment.
    pub targets: u64,
    /// Targets neither lost nor failed (the denominator).
    pub live: u64,
    /// Hosts with at least one judged sample.
    pub reporting: u64,
    /// Live targets without a judged sample.
    pub missing: Vec<HostRef>,
    /// Targets lost or failed (excluded from the denominator).
    pub excluded: Vec<HostRef>,
}

/// Aggregates of one variant over the judged samples.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VariantSummary {
    /// Mean series per sample, summed over hosts (each host's mean).
    pub series_mean: f64,
    /// Sum over hosts of each host's 95th-percentile series count.
    pub series_p95: u64,
    /// Data points per minute, all hosts.
    pub points_per_minute: u64,
    /// Encoded bytes per month of 730 h, all hosts.
    pub bytes_per_month: u64,
    /// Mean fidelity (lower of the measured CPU and memory shares) over the samples that
    /// measured one, percent; `None` when no sample did.
    pub fidelity_pct_mean: Option<f64>,
    /// Lowest critical coverage seen, percent.
    pub critical_coverage_min_pct: Option<f64>,
    /// Mean evaluation CPU per sample, nanoseconds.
    pub eval_nanos_mean: f64,
}

/// A critical process or pattern the candidate missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticalMiss {
    /// The process or pattern.
    pub name: String,
    /// Judged samples in which it was missing.
    pub samples: u64,
}

/// The cost of both variants on the measured hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentCost {
    /// Both variants priced, with the saving.
    pub measured: Savings,
    /// The baseline's usage that was priced (what a fleet projection scales).
    #[serde(default)]
    pub baseline_usage: Usage,
    /// The candidate's usage that was priced.
    #[serde(default)]
    pub candidate_usage: Usage,
}

/// Both variants' figures in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct VariantPoint {
    /// Series (sum over hosts of each host's mean in the bucket).
    pub series: f64,
    /// Data points (same).
    pub points: f64,
    /// Encoded bytes (same).
    pub bytes: f64,
}

/// One bucket of the KPI time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimePoint {
    /// Bucket start.
    pub at: DateTime<Utc>,
    /// Bucket width, seconds.
    pub width_secs: i64,
    /// True when the bucket lies in warm-up (not judged).
    pub in_warmup: bool,
    /// Samples in the bucket.
    pub samples: u64,
    /// Hosts in the bucket.
    pub hosts: u64,
    /// Baseline.
    pub baseline: VariantPoint,
    /// Candidate.
    pub candidate: VariantPoint,
    /// Cardinality reduction in the bucket, percent.
    pub cardinality_reduction_pct: Option<f64>,
    /// Data-point reduction in the bucket, percent.
    pub data_point_reduction_pct: Option<f64>,
    /// Mean candidate fidelity in the bucket, percent.
    pub fidelity_pct: Option<f64>,
}

/// KPIs of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostKpis {
    /// The host.
    pub host: HostRef,
    /// Its target state, when it is a target.
    pub state: Option<TargetState>,
    /// Judged samples from it.
    pub samples: u64,
    /// Its KPIs, from its own samples only.
    pub kpis: Vec<KpiValue>,
    /// Wilcoxon signed-rank test of its own samples' evaluation CPU, each sample one pair
    /// (candidate against baseline on the same input).
    #[serde(default)]
    pub agent_cpu_test: Option<SignedRank>,
}

/// Everything measured about an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentKpis {
    /// The experiment.
    pub experiment_id: ExperimentId,
    /// Pricing catalogue entry used for cost.
    pub pricing_model: String,
    /// Sample accounting.
    pub samples: SampleCounts,
    /// First judged sample.
    pub judged_from: Option<DateTime<Utc>>,
    /// Last judged sample.
    pub judged_to: Option<DateTime<Utc>>,
    /// Host coverage.
    pub hosts: HostCoverage,
    /// One per KPI, in [`ALL_KPIS`] order.
    pub kpis: Vec<KpiValue>,
    /// Baseline aggregates.
    pub baseline: VariantSummary,
    /// Candidate aggregates.
    pub candidate: VariantSummary,
    /// Wilcoxon signed-rank test of per-sample evaluation CPU, each sample one pair
    /// (candidate against baseline on the same input in the same interval).
    pub agent_cpu_test: Option<SignedRank>,
    /// Cost on the measured hosts; `None` when the pricing model is unknown or nothing was
    /// judged.
    pub cost: Option<ExperimentCost>,
    /// Critical processes or patterns the candidate missed.
    pub critical_missing: Vec<CriticalMiss>,
    /// How the experiment's queries fared (each query's most severe status over the judged
    /// samples, the broken and changed ones with their reasons); `None` when the
    /// experiment has no query inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<QueriesKept>,
    /// Both variants over time (warm-up included, flagged).
    pub time_series: Vec<TimePoint>,
    /// Per-host breakdown, by agent id.
    pub per_host: Vec<HostKpis>,
}

impl ExperimentKpis {
    /// The value of `kpi`.
    #[must_use]
    pub fn kpi(&self, kpi: KpiName) -> Option<&KpiValue> {
        self.kpis.iter().find(|k| k.kpi == kpi)
    }
}

type HostSamples<'a> = BTreeMap<AgentId, Vec<&'a MeasurementSample>>;

/// Computes the KPIs of `experiment` from `samples` (any order; other experiments' samples
/// and duplicates are ignored and counted), pricing cost with `catalogue`.
#[must_use]
pub fn compute(
    experiment: &Experiment,
    samples: &[MeasurementSample],
    catalogue: &Catalogue,
) -> ExperimentKpis {
    let mut counts = SampleCounts {
        received: samples.len() as u64,
        ..SampleCounts::default()
    };
    let targets: BTreeMap<AgentId, _> =
        experiment.targets.iter().map(|t| (t.agent_id, t)).collect();
    let mut seen = BTreeSet::new();
    let mut judged: HostSamples<'_> = BTreeMap::new();
    let mut charted: Vec<(&MeasurementSample, bool)> = Vec::new();
    for s in samples {
        if s.experiment_id != experiment.id {
            counts.other_experiment += 1;
            continue;
        }
        if !seen.insert((s.agent_id, s.seq)) {
            counts.duplicates += 1;
            continue;
        }
        if !targets.is_empty() && !targets.contains_key(&s.agent_id) {
            counts.unknown_agent += 1;
            continue;
        }
        if experiment.ends_at.is_some_and(|end| s.taken_at > end) {
            counts.after_end += 1;
            continue;
        }
        if experiment.warmup_until.is_some_and(|w| s.taken_at < w) {
            counts.in_warmup += 1;
            charted.push((s, true));
            continue;
        }
        counts.judged += 1;
        charted.push((s, false));
        judged.entry(s.agent_id).or_default().push(s);
    }
    for list in judged.values_mut() {
        list.sort_by_key(|s| (s.taken_at, s.seq));
    }

    let model = catalogue.get(&experiment.spec.pricing_model).ok();
    let host_name = |agent: AgentId| {
        targets
            .get(&agent)
            .map_or_else(|| agent.to_string(), |t| t.host.clone())
    };
    let measure = |hosts: &HostSamples<'_>| {
        measure(
            hosts,
            model,
            &experiment.spec.pricing_model,
            &experiment.queries,
            &host_name,
        )
    };
    let overall = measure(&judged);
    let per_host = judged
        .iter()
        .map(|(&agent, list)| {
            let one: HostSamples<'_> = [(agent, list.clone())].into();
            let own = measure(&one);
            HostKpis {
                host: HostRef {
                    agent_id: agent,
                    host: host_name(agent),
                },
                state: targets.get(&agent).map(|t| t.state),
                samples: list.len() as u64,
                kpis: own.kpis,
                agent_cpu_test: own.cpu_test,
            }
        })
        .collect();

    let mut hosts = HostCoverage {
        targets: experiment.targets.len() as u64,
        reporting: judged.len() as u64,
        ..HostCoverage::default()
    };
    for t in &experiment.targets {
        let host = HostRef {
            agent_id: t.agent_id,
            host: t.host.clone(),
        };
        if matches!(t.state, TargetState::Lost | TargetState::Failed) {
            hosts.excluded.push(host);
        } else {
            hosts.live += 1;
            if !judged.contains_key(&t.agent_id) {
                hosts.missing.push(host);
            }
        }
    }

    let judged_from = judged.values().flatten().map(|s| s.taken_at).min();
    let judged_to = judged.values().flatten().map(|s| s.taken_at).max();
    ExperimentKpis {
        experiment_id: experiment.id,
        pricing_model: experiment.spec.pricing_model.clone(),
        samples: counts,
        judged_from,
        judged_to,
        hosts,
        kpis: overall.kpis,
        baseline: overall.baseline,
        candidate: overall.candidate,
        agent_cpu_test: overall.cpu_test,
        cost: overall.cost,
        critical_missing: overall.critical_missing,
        queries: overall.queries,
        time_series: time_series(experiment, &charted),
        per_host,
    }
}

struct Measured {
    kpis: Vec<KpiValue>,
    baseline: VariantSummary,
    candidate: VariantSummary,
    cpu_test: Option<SignedRank>,
    cost: Option<ExperimentCost>,
    critical_missing: Vec<CriticalMiss>,
    queries: Option<QueriesKept>,
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts and sums become ratios and means for display and judging"
)]
fn as_f64(v: u128) -> f64 {
    v as f64
}

fn ratio_pct(baseline: u128, candidate: u128) -> Option<f64> {
    (baseline > 0).then(|| (1.0 - as_f64(candidate) / as_f64(baseline)) * 100.0)
}

fn observations(
    list: &[&MeasurementSample],
    pick: fn(&MeasurementSample) -> &VariantStats,
) -> Vec<Observation> {
    list.iter()
        .map(|s| {
            let v = pick(s);
            Observation {
                taken_at: Some(s.taken_at),
                series: v.series,
                points: v.points,
                bytes: v.bytes,
                interval_secs: s.interval_secs,
                active_series: v.active_series,
                hour_distinct_series: v.hour_distinct_series,
            }
        })
        .collect()
}

fn summary(
    hosts: &HostSamples<'_>,
    usage: &Usage,
    pick: fn(&MeasurementSample) -> &VariantStats,
) -> VariantSummary {
    let all: Vec<&MeasurementSample> = hosts.values().flatten().copied().collect();
    let n = all.len() as u128;
    let series_mean = hosts
        .values()
        .map(|l| {
            as_f64(l.iter().map(|s| u128::from(pick(s).series)).sum()) / as_f64(l.len() as u128)
        })
        .sum();
    let fidelities: Vec<f64> = all
        .iter()
        .filter_map(|s| pick(s).fidelity.lower())
        .collect();
    VariantSummary {
        series_mean,
        series_p95: usage.series_p95,
        points_per_minute: usage.points_per_minute,
        bytes_per_month: usage.bytes_per_month,
        fidelity_pct_mean: (!fidelities.is_empty())
            .then(|| fidelities.iter().sum::<f64>() / as_f64(fidelities.len() as u128)),
        critical_coverage_min_pct: all
            .iter()
            .map(|s| pick(s).critical.percent())
            .min_by(f64::total_cmp),
        eval_nanos_mean: if n > 0 {
            as_f64(all.iter().map(|s| u128::from(pick(s).eval_nanos)).sum()) / as_f64(n)
        } else {
            0.0
        },
    }
}

fn measure(
    hosts: &HostSamples<'_>,
    model: Option<&PricingModel>,
    model_id: &str,
    queries: &[ExperimentQuery],
    host_name: &dyn Fn(AgentId) -> String,
) -> Measured {
    let all: Vec<&MeasurementSample> = hosts.values().flatten().copied().collect();
    let n = all.len() as u64;
    let sum =
        |f: fn(&MeasurementSample) -> u64| -> u128 { all.iter().map(|s| u128::from(f(s))).sum() };
    let basis_hosts = format!(
        "{} judged samples from {} hosts",
        group_digits(n),
        group_digits(hosts.len() as u64)
    );
    let base_obs: Vec<Vec<Observation>> = hosts
        .values()
        .map(|l| observations(l, |s| &s.baseline))
        .collect();
    let cand_obs: Vec<Vec<Observation>> = hosts
        .values()
        .map(|l| observations(l, |s| &s.candidate))
        .collect();
    let base_usage = Usage::from_hosts(
        base_obs.iter().map(Vec::as_slice),
        format!("baseline, {basis_hosts}"),
    );
    let cand_usage = Usage::from_hosts(
        cand_obs.iter().map(Vec::as_slice),
        format!("candidate, {basis_hosts}"),
    );
    let baseline = summary(hosts, &base_usage, |s| &s.baseline);
    let candidate = summary(hosts, &cand_usage, |s| &s.candidate);

    let undefined_if = |value: Option<f64>, reason: Undefined| {
        if n == 0 {
            (None, Some(Undefined::NoSamples))
        } else if value.is_none() {
            (None, Some(reason))
        } else {
            (value, None)
        }
    };
    let mut kpis = Vec::with_capacity(ALL_KPIS.len());
    let mut push = |kpi: KpiName,
                    value: Option<f64>,
                    reason: Undefined,
                    b: Option<f64>,
                    c: Option<f64>,
                    basis: String| {
        let (value, undefined) = undefined_if(value, reason);
        kpis.push(KpiValue {
            kpi,
            value,
            baseline: b,
            candidate: c,
            basis,
            undefined,
            samples: n,
        });
    };

    // Cardinality and data points: ratio of sums over every judged sample (same input).
    let (bs, cs) = (sum(|s| s.baseline.series), sum(|s| s.candidate.series));
    push(
        KpiName::CardinalityReductionPct,
        ratio_pct(bs, cs),
        Undefined::ZeroBaseline,
        Some(as_f64(bs)),
        Some(as_f64(cs)),
        format!("(1 - candidate series / baseline series) x 100, series summed over {basis_hosts}"),
    );
    let (bp, cp) = (sum(|s| s.baseline.points), sum(|s| s.candidate.points));
    push(
        KpiName::DataPointReductionPct,
        ratio_pct(bp, cp),
        Undefined::ZeroBaseline,
        Some(as_f64(bp)),
        Some(as_f64(cp)),
        format!("(1 - candidate points / baseline points) x 100, points summed over {basis_hosts}"),
    );

    // Cost: list price before allotments (the marginal cost) under the experiment's model.
    let priced = model.map(|m| savings(m, &base_usage, &cand_usage));
    let cost = match &priced {
        Some(Ok(s)) if n > 0 => Some(ExperimentCost {
            measured: s.clone(),
            baseline_usage: base_usage.clone(),
            candidate_usage: cand_usage.clone(),
        }),
        _ => None,
    };
    match priced {
        Some(Ok(s)) => push(
            KpiName::CostReductionPct,
            s.gross_reduction_pct,
            Undefined::ZeroBaseline,
            Some(s.baseline.gross_monthly.as_f64_units()),
            Some(s.candidate.gross_monthly.as_f64_units()),
            format!(
                "(1 - candidate / baseline) x 100 of the monthly list price before allotments under `{model_id}` ({} {}), usage from {basis_hosts}",
                s.baseline.price_source.vendor, s.baseline.price_source.effective_date
            ),
        ),
        Some(Err(e)) => push(
            KpiName::CostReductionPct,
            None,
            Undefined::UnknownPricingModel,
            None,
            None,
            format!("could not price under `{model_id}`: {e}"),
        ),
        None => push(
            KpiName::CostReductionPct,
            None,
            Undefined::UnknownPricingModel,
            None,
            None,
            format!("pricing model `{model_id}` is not in the catalogue"),
        ),
    }

    // Fidelity: only samples whose input had process CPU or memory series measure it.
    let count = |f: fn(&crate::measure::Fidelity) -> bool| {
        all.iter().filter(|s| f(&s.candidate.fidelity)).count() as u64
    };
    let (with_cpu, with_memory, with_any) = (
        count(|f| f.cpu_pct.is_some()),
        count(|f| f.memory_pct.is_some()),
        count(|f| f.lower().is_some()),
    );
    push(
        KpiName::FidelityPct,
        candidate.fidelity_pct_mean,
        Undefined::NotMeasured,
        baseline.fidelity_pct_mean,
        candidate.fidelity_pct_mean,
        if with_any > 0 {
            format!(
                "mean of the lower of the candidate's measured CPU and memory shares over the {} of {basis_hosts} whose input had process CPU ({}) or memory ({}) series",
                group_digits(with_any),
                group_digits(with_cpu),
                group_digits(with_memory)
            )
        } else {
            format!(
                "not measured: no input of the {basis_hosts} had a process CPU or memory series, so there was no resource share to keep or lose"
            )
        },
    );
    push(
        KpiName::CriticalCoveragePct,
        candidate.critical_coverage_min_pct,
        Undefined::NoSamples,
        baseline.critical_coverage_min_pct,
        candidate.critical_coverage_min_pct,
        format!(
            "lowest share of critical processes and patterns present in the candidate over {basis_hosts}"
        ),
    );

    // Agent CPU: evaluation time per sample, candidate against baseline. Both variants
    // evaluate the same input in the same interval, so each sample is one pair.
    let (be, ce) = (
        sum(|s| s.baseline.eval_nanos),
        sum(|s| s.candidate.eval_nanos),
    );
    let overhead = (be > 0).then(|| (as_f64(ce) / as_f64(be) - 1.0) * 100.0);
    let b_cpu: Vec<f64> = all
        .iter()
        .map(|s| as_f64(s.baseline.eval_nanos.into()))
        .collect();
    let c_cpu: Vec<f64> = all
        .iter()
        .map(|s| as_f64(s.candidate.eval_nanos.into()))
        .collect();
    let cpu_test = if be > 0 {
        wilcoxon_signed_rank(&b_cpu, &c_cpu)
    } else {
        None
    };
    // No sample with per-variant CPU at all (agents whose variants share one process, such
    // as the otelcol runtime's Collector) is "not measured", not a zero baseline.
    let cpu_measured = be > 0 || ce > 0;
    push(
        KpiName::AgentCpuOverheadPct,
        overhead,
        if cpu_measured {
            Undefined::ZeroBaseline
        } else {
            Undefined::NotMeasured
        },
        Some(baseline.eval_nanos_mean),
        Some(candidate.eval_nanos_mean),
        if cpu_measured {
            format!(
                "(candidate / baseline - 1) x 100 of evaluation CPU nanoseconds summed over {basis_hosts}; Wilcoxon signed-rank test over the per-sample pairs"
            )
        } else {
            format!(
                "no per-variant CPU in {basis_hosts}: both variants ran in one Collector process, whose CPU and memory the agents report for the two together"
            )
        },
    );

    // Queries kept: a count, decided on every host's samples pooled (see
    // `KpiName::decided_pooled`).
    let kept = queries::kept(queries, &all, host_name);
    let (value, undefined, basis) = match &kept {
        None => (
            None,
            Undefined::NotMeasured,
            "not measured: the experiment has no query inventory (import rule files or dashboards before creating it)".to_owned(),
        ),
        Some(k) if k.samples == 0 => (
            None,
            Undefined::NotMeasured,
            format!(
                "not measured: none of the {basis_hosts} evaluated the experiment's {} queries (agents that predate query evaluation)",
                group_digits(queries.len() as u64)
            ),
        ),
        Some(k) => (
            Some(f64::from(k.kept.broken)),
            Undefined::NotMeasured,
            format!(
                "inventoried queries (of {}) that return nothing in the candidate's output where the baseline's had their series, in any of the {} of {basis_hosts} that evaluated them; {} answered, {} changed, {} unobserved{}",
                group_digits(queries.len() as u64),
                group_digits(k.samples),
                k.kept.answered,
                k.kept.changed,
                k.kept.unobserved,
                queries::broken_names(&k.kept)
            ),
        ),
    };
    push(KpiName::QueriesBroken, value, undefined, None, value, basis);

    let mut misses: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &all {
        for m in &s.candidate.critical.missing {
            *misses.entry(m).or_default() += 1;
        }
    }
    Measured {
        kpis,
        baseline,
        candidate,
        cpu_test,
        cost,
        critical_missing: misses
            .into_iter()
            .map(|(name, samples)| CriticalMiss {
                name: name.to_owned(),
                samples,
            })
            .collect(),
        queries: kept.map(|k| k.kept),
    }
}

#[derive(Default)]
struct BucketHost {
    n: u64,
    b: [u128; 3],
    c: [u128; 3],
}

/// In warm-up, hosts, fidelity sum, samples, samples with a fidelity.
type Bucket = (bool, BTreeMap<AgentId, BucketHost>, f64, u64, u64);

fn time_series(experiment: &Experiment, charted: &[(&MeasurementSample, bool)]) -> Vec<TimePoint> {
    let Some(first) = charted.iter().map(|(s, _)| s.taken_at).min() else {
        return Vec::new();
    };
    let last = charted
        .iter()
        .map(|(s, _)| s.taken_at)
        .max()
        .unwrap_or(first);
    let span = (last - first).num_seconds().max(0);
    let width = i64::from(experiment.spec.sample_interval_secs.max(1))
        .max((span + MAX_TIME_POINTS) / MAX_TIME_POINTS);
    // Anchor buckets at the end of warm-up so no bucket straddles it.
    let anchor = experiment.warmup_until.unwrap_or(first);
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    for &(s, warm) in charted {
        let index = (s.taken_at - anchor).num_seconds().div_euclid(width);
        let entry = buckets
            .entry(index)
            .or_insert_with(|| (warm, BTreeMap::new(), 0.0, 0, 0));
        let h = entry.1.entry(s.agent_id).or_default();
        h.n += 1;
        for (acc, v) in [(&mut h.b, &s.baseline), (&mut h.c, &s.candidate)] {
            acc[0] += u128::from(v.series);
            acc[1] += u128::from(v.points);
            acc[2] += u128::from(v.bytes);
        }
        if let Some(f) = s.candidate.fidelity.lower() {
            entry.2 += f;
            entry.4 += 1;
        }
        entry.3 += 1;
    }
    buckets
        .into_iter()
        .map(
            |(index, (warm, hosts, fidelity_sum, samples, with_fidelity))| {
                let mut b = [0.0; 3];
                let mut c = [0.0; 3];
                for h in hosts.values() {
                    for i in 0..3 {
                        b[i] += as_f64(h.b[i]) / as_f64(h.n.into());
                        c[i] += as_f64(h.c[i]) / as_f64(h.n.into());
                    }
                }
                let reduction = |b: f64, c: f64| (b > 0.0).then(|| (1.0 - c / b) * 100.0);
                TimePoint {
                    at: anchor + Duration::seconds(index * width),
                    width_secs: width,
                    in_warmup: warm,
                    samples,
                    hosts: hosts.len() as u64,
                    baseline: VariantPoint {
                        series: b[0],
                        points: b[1],
                        bytes: b[2],
                    },
                    candidate: VariantPoint {
                        series: c[0],
                        points: c[1],
                        bytes: c[2],
                    },
                    cardinality_reduction_pct: reduction(b[0], c[0]),
                    data_point_reduction_pct: reduction(b[1], c[1]),
                    fidelity_pct: (with_fidelity > 0)
                        .then(|| fidelity_sum / as_f64(with_fidelity.into())),
                }
            },
        )
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;
