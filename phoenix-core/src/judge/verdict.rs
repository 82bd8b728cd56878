//! The judge: criteria against measured KPIs, with the evidence checked first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Comparison, Criterion, CriterionResult, HostCriterion, HostVerdict, KpiName, SignedRank,
    Verdict, VerdictOutcome,
};
use crate::experiment::{Experiment, TargetState};
use crate::kpi::{ExperimentKpis, Undefined};

/// How much evidence the judge asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Judged samples needed in total.
    pub min_samples: u64,
    /// Judged samples needed from every live host.
    pub min_samples_per_host: u64,
    /// Significance level of the paired test of an overhead (one-sided p < alpha: the
    /// candidate is significantly higher than the baseline).
    pub alpha: f64,
    /// Fewest nonzero pairs of the paired test for an overhead above its threshold to be
    /// waved through as noise when the test finds the candidate not significantly higher.
    /// With fewer pairs an excess over the threshold is missed: below 5 pairs the test
    /// cannot reach p < 0.05 at all (its smallest one-sided p is `2^-n`), so its silence
    /// proves nothing.
    #[serde(default = "default_min_pairs_to_waive")]
    pub min_pairs_to_waive: u64,
}

fn default_min_pairs_to_waive() -> u64 {
    10
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            min_samples: 6,
            min_samples_per_host: 3,
            alpha: 0.05,
            min_pairs_to_waive: default_min_pairs_to_waive(),
        }
    }
}

/// The verdict on `experiment` from its KPIs, with the default [`JudgeConfig`].
#[must_use]
pub fn judge(experiment: &Experiment, kpis: &ExperimentKpis, now: DateTime<Utc>) -> Verdict {
    judge_with(experiment, kpis, now, &JudgeConfig::default())
}

fn undefined_words(u: Option<Undefined>) -> &'static str {
    match u {
        Some(Undefined::NoSamples) | None => "no sample was judged",
        Some(Undefined::ZeroBaseline) => {
            "the baseline measured zero, so a relative change is undefined (zero-baseline trap: it is not a 100% reduction)"
        }
        Some(Undefined::NotMeasured) => "the agents do not report what it needs",
        Some(Undefined::UnknownPricingModel) => "the pricing model is not in the catalogue",
    }
}

fn is_overhead(kpi: KpiName) -> bool {
    matches!(
        kpi,
        KpiName::AgentCpuOverheadPct | KpiName::AgentRssOverheadPct
    )
}

/// Fewest voting hosts whose median one host's outlier cannot move past the honest ones.
pub const FLEET_ROBUST_HOSTS: usize = 3;

/// The fleet value of a criterion from the hosts' own values: their median. With an even
/// number of values, the less favourable of the two middle ones for `comparison` (the
/// lower for `AtLeast`, the higher for `AtMost`), so that a tie between honest and
/// dishonest halves never passes. `None` when `values` is empty; NaN values are ignored.
///
/// With `n` hosts, the median moves only when more than `(n - 1) / 2` of them move: one
/// host's value, however extreme, cannot decide the verdict of three hosts or more.
#[must_use]
pub fn fleet_median(values: &[f64], comparison: Comparison) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        return Some(sorted[n / 2]);
    }
    let (low, high) = (sorted[n / 2 - 1], sorted[n / 2]);
    Some(match comparison {
        Comparison::AtLeast => low,
        Comparison::AtMost => high,
    })
}

