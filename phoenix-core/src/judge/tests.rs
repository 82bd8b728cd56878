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
    assert!(cpu.paired_test.is_some());
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
    // Two judged samples per host: 4 in all (< 6), 2 per host (< 3). Each host's own
    // values would pass, but no host has enough samples to vote.
    let (v, _) = verdict_of(&e, &run(&e, 2, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    assert_eq!(v.samples, 4);
    assert!(v.criteria.iter().all(|c| c.passed.is_none()));
    assert!(v.criteria.iter().all(|c| {
        c.per_host
            .iter()
            .all(|h| !h.voting && h.passed == Some(true))
    }));
    assert_eq!(v.hosts_passing_critical(), 0);
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
    // No per-variant CPU (the otelcol runtime): the CPU overhead is not measured.
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec.criteria = Criterion::defaults();
    e.spec.criteria.last_mut().unwrap().critical = true;
    let no_cpu = |v: V| V(v.0, v.1, v.2, 0, v.4);
    let samples = run(&e, 10, no_cpu(BASE), no_cpu(GOOD));
    let (v, _) = verdict_of(&e, &samples);
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    assert_eq!((r.measured, r.passed), (None, None));
    // Non-critical: marginal instead.
    e.spec.criteria.last_mut().unwrap().critical = false;
    let (v, _) = verdict_of(&e, &samples);
    assert_eq!(v.outcome, VerdictOutcome::Marginal);
}

#[test]
fn a_stored_criterion_on_the_withdrawn_rss_kpi_is_unmeasured_and_says_why() {
    // Validation refuses it now; an experiment stored before the withdrawal may carry it.
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec
        .criteria
        .push(Criterion::at_most(KpiName::AgentRssOverheadPct, 20.0, true));
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
    let r = result(&v, KpiName::AgentRssOverheadPct);
    assert_eq!(r.passed, None);
    assert!(r.reason.contains("one process"), "{}", r.reason);
    e.spec.criteria.last_mut().unwrap().critical = false;
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Marginal);
}

#[test]
fn cpu_overhead_fails_when_significantly_higher() {
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec.criteria = vec![Criterion::at_most(KpiName::AgentCpuOverheadPct, 5.0, true)];
    // Candidate clearly slower (10% more, every sample): significant, fails.
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    let t = r.paired_test.as_ref().unwrap();
    assert!(t.p_greater < 0.05);
    assert_eq!((t.pairs, t.n, t.candidate_higher), (20, 20, 20));
    assert!(r.reason.contains("significantly higher"), "{}", r.reason);
}

/// Every sample's evaluation times, in sample order.
fn set_eval(samples: &mut [crate::measure::MeasurementSample], base: &[u64], cand: &[u64]) {
    for (i, s) in samples.iter_mut().enumerate() {
        s.baseline.eval_nanos = base[i % base.len()];
        s.candidate.eval_nanos = cand[i % cand.len()];
    }
}

#[test]
fn one_outlier_interval_is_waived_only_with_enough_pairs_and_the_reason_says_so() {
    // The case: the candidate is cheaper in every interval but one, where it spent
    // 200 us more. The ratio of sums reads a large overhead; the ranks read none.
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec.criteria = vec![Criterion::at_most(KpiName::AgentCpuOverheadPct, 50.0, true)];
    let mut samples = run(&e, 10, BASE, GOOD);
    set_eval(&mut samples, &[10_000], &[9_000]);
    samples[0].candidate.eval_nanos = 200_000;
    let (v, k) = verdict_of(&e, &samples);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    assert!(r.measured.unwrap() > 50.0, "{:?}", r.measured);
    let t = r.paired_test.as_ref().unwrap();
    assert!(t.p_greater > 0.99 && t.n >= 10, "{t:?}");
    assert_eq!(r.passed, Some(true));
    assert!(r.reason.contains("disagree"), "{}", r.reason);
    assert!(r.reason.contains("candidate higher in 1,"), "{}", r.reason);
    assert_eq!(v.outcome, VerdictOutcome::Pass);
    assert!(
        v.reasons.iter().any(|x| x.contains("disagree")),
        "{:?}",
        v.reasons
    );
    // The host with the outlier waives it on its own 10 pairs too.
    assert!(
        k.per_host
            .iter()
            .all(|h| h.agent_cpu_test.as_ref().unwrap().n == 10)
    );

    // The same excess at the minimum sample count (3 per host, 6 in all): too few pairs
    // for the test's silence to mean anything, so the excess is missed.
    let mut few = run(&e, 3, BASE, GOOD);
    set_eval(&mut few, &[10_000], &[9_000]);
    few[0].candidate.eval_nanos = 200_000;
    let (v, _) = verdict_of(&e, &few);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    assert!(r.measured.unwrap() > 50.0);
    assert!(r.paired_test.as_ref().unwrap().p_greater >= 0.05);
    assert_eq!(r.passed, Some(false));
    assert!(
        r.reason.contains("cannot show that the excess is noise"),
        "{}",
        r.reason
    );
    assert_eq!(v.outcome, VerdictOutcome::Fail);
}

