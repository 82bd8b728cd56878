//! One test per verdict, the evidence rules, and the distribution test behind overheads.

use chrono::Duration;

use super::*;
use crate::cost::Catalogue;
use crate::experiment::{Experiment, TargetState};
use crate::kpi::tests::{BASE, GOOD, V, experiment, run, t0};
use crate::kpi::{ExperimentKpis, compute};

fn verdict_of(
    e: &Experiment,
    samples: &[crate::measure::MeasurementSample],
) -> (Verdict, ExperimentKpis) {
    let k = compute(e, samples, &Catalogue::builtin());
    (judge(e, &k, t0() + Duration::seconds(700)), k)
}

fn result(v: &Verdict, kpi: KpiName) -> &CriterionResult {
    v.criteria.iter().find(|c| c.criterion.kpi == kpi).unwrap()
}

#[test]
fn pass_with_measured_values_next_to_thresholds() {
    let e = experiment(&["web-1", "web-2"]);
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Pass);
    assert_eq!(v.samples, 20);
    assert_eq!(v.decided_at, t0() + Duration::seconds(700));
    assert_eq!(v.criteria.len(), Criterion::defaults().len());
    let card = result(&v, KpiName::CardinalityReductionPct);
    assert_eq!(card.passed, Some(true));
    assert!((card.measured.unwrap() - 70.0).abs() < 1e-9);
    assert_eq!(card.criterion.threshold, 50.0);
    assert_eq!(
        (card.baseline, card.candidate),
        (Some(20_000.0), Some(6_000.0))
    );
    let cpu = result(&v, KpiName::AgentCpuOverheadPct);
    assert_eq!(cpu.passed, Some(true));
    assert!(cpu.statistic.is_some());
    assert!(v.criteria.iter().all(|c| c.passed == Some(true)));
}

#[test]
fn marginal_when_a_non_critical_criterion_is_missed() {
    let e = experiment(&["web-1", "web-2"]);
    let low_fidelity = V(300, 300, 15_000, 11_000, 70.0);
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, low_fidelity));
    assert_eq!(v.outcome, VerdictOutcome::Marginal);
    let f = result(&v, KpiName::FidelityPct);
    assert_eq!((f.passed, f.measured), (Some(false), Some(70.0)));
}

#[test]
fn fail_when_a_critical_criterion_is_missed() {
    let e = experiment(&["web-1", "web-2"]);
    let weak = V(700, 700, 35_000, 11_000, 95.0);
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, weak));
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    let c = result(&v, KpiName::CardinalityReductionPct);
    assert_eq!(c.passed, Some(false));
    assert!((c.measured.unwrap() - 30.0).abs() < 1e-9);
}

#[test]
fn fail_when_a_critical_process_disappears() {
    let e = experiment(&["web-1", "web-2"]);
    let mut samples = run(&e, 10, BASE, GOOD);
    samples[3]
        .candidate
        .critical
        .present
        .retain(|p| p != "postgres");
    samples[3]
        .candidate
        .critical
        .missing
        .push("postgres".to_owned());
    let (v, k) = verdict_of(&e, &samples);
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    assert_eq!(
        result(&v, KpiName::CriticalCoveragePct).measured,
        Some(50.0)
    );
    assert_eq!(k.critical_missing[0].samples, 1);
}

// The zero-baseline trap: both variants empty. A naive "1 - 0/0" is NaN, and a naive
// "0 series left" reads as a 100% reduction and passes. The judge says Inconclusive.
#[test]
fn inconclusive_on_a_zero_baseline() {
    let e = experiment(&["web-1", "web-2"]);
    let zero = V(0, 0, 0, 0, 100.0);
    let (v, _) = verdict_of(&e, &run(&e, 10, zero, zero));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    let c = result(&v, KpiName::CardinalityReductionPct);
    assert_eq!((c.passed, c.measured), (None, None));
    assert!(v.reasons.len() >= 2);
}

#[test]
fn inconclusive_with_too_few_samples() {
    let e = experiment(&["web-1", "web-2"]);
    // Two judged samples per host: 4 in all (< 6), 2 per host (< 3). The criteria would pass.
    let (v, _) = verdict_of(&e, &run(&e, 2, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    assert_eq!(v.samples, 4);
    assert!(v.criteria.iter().all(|c| c.passed == Some(true)));
    // Warm-up samples do not count: plenty of samples, all in warm-up.
    let mut warm = run(&e, 10, BASE, GOOD);
    for s in &mut warm {
        s.taken_at = t0() + Duration::seconds(30);
    }
    let (v, k) = verdict_of(&e, &warm);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    assert_eq!((k.samples.judged, k.samples.in_warmup), (0, 20));
}

#[test]
fn inconclusive_when_a_live_host_is_missing_but_lost_hosts_are_excluded() {
    let mut e = experiment(&["web-1", "web-2", "web-3"]);
    let samples: Vec<_> = run(&e, 10, BASE, GOOD)
        .into_iter()
        .filter(|s| s.agent_id != e.targets[2].agent_id)
        .collect();
    let (v, _) = verdict_of(&e, &samples);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    // Once web-3 is known to be lost it leaves the denominator.
    e.targets[2].state = TargetState::Lost;
    let (v, _) = verdict_of(&e, &samples);
    assert_eq!(v.outcome, VerdictOutcome::Pass);
}

#[test]
fn inconclusive_when_a_critical_criterion_cannot_be_measured() {
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec
        .criteria
        .push(Criterion::at_most(KpiName::AgentRssOverheadPct, 20.0, true));
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    assert_eq!(result(&v, KpiName::AgentRssOverheadPct).passed, None);
    // Non-critical: marginal instead.
    e.spec.criteria.last_mut().unwrap().critical = false;
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Marginal);
}

#[test]
fn cpu_overhead_fails_only_when_significantly_higher() {
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec.criteria = vec![Criterion::at_most(KpiName::AgentCpuOverheadPct, 5.0, true)];
    // Candidate clearly slower (10% more, every sample): significant, fails.
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    let t = r.statistic.as_ref().unwrap();
    assert!(t.p_greater < 0.05);
    assert_eq!(t.n_baseline, 20);
    // Noisy samples whose means differ by more than 5% but whose distributions overlap.
    let mut samples = run(&e, 10, BASE, GOOD);
    for (i, s) in samples.iter_mut().enumerate() {
        s.baseline.eval_nanos = [9_000, 20_000, 10_000, 11_000][i % 4];
        s.candidate.eval_nanos = [9_500, 10_500, 30_000, 10_200][(i + 1) % 4];
    }
    let (v, _) = verdict_of(&e, &samples);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    assert!(r.measured.unwrap() > 5.0);
    assert!(r.statistic.as_ref().unwrap().p_greater >= 0.05);
    assert_eq!(r.passed, Some(true));
    assert_eq!(v.outcome, VerdictOutcome::Pass);
}

#[test]
fn verdict_round_trips_as_json() {
    let e = experiment(&["web-1", "web-2"]);
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["outcome"], "pass");
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back.outcome, v.outcome);
    assert_eq!(back.criteria.len(), v.criteria.len());
}