/// A criterion against one value: whether it is met and why, in words (without the
/// criterion's threshold, which the caller adds).
///
/// An overhead (`at_most`) with its paired test, `v` the point figure (a ratio of sums):
///
/// 1. `v <= threshold`: met.
/// 2. `v > threshold` and the candidate is significantly higher (one-sided p < `alpha`):
///    missed.
/// 3. `v > threshold`, not significant, fewer than `min_pairs_to_waive` nonzero pairs (or
///    no test): missed. Too few pairs to tell an excess from noise is not a pass.
/// 4. `v > threshold`, not significant, at least `min_pairs_to_waive` nonzero pairs: met,
///    and the words say that the point figure and the test disagree (the excess comes from
///    a few intervals, the typical pair does not show it).
pub(super) fn decide(
    criterion: &Criterion,
    value: Option<f64>,
    undefined: Option<Undefined>,
    test: Option<&SignedRank>,
    config: &JudgeConfig,
) -> (Option<bool>, String) {
    let Some(v) = value else {
        return (
            None,
            format!("could not be measured: {}", undefined_words(undefined)),
        );
    };
    let met = criterion.comparison.holds(v, criterion.threshold);
    let paired = is_overhead(criterion.kpi) && criterion.comparison == Comparison::AtMost;
    let alpha = config.alpha;
    let words = |t: &SignedRank| {
        format!(
            "Wilcoxon signed-rank over {} nonzero pair(s) of {}: candidate higher in {}, W+ = {:.1}, one-sided p = {:.4}",
            t.n, t.pairs, t.candidate_higher, t.w_plus, t.p_greater
        )
    };
    match test {
        _ if met => (
            Some(true),
            match test {
                Some(t) => format!("met ({})", words(t)),
                None => "met".to_owned(),
            },
        ),
        None if paired => (
            Some(false),
            "missed: above the threshold, and no paired test to tell the excess from noise"
                .to_owned(),
        ),
        Some(t) if paired && t.p_greater < alpha => (
            Some(false),
            format!(
                "missed: above the threshold, and the candidate is significantly higher than the baseline ({}; p < {alpha})",
                words(t)
            ),
        ),
        Some(t) if paired && t.n < config.min_pairs_to_waive => (
            Some(false),
            format!(
                "missed: the point figure (a ratio of sums) is above the threshold; the paired test does not find the candidate significantly higher ({}; p >= {alpha}), but with fewer than {} nonzero pairs it cannot show that the excess is noise",
                words(t),
                config.min_pairs_to_waive
            ),
        ),
        Some(t) if paired => (
            Some(true),
            format!(
                "met although the point figure (a ratio of sums) is above the threshold: the figure and the paired test disagree, the excess comes from a few intervals and the typical pair does not show it ({}; p >= {alpha} over at least {} nonzero pairs)",
                words(t),
                config.min_pairs_to_waive
            ),
        ),
        Some(t) => (Some(false), format!("missed ({})", words(t))),
        None => (Some(false), "missed".to_owned()),
    }
}

fn find(kpis: &[crate::kpi::KpiValue], kpi: KpiName) -> Option<&crate::kpi::KpiValue> {
    kpis.iter().find(|k| k.kpi == kpi)
}