fn paired(n: u64, p_greater: f64) -> SignedRank {
    SignedRank {
        pairs: n,
        zeros: 0,
        n,
        candidate_higher: n / 2,
        w_plus: 0.0,
        w_minus: 0.0,
        ties: false,
        z: None,
        p_greater,
        p_less: 1.0 - p_greater,
        p_two_sided: 1.0,
        effect: 0.5,
        method: SignedRankMethod::Exact,
    }
}

#[test]
fn overhead_rule_at_its_boundaries() {
    let config = JudgeConfig::default();
    let (alpha, min) = (config.alpha, config.min_pairs_to_waive);
    assert_eq!((alpha, min), (0.05, 10));
    let c = Criterion::at_most(KpiName::AgentCpuOverheadPct, 20.0, true);
    let decide =
        |v: f64, t: Option<SignedRank>| verdict::decide(&c, Some(v), None, t.as_ref(), &config).0;
    let above = 20.0 + 1e-9;
    let (below_alpha, above_alpha) = (alpha - 1e-9, alpha + 1e-9);
    // Exactly at the threshold: met, whatever the test says.
    assert_eq!(decide(20.0, Some(paired(30, 1e-6))), Some(true));
    assert_eq!(decide(20.0, Some(paired(3, 1e-6))), Some(true));
    assert_eq!(decide(20.0, None), Some(true));
    // Just above, significant: missed, however many pairs.
    assert_eq!(decide(above, Some(paired(min, below_alpha))), Some(false));
    assert_eq!(decide(above, Some(paired(1_000, below_alpha))), Some(false));
    // Just above, not significant: met only from min pairs on.
    assert_eq!(decide(above, Some(paired(min, above_alpha))), Some(true));
    assert_eq!(decide(above, Some(paired(min, alpha))), Some(true));
    assert_eq!(
        decide(above, Some(paired(min - 1, above_alpha))),
        Some(false)
    );
    assert_eq!(decide(above, Some(paired(min - 1, 1.0))), Some(false));
    // At the judge's minimum sample count (3 per host): never waived.
    assert_eq!(decide(above, Some(paired(3, 1.0))), Some(false));
    // Zeros do not count as pairs: 12 pairs, 3 of them equal, 9 ranked.
    let mut t = paired(12, 0.5);
    t.zeros = 3;
    t.n = 9;
    assert_eq!(decide(above, Some(t)), Some(false));
    // No test at all: an excess is missed.
    assert_eq!(decide(above, None), Some(false));
    // Below the threshold: met even when the candidate is significantly higher.
    assert_eq!(decide(19.0, Some(paired(100, 1e-9))), Some(true));
    // The waiver is for overheads only: an at-least criterion is decided on its value.
    let coverage = Criterion::at_least(KpiName::CriticalCoveragePct, 100.0, true);
    assert_eq!(
        verdict::decide(&coverage, Some(99.0), None, Some(&paired(50, 1.0)), &config).0,
        Some(false)
    );
}

