//! The judge: criteria against measured KPIs, with the evidence checked first.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Comparison, Criterion, CriterionResult, KpiName, Verdict, VerdictOutcome};
use crate::experiment::{Experiment, TargetState};
use crate::kpi::{ExperimentKpis, Undefined};

/// How much evidence the judge asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// Judged samples needed in total.
    pub min_samples: u64,
    /// Judged samples needed from every live host.
    pub min_samples_per_host: u64,
    /// Significance level of distribution tests: an overhead above its threshold fails only
    /// when the candidate is significantly higher (one-sided p < alpha).
    pub alpha: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            min_samples: 6,
            min_samples_per_host: 3,
            alpha: 0.05,
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

fn assess(criterion: &Criterion, kpis: &ExperimentKpis, alpha: f64) -> CriterionResult {
    let wanted = format!(
        "threshold {} {}%",
        criterion.comparison.symbol(),
        criterion.threshold
    );
    let kind = if criterion.critical {
        "critical"
    } else {
        "non-critical"
    };
    let Some(value) = kpis.kpi(criterion.kpi) else {
        return CriterionResult {
            criterion: criterion.clone(),
            measured: None,
            passed: None,
            reason: format!("{} was not computed ({wanted}, {kind})", criterion.kpi),
            baseline: None,
            candidate: None,
            statistic: None,
        };
    };
    let statistic = (criterion.kpi == KpiName::AgentCpuOverheadPct)
        .then(|| kpis.agent_cpu_test.clone())
        .flatten();
    let (passed, reason) = match value.value {
        None => (
            None,
            format!(
                "{} could not be measured: {} ({wanted}, {kind})",
                criterion.kpi,
                undefined_words(value.undefined)
            ),
        ),
        Some(v) => {
            let met = criterion.comparison.holds(v, criterion.threshold);
            let measured = format!("{} = {v:.2}% ({wanted}, {kind})", criterion.kpi);
            match &statistic {
                Some(t)
                    if !met
                        && is_overhead(criterion.kpi)
                        && criterion.comparison == Comparison::AtMost
                        && t.p_greater >= alpha =>
                {
                    (
                        Some(true),
                        format!(
                            "{measured}: above the threshold, but the candidate is not significantly higher than the baseline (Mann-Whitney U = {:.1}, p = {:.4} >= {alpha}): met",
                            t.u_candidate, t.p_greater
                        ),
                    )
                }
                Some(t) => (
                    Some(met),
                    format!(
                        "{measured}: {} (Mann-Whitney U = {:.1}, one-sided p = {:.4})",
                        if met { "met" } else { "missed" },
                        t.u_candidate,
                        t.p_greater
                    ),
                ),
                None => (
                    Some(met),
                    format!("{measured}: {}", if met { "met" } else { "missed" }),
                ),
            }
        }
    };
    CriterionResult {
        criterion: criterion.clone(),
        measured: value.value,
        passed,
        reason,
        baseline: value.baseline,
        candidate: value.candidate,
        statistic,
    }
}

/// The verdict on `experiment` from its KPIs.
///
/// Evidence first: too few judged samples, a live host without enough samples, or a zero
/// baseline make the verdict `Inconclusive` whatever the criteria say. Then: a missed
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

    let results: Vec<CriterionResult> = criteria
        .iter()
        .map(|c| assess(c, kpis, config.alpha))
        .collect();
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
    }
}