/// The criterion on every host's own values, then on their median (see [`fleet_median`]).
/// Overheads use the paired test of the samples in question: each host's own for its
/// value, the pooled one for the fleet's.
fn assess(criterion: &Criterion, kpis: &ExperimentKpis, config: &JudgeConfig) -> CriterionResult {
    let wanted = format!(
        "threshold {} {}{}",
        criterion.comparison.symbol(),
        criterion.threshold,
        criterion.kpi.unit()
    );
    let kind = if criterion.critical {
        "critical"
    } else {
        "non-critical"
    };
    let cpu = criterion.kpi == KpiName::AgentCpuOverheadPct;
    let Some(pooled) = kpis.kpi(criterion.kpi) else {
        return CriterionResult {
            criterion: criterion.clone(),
            measured: None,
            passed: None,
            reason: match criterion.kpi.withdrawn() {
                Some(why) => format!(
                    "{} could not be measured: {why} ({wanted}, {kind})",
                    criterion.kpi
                ),
                None => format!("{} was not computed ({wanted}, {kind})", criterion.kpi),
            },
            baseline: None,
            candidate: None,
            paired_test: None,
            pooled: None,
            per_host: Vec::new(),
        };
    };
    let per_host: Vec<HostCriterion> = kpis
        .per_host
        .iter()
        .map(|h| {
            let own = find(&h.kpis, criterion.kpi);
            let value = own.and_then(|k| k.value);
            let test = if cpu { h.agent_cpu_test.as_ref() } else { None };
            let (passed, _) = decide(
                criterion,
                value,
                own.and_then(|k| k.undefined),
                test,
                config,
            );
            HostCriterion {
                agent_id: h.host.agent_id,
                host: h.host.host.clone(),
                voting: h.samples >= config.min_samples_per_host,
                measured: value,
                passed,
            }
        })
        .collect();
    let votes: Vec<f64> = per_host
        .iter()
        .filter(|h| h.voting)
        .filter_map(|h| h.measured)
        .collect();
    let pooled_decides = criterion.kpi.decided_pooled();
    let measured = if pooled_decides {
        pooled.value
    } else {
        fleet_median(&votes, criterion.comparison)
    };
    // Nothing to take the median of: say why with the pooled KPI's reason, or a voting
    // host's when the pooled figure has a value none of the voters has.
    let undefined = pooled.undefined.or_else(|| {
        kpis.per_host
            .iter()
            .filter(|h| h.samples >= config.min_samples_per_host)
            .find_map(|h| find(&h.kpis, criterion.kpi).and_then(|k| k.undefined))
    });
    let paired_test = if cpu {
        kpis.agent_cpu_test.clone()
    } else {
        None
    };
    let (passed, verdict_words) =
        decide(criterion, measured, undefined, paired_test.as_ref(), config);
    let reason = match measured {
        Some(v) if pooled_decides => format!(
            "{} = {} ({wanted}, {kind}; over every host's samples: {}): {verdict_words}",
            criterion.kpi,
            criterion.kpi.format(v),
            pooled.basis
        ),
        Some(v) => format!(
            "{} = {} ({wanted}, {kind}; median of {} host(s){}): {verdict_words}",
            criterion.kpi,
            criterion.kpi.format(v),
            votes.len(),
            pooled
                .value
                .map(|p| format!(", all samples pooled {}", criterion.kpi.format(p)))
                .unwrap_or_default()
        ),
        None => format!("{} {verdict_words} ({wanted}, {kind})", criterion.kpi),
    };
    CriterionResult {
        criterion: criterion.clone(),
        measured,
        passed,
        reason,
        baseline: pooled.baseline,
        candidate: pooled.candidate,
        paired_test,
        pooled: pooled.value,
        per_host,
    }
}