#[test]
fn noisy_overhead_with_enough_pairs_is_met_and_says_why() {
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec.criteria = vec![Criterion::at_most(KpiName::AgentCpuOverheadPct, 5.0, true)];
    // Noisy samples whose sums differ by more than 5% but whose pairs point both ways.
    let mut samples = run(&e, 10, BASE, GOOD);
    set_eval(
        &mut samples,
        &[9_000, 20_000, 10_000, 11_000],
        &[9_500, 30_000, 9_800, 10_500],
    );
    let (v, _) = verdict_of(&e, &samples);
    let r = result(&v, KpiName::AgentCpuOverheadPct);
    assert!(r.measured.unwrap() > 5.0);
    let t = r.paired_test.as_ref().unwrap();
    assert!(t.p_greater >= 0.05, "{t:?}");
    assert_eq!(r.passed, Some(true));
    assert!(r.reason.contains("disagree"), "{}", r.reason);
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

// A host that lies within bounds: its baseline claims a million series, its candidate one,
// so its own cardinality reduction is ~100%; the pooled ratio of sums would follow it.
fn lying_host(samples: &mut [crate::measure::MeasurementSample], e: &Experiment, host: usize) {
    for s in samples
        .iter_mut()
        .filter(|s| s.agent_id == e.targets[host].agent_id)
    {
        s.baseline.series = 1_000_000;
        s.candidate.series = 1;
    }
}

#[test]
fn one_lying_host_cannot_pass_a_failing_fleet() {
    let e = experiment(&["web-1", "web-2", "web-3", "web-4", "liar"]);
    // Four honest hosts keep 70% of their series: a 30% reduction, below the 50% needed.
    let weak = V(700, 700, 35_000, 11_000, 95.0);
    let mut samples = run(&e, 10, BASE, weak);
    lying_host(&mut samples, &e, 4);
    let (v, k) = verdict_of(&e, &samples);
    // Pooled over every sample, the liar's million series dominate: ~99.7% "reduction".
    let pooled = k
        .kpi(KpiName::CardinalityReductionPct)
        .unwrap()
        .value
        .unwrap();
    assert!(pooled > 99.0, "{pooled}");
    // The fleet value is the median of the hosts' own values: an honest 30%.
    let c = result(&v, KpiName::CardinalityReductionPct);
    assert!((c.measured.unwrap() - 30.0).abs() < 1e-9);
    assert_eq!(c.pooled, Some(pooled));
    assert_eq!(c.passed, Some(false));
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    let liar = c.per_host.iter().find(|h| h.host == "liar").unwrap();
    assert_eq!(liar.passed, Some(true));
    assert!(liar.measured.unwrap() > 99.9);
    // Only the liar meets every critical criterion on its own values.
    assert_eq!(v.hosts_passing_critical(), 1);
    assert_eq!(v.hosts.len(), 5);
}

#[test]
fn one_lying_host_cannot_fail_a_passing_fleet() {
    let e = experiment(&["web-1", "web-2", "web-3", "web-4", "liar"]);
    let mut samples = run(&e, 10, BASE, GOOD);
    // The liar claims its candidate kept every series and lost every critical process.
    for s in samples
        .iter_mut()
        .filter(|s| s.agent_id == e.targets[4].agent_id)
    {
        s.baseline.series = 10;
        s.candidate.series = 10_000_000;
        s.candidate.critical.present.clear();
        s.candidate.critical.missing = s.candidate.critical.expected.clone();
    }
    let (v, k) = verdict_of(&e, &samples);
    // Pooled, the liar would fail both critical criteria.
    assert!(
        k.kpi(KpiName::CardinalityReductionPct)
            .unwrap()
            .value
            .unwrap()
            < 0.0
    );
    assert_eq!(
        k.kpi(KpiName::CriticalCoveragePct).unwrap().value,
        Some(0.0)
    );
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{:?}", v.reasons);
    let c = result(&v, KpiName::CardinalityReductionPct);
    assert!((c.measured.unwrap() - 70.0).abs() < 1e-9);
    assert_eq!(
        result(&v, KpiName::CriticalCoveragePct).measured,
        Some(100.0)
    );
    assert_eq!(v.hosts_passing_critical(), 4);
    // The outvoted host is named in the reasons.
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("liar misses critical_coverage_pct")),
        "{:?}",
        v.reasons
    );
}

#[test]
fn fewer_than_three_hosts_is_said_and_ties_go_against_the_candidate() {
    let e = experiment(&["web-1", "web-2"]);
    let mut samples = run(&e, 10, BASE, V(700, 700, 35_000, 11_000, 95.0));
    lying_host(&mut samples, &e, 1);
    let (v, _) = verdict_of(&e, &samples);
    // Two hosts, 30% and ~100%: the less favourable middle value decides, and fails.
    let c = result(&v, KpiName::CardinalityReductionPct);
    assert!((c.measured.unwrap() - 30.0).abs() < 1e-9);
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("only 2 host(s) voted") && r.contains("fewer than 3")),
        "{:?}",
        v.reasons
    );
    let e = experiment(&["a", "b", "c"]);
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert!(!v.reasons.iter().any(|r| r.contains("host(s) voted")));
}