/// The verdict on `experiment` from its KPIs.
///
/// Evidence first: too few judged samples, a live host without enough samples, or a zero
/// baseline make the verdict `Inconclusive` whatever the criteria say. Each criterion is
/// then decided on the fleet value: the median of the hosts' own values (hosts with at
/// least `min_samples_per_host` judged samples vote; see [`fleet_median`]), so no single
/// host decides a verdict of three hosts or more. Then: a missed
/// critical criterion is `Fail`; a critical criterion that cannot be measured is
/// `Inconclusive`; a missed or unmeasurable non-critical one is `Marginal`; else `Pass`.
#[must_use]
pub fn judge_with(
    experiment: &Experiment,
    kpis: &ExperimentKpis,
    now: DateTime<Utc>,
    config: &JudgeConfig,
) -> Verdict {
    let criteria = if experiment.spec.criteria.is_empty() {
        Criterion::defaults()
    } else {
        experiment.spec.criteria.clone()
    };
    let mut evidence = Vec::new();
    let counts = &kpis.samples;
    if counts.judged < config.min_samples {
        evidence.push(format!(
            "too few samples: {} judged after warm-up ({} in warm-up and {} after the end excluded), at least {} needed",
            counts.judged, counts.in_warmup, counts.after_end, config.min_samples
        ));
    }
    for host in &kpis.hosts.missing {
        evidence.push(format!(
            "missing host: {} ({}) sent no sample after warm-up",
            host.host, host.agent_id
        ));
    }
    for h in &kpis.per_host {
        let live = !matches!(h.state, Some(TargetState::Lost | TargetState::Failed));
        if live && h.samples < config.min_samples_per_host {
            evidence.push(format!(
                "too few samples from {}: {} after warm-up, at least {} needed per host",
                h.host.host, h.samples, config.min_samples_per_host
            ));
        }
    }
    let zero_baseline = kpis
        .kpi(KpiName::CardinalityReductionPct)
        .is_some_and(|k| k.undefined == Some(Undefined::ZeroBaseline));
    if zero_baseline {
        evidence.push(
            "zero baseline: the baseline produced no series, so no reduction can be measured (an empty baseline is not a 100% reduction)"
                .to_owned(),
        );
    }
    let mut notes: Vec<String> = kpis
        .hosts
        .excluded
        .iter()
        .map(|h| {
            format!(
                "{} ({}) was lost or failed and is excluded",
                h.host, h.agent_id
            )
        })
        .collect();

    let results: Vec<CriterionResult> = criteria.iter().map(|c| assess(c, kpis, config)).collect();
    let hosts: Vec<HostVerdict> = kpis
        .per_host
        .iter()
        .enumerate()
        .map(|(i, h)| HostVerdict {
            agent_id: h.host.agent_id,
            host: h.host.host.clone(),
            samples: h.samples,
            voting: h.samples >= config.min_samples_per_host,
            passed_critical: results
                .iter()
                .filter(|r| r.criterion.critical)
                .all(|r| r.per_host.get(i).is_some_and(|p| p.passed == Some(true))),
        })
        .collect();
    let voting = hosts.iter().filter(|h| h.voting).count();
    if voting > 0 && voting < FLEET_ROBUST_HOSTS {
        notes.push(format!(
            "only {voting} host(s) voted: each criterion is decided on the median of the hosts' own values, and with fewer than {FLEET_ROBUST_HOSTS} hosts one host's outlier can still move it"
        ));
    }
    // Hosts the median outvoted, named so that nobody mistakes a fleet pass for every host's.
    for r in results.iter().filter(|r| r.passed == Some(true)) {
        for h in r
            .per_host
            .iter()
            .filter(|h| h.voting && h.passed == Some(false))
        {
            notes.push(format!(
                "{} misses {} on its own values ({}), outvoted by the median of the fleet",
                h.host,
                r.criterion.kpi,
                h.measured
                    .map_or_else(|| "unmeasured".to_owned(), |v| r.criterion.kpi.format(v))
            ));
        }
    }
    let critical_missed = results
        .iter()
        .any(|r| r.criterion.critical && r.passed == Some(false));
    let critical_unknown = results
        .iter()
        .any(|r| r.criterion.critical && r.passed.is_none());
    let other_short = results
        .iter()
        .any(|r| !r.criterion.critical && r.passed != Some(true));
    let outcome = if !evidence.is_empty() {
        VerdictOutcome::Inconclusive
    } else if critical_missed {
        VerdictOutcome::Fail
    } else if critical_unknown {
        VerdictOutcome::Inconclusive
    } else if other_short {
        VerdictOutcome::Marginal
    } else {
        VerdictOutcome::Pass
    };

    let mut reasons = Vec::new();
    reasons.push(match outcome {
        VerdictOutcome::Pass => format!("all {} criteria met", results.len()),
        VerdictOutcome::Marginal => {
            "every critical criterion met, some non-critical criterion missed or unmeasured"
                .to_owned()
        }
        VerdictOutcome::Fail => "a critical criterion was missed".to_owned(),
        VerdictOutcome::Inconclusive if !evidence.is_empty() => {
            "not enough evidence to judge".to_owned()
        }
        VerdictOutcome::Inconclusive => "a critical criterion could not be measured".to_owned(),
    });
    reasons.extend(evidence);
    reasons.extend(
        results
            .iter()
            .filter(|r| r.passed != Some(true) || outcome == VerdictOutcome::Pass)
            .map(|r| r.reason.clone()),
    );
    reasons.append(&mut notes);
    Verdict {
        outcome,
        reasons,
        criteria: results,
        samples: counts.judged,
        decided_at: now,
        hosts,
    }
}