#[test]
fn fleet_median_rule() {
    use Comparison::{AtLeast, AtMost};
    assert_eq!(fleet_median(&[], AtLeast), None);
    assert_eq!(fleet_median(&[f64::NAN], AtLeast), None);
    assert_eq!(fleet_median(&[5.0, 1.0, 100.0], AtLeast), Some(5.0));
    assert_eq!(fleet_median(&[1.0, 2.0, 3.0, 100.0], AtLeast), Some(2.0));
    assert_eq!(fleet_median(&[1.0, 2.0, 3.0, 100.0], AtMost), Some(3.0));
    assert_eq!(fleet_median(&[7.0], AtMost), Some(7.0));
}

#[test]
fn hosts_with_too_few_samples_do_not_vote() {
    let mut e = experiment(&["web-1", "web-2", "web-3", "gone"]);
    let mut samples = run(&e, 10, BASE, GOOD);
    // `gone` sent two samples claiming a 100% reduction, then was lost.
    samples.retain(|s| s.agent_id != e.targets[3].agent_id || s.seq <= 2);
    lying_host(&mut samples, &e, 3);
    e.targets[3].state = TargetState::Lost;
    let (v, _) = verdict_of(&e, &samples);
    let c = result(&v, KpiName::CardinalityReductionPct);
    let gone = c.per_host.iter().find(|h| h.host == "gone").unwrap();
    assert!(!gone.voting);
    assert!((c.measured.unwrap() - 70.0).abs() < 1e-9);
    assert!(c.reason.contains("median of 3 host(s)"), "{}", c.reason);
    assert_eq!(v.hosts_passing_critical(), 3);
}

#[test]
fn an_inventory_adds_the_queries_kept_criterion_decided_on_every_hosts_samples() {
    use crate::kpi::tests::{reporting, with_queries};
    let e = with_queries(experiment(&["web-1", "web-2", "web-3"]));
    let added = e
        .spec
        .criteria
        .iter()
        .find(|c| c.kpi == KpiName::QueriesBroken)
        .unwrap();
    assert_eq!(added, &Criterion::queries_kept());
    assert!(added.critical);
    assert_eq!(e.spec.criteria.len(), Criterion::defaults().len() + 1);

    // One host of three breaks a query: the median would hide it, the pooled count not.
    let (v, k) = verdict_of(&e, &reporting(run(&e, 10, BASE, GOOD), &e, 2, "baa"));
    assert_eq!(v.outcome, VerdictOutcome::Fail);
    let r = result(&v, KpiName::QueriesBroken);
    assert_eq!((r.passed, r.measured), (Some(false), Some(1.0)));
    assert!(
        r.reason
            .starts_with("queries_broken = 1 (threshold <= 0, critical"),
        "{}",
        r.reason
    );
    assert!(v.reasons.iter().any(|s| s.contains("queries_broken = 1")));
    assert!(
        r.reason.contains("broken: `NodeFsSpace` (node.rules.yml: "),
        "{}",
        r.reason
    );
    assert_eq!(k.queries.unwrap().affected[0].name, "NodeFsSpace");
    assert_eq!(v.hosts_passing_critical(), 2);

    // Changed is not broken: the candidate passes.
    let (v, _) = verdict_of(&e, &reporting(run(&e, 10, BASE, GOOD), &e, 2, "aca"));
    assert_eq!(v.outcome, VerdictOutcome::Pass, "{:?}", v.reasons);
    let r = result(&v, KpiName::QueriesBroken);
    assert_eq!((r.passed, r.measured), (Some(true), Some(0.0)));

    // Agents that do not evaluate the queries: a critical criterion unmeasured.
    let (v, _) = verdict_of(&e, &run(&e, 10, BASE, GOOD));
    assert_eq!(v.outcome, VerdictOutcome::Inconclusive);
}

#[test]
fn a_stated_queries_criterion_replaces_the_default() {
    use crate::kpi::tests::{reporting, with_queries};
    let mut e = experiment(&["web-1", "web-2"]);
    e.spec
        .criteria
        .push(Criterion::at_most(KpiName::QueriesBroken, 1.0, false));
    let e = with_queries(e);
    let on_queries: Vec<&Criterion> = e
        .spec
        .criteria
        .iter()
        .filter(|c| c.kpi == KpiName::QueriesBroken)
        .collect();
    assert_eq!(on_queries.len(), 1);
    assert!(!on_queries[0].critical);
    let (v, _) = verdict_of(&e, &reporting(run(&e, 10, BASE, GOOD), &e, 0, "bab"));
    assert_eq!(v.outcome, VerdictOutcome::Marginal);
}
