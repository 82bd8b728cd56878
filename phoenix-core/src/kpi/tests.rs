use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::cost::Money;
use crate::experiment::{Actor, ExperimentSpec, NewExperiment, Phase, Target};
use crate::measure::{CriticalCoverage, Fidelity};
use crate::pipeline::PipelineRef;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000, 0).unwrap()
}

/// A running experiment on `hosts`: 60 s warm-up, 600 s duration, 10 s samples.
pub(crate) fn experiment(hosts: &[&str]) -> Experiment {
    let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 600);
    spec.warmup_secs = 60;
    let (mut e, _) = Experiment::create(
        NewExperiment {
            name: "topk".to_owned(),
            description: String::new(),
            spec,
        },
        &Actor::user("alice"),
        t0(),
    );
    e.targets = hosts
        .iter()
        .map(|h| Target {
            agent_id: AgentId::new(),
            host: (*h).to_owned(),
            state: TargetState::Deployed,
            op_seq: 1,
            detail: None,
            updated_at: t0(),
        })
        .collect();
    e.phase = Phase::Running;
    e.running_since = Some(t0());
    e.warmup_until = Some(t0() + Duration::seconds(60));
    e.ends_at = Some(t0() + Duration::seconds(600));
    e
}

/// What one variant produced in a sample: series, points, bytes, eval nanos, fidelity %.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V(pub u64, pub u64, pub u64, pub u64, pub f64);

pub(crate) fn stats(v: V, missing: &[&str]) -> VariantStats {
    let expected = vec!["nginx".to_owned(), "postgres".to_owned()];
    let missing: Vec<String> = missing.iter().map(|m| (*m).to_owned()).collect();
    VariantStats {
        series: v.0,
        points: v.1,
        bytes: v.2,
        eval_nanos: v.3,
        fidelity: Fidelity {
            cpu_pct: Some(v.4),
            memory_pct: Some(v.4 + 5.0),
        },
        critical: CriticalCoverage {
            present: expected
                .iter()
                .filter(|e| !missing.contains(e))
                .cloned()
                .collect(),
            expected,
            missing,
        },
        ..VariantStats::default()
    }
}

pub(crate) fn sample(
    e: &Experiment,
    host: usize,
    seq: u64,
    at: i64,
    b: V,
    c: V,
) -> MeasurementSample {
    MeasurementSample {
        experiment_id: e.id,
        agent_id: e.targets[host].agent_id,
        seq,
        taken_at: t0() + Duration::seconds(at),
        interval_secs: 10,
        baseline: stats(b, &[]),
        candidate: stats(c, &[]),
        host: crate::measure::HostStats::default(),
        queries: None,
    }
}

/// `n` judged samples per host (after warm-up, every 10 s from t = 70 s), baseline `b`,
/// candidate `c`; evaluation times vary by up to 40 ns between samples.
pub(crate) fn run(e: &Experiment, n: u64, b: V, c: V) -> Vec<MeasurementSample> {
    let mut out = Vec::new();
    for host in 0..e.targets.len() {
        for i in 0..n {
            let at = 70 + 10 * i64::try_from(i).unwrap();
            let wobble = (i * 7 + host as u64 * 3) % 5;
            let jitter = |v: u64, j: u64| if v == 0 { 0 } else { v + j * 10 };
            let b = V(b.0, b.1, b.2, jitter(b.3, wobble), b.4);
            let c = V(c.0, c.1, c.2, jitter(c.3, (i * 3 + 1) % 5), c.4);
            out.push(sample(e, host, i + 1, at, b, c));
        }
    }
    out
}

pub(crate) const BASE: V = V(1_000, 1_000, 50_000, 10_000, 100.0);
pub(crate) const GOOD: V = V(300, 300, 15_000, 11_000, 90.0);

fn kpi(k: &ExperimentKpis, name: KpiName) -> &KpiValue {
    k.kpi(name).unwrap()
}

#[test]
fn reductions_fidelity_coverage_and_overhead() {
    let e = experiment(&["web-1", "web-2"]);
    let k = compute(&e, &run(&e, 10, BASE, GOOD), &Catalogue::builtin());
    assert_eq!(k.samples.judged, 20);
    assert_eq!(k.hosts.reporting, 2);
    assert!(k.hosts.missing.is_empty());
    let v = |n| kpi(&k, n).value.unwrap();
    assert!((v(KpiName::CardinalityReductionPct) - 70.0).abs() < 1e-9);
    assert!((v(KpiName::DataPointReductionPct) - 70.0).abs() < 1e-9);
    assert!((v(KpiName::FidelityPct) - 90.0).abs() < 1e-9);
    assert_eq!(v(KpiName::CriticalCoveragePct), 100.0);
    let cpu = v(KpiName::AgentCpuOverheadPct);
    // Baseline eval 10,000 + jitter, candidate 11,000 + jitter: about 10% more.
    assert!((9.0..11.0).contains(&cpu), "{cpu}");
    assert!(k.agent_cpu_test.as_ref().unwrap().p_greater < 0.001);
    // Withdrawn: measured by no agent, so not reported at all.
    assert!(k.kpi(KpiName::AgentRssOverheadPct).is_none());
    assert_eq!(k.kpis.len(), ALL_KPIS.len());
    assert!(ALL_KPIS.iter().all(|n| n.offered()));
    assert_eq!(k.baseline.series_p95, 2_000);
    assert_eq!(k.candidate.series_mean, 600.0);
}

// Grafana Cloud Pro (the default model), list price before allotments. Per host the
// baseline sends 1,000 points per 10 s = 6,000 DPM, billed as 6,000 series; two hosts:
// 12,000 x $0.0065 = $78.00. Candidate: 1,800 DPM per host, 3,600 x $0.0065 = $23.40.
// Reduction 70%. Both bills after the 10,000 free series: $13.00 and $0.
#[test]
fn cost_reduction_uses_the_experiment_pricing_model() {
    let e = experiment(&["web-1", "web-2"]);
    let k = compute(&e, &run(&e, 10, BASE, GOOD), &Catalogue::builtin());
    let c = kpi(&k, KpiName::CostReductionPct);
    assert!((c.value.unwrap() - 70.0).abs() < 1e-9);
    let cost = &k.cost.as_ref().unwrap().measured;
    assert_eq!(
        cost.baseline.gross_monthly,
        "78.00".parse::<Money>().unwrap()
    );
    assert_eq!(
        cost.candidate.gross_monthly,
        "23.40".parse::<Money>().unwrap()
    );
    assert_eq!(cost.baseline.per_month, "13.00".parse::<Money>().unwrap());
    assert_eq!(cost.candidate.per_month, Money::ZERO);
    assert_eq!(cost.baseline.price_source.model_id, "grafana-cloud-pro");

    let mut e = e;
    e.spec.pricing_model = "no-such-model".to_owned();
    let k = compute(&e, &run(&e, 10, BASE, GOOD), &Catalogue::builtin());
    let c = kpi(&k, KpiName::CostReductionPct);
    assert_eq!(
        (c.value, c.undefined),
        (None, Some(Undefined::UnknownPricingModel))
    );
    assert!(k.cost.is_none());
}

#[test]
fn warmup_duplicates_strangers_and_late_samples_are_excluded_and_counted() {
    let e = experiment(&["web-1"]);
    let other = experiment(&["x"]);
    let mut samples = run(&e, 3, BASE, GOOD);
    samples.push(samples[0].clone()); // duplicate
    samples.push(sample(
        &e,
        0,
        100,
        10,
        V(5, 5, 5, 5, 5.0),
        V(5, 5, 5, 5, 5.0),
    )); // warm-up
    samples.push(sample(
        &e,
        0,
        101,
        59,
        V(5, 5, 5, 5, 5.0),
        V(5, 5, 5, 5, 5.0),
    )); // warm-up
    samples.push(sample(&e, 0, 102, 601, BASE, GOOD)); // after the end
    samples.push(sample(&other, 0, 1, 100, BASE, GOOD)); // another experiment
    let mut stranger = sample(&e, 0, 1, 100, BASE, GOOD);
    stranger.agent_id = AgentId::new();
    samples.push(stranger);
    let k = compute(&e, &samples, &Catalogue::builtin());
    assert_eq!(
        k.samples,
        SampleCounts {
            received: 9,
            judged: 3,
            in_warmup: 2,
            after_end: 1,
            other_experiment: 1,
            unknown_agent: 1,
            duplicates: 1,
        }
    );
    // Warm-up samples are charted, flagged, and do not move the KPIs.
    assert!(k.time_series.iter().any(|p| p.in_warmup));
    assert!(
        k.time_series
            .iter()
            .filter(|p| !p.in_warmup)
            .all(|p| p.cardinality_reduction_pct == Some(70.0))
    );
    assert!((kpi(&k, KpiName::CardinalityReductionPct).value.unwrap() - 70.0).abs() < 1e-9);
    assert_eq!(k.judged_from, Some(t0() + Duration::seconds(70)));
}

#[test]
fn fidelity_without_process_cpu_or_memory_series_is_not_measured() {
    let e = experiment(&["web-1", "web-2"]);
    // No input had a process CPU or memory series: no figure, and the reason says so.
    let mut samples = run(&e, 10, BASE, GOOD);
    for s in &mut samples {
        s.baseline.fidelity = Fidelity::default();
        s.candidate.fidelity = Fidelity::default();
    }
    let k = compute(&e, &samples, &Catalogue::builtin());
    let f = kpi(&k, KpiName::FidelityPct);
    assert_eq!((f.value, f.undefined), (None, Some(Undefined::NotMeasured)));
    assert!(f.basis.starts_with("not measured"), "{}", f.basis);
    assert_eq!(k.candidate.fidelity_pct_mean, None);
    assert!(k.per_host.iter().all(|h| {
        h.kpis
            .iter()
            .any(|v| v.kpi == KpiName::FidelityPct && v.value.is_none())
    }));
    assert!(k.time_series.iter().all(|p| p.fidelity_pct.is_none()));
    // The judge: a non-critical fidelity criterion cannot be met (marginal), a critical
    // one makes the verdict inconclusive.
    let v = crate::judge::judge(&e, &k, t0());
    let r = v
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == KpiName::FidelityPct)
        .unwrap();
    assert_eq!((r.measured, r.passed), (None, None));
    assert!(r.reason.contains("could not be measured"), "{}", r.reason);
    assert_eq!(v.outcome, crate::judge::VerdictOutcome::Marginal);
    let mut critical = e.clone();
    critical.spec.criteria = vec![crate::judge::Criterion::at_least(
        KpiName::FidelityPct,
        80.0,
        true,
    )];
    let v = crate::judge::judge(&critical, &k, t0());
    assert_eq!(v.outcome, crate::judge::VerdictOutcome::Inconclusive);

    // Some samples measured memory only, the others nothing: the mean is over the samples
    // that measured a share, each its lower measured share.
    let mut samples = run(&e, 10, BASE, GOOD);
    for (i, s) in samples.iter_mut().enumerate() {
        s.candidate.fidelity = if i % 2 == 0 {
            Fidelity {
                cpu_pct: None,
                memory_pct: Some(60.0),
            }
        } else {
            Fidelity::default()
        };
    }
    let k = compute(&e, &samples, &Catalogue::builtin());
    let f = kpi(&k, KpiName::FidelityPct);
    assert_eq!((f.value, f.undefined), (Some(60.0), None));
    assert!(f.basis.contains("10 of 20"), "{}", f.basis);
}

#[test]
fn zero_baseline_is_undefined_not_a_full_reduction() {
    let e = experiment(&["web-1"]);
    let zero = V(0, 0, 0, 0, 0.0);
    let k = compute(&e, &run(&e, 10, zero, zero), &Catalogue::builtin());
    for name in [
        KpiName::CardinalityReductionPct,
        KpiName::DataPointReductionPct,
        KpiName::CostReductionPct,
    ] {
        let v = kpi(&k, name);
        assert_eq!(
            (v.value, v.undefined),
            (None, Some(Undefined::ZeroBaseline)),
            "{name}"
        );
    }
    // No variant CPU in any sample: not measured (variants sharing one Collector process).
    let cpu = kpi(&k, KpiName::AgentCpuOverheadPct);
    assert_eq!(
        (cpu.value, cpu.undefined),
        (None, Some(Undefined::NotMeasured))
    );
    assert!(k.agent_cpu_test.is_none());
    // Candidate CPU measured against a zero baseline: the zero-baseline trap again.
    let k = compute(
        &e,
        &run(&e, 10, zero, V(0, 0, 0, 5_000, 0.0)),
        &Catalogue::builtin(),
    );
    let cpu = kpi(&k, KpiName::AgentCpuOverheadPct);
    assert_eq!(
        (cpu.value, cpu.undefined),
        (None, Some(Undefined::ZeroBaseline))
    );
}

#[test]
fn no_samples_and_missing_hosts() {
    let mut e = experiment(&["web-1", "web-2", "web-3"]);
    e.targets[2].state = TargetState::Lost;
    let samples: Vec<_> = run(&e, 5, BASE, GOOD)
        .into_iter()
        .filter(|s| s.agent_id == e.targets[0].agent_id)
        .collect();
    let k = compute(&e, &samples, &Catalogue::builtin());
    assert_eq!(k.hosts.targets, 3);
    assert_eq!(k.hosts.live, 2);
    assert_eq!(k.hosts.reporting, 1);
    assert_eq!(k.hosts.missing.len(), 1);
    assert_eq!(k.hosts.missing[0].host, "web-2");
    assert_eq!(k.hosts.excluded[0].host, "web-3");

    let k = compute(&e, &[], &Catalogue::builtin());
    assert!(k.kpis.iter().all(|v| v.value.is_none()));
    assert_eq!(
        kpi(&k, KpiName::FidelityPct).undefined,
        Some(Undefined::NoSamples)
    );
    assert!(k.time_series.is_empty());
    assert!(k.cost.is_none());
}

#[test]
fn per_host_breakdown_and_critical_misses() {
    let e = experiment(&["web-1", "db-1"]);
    let mut samples = run(&e, 4, BASE, GOOD);
    // db-1's candidate drops postgres in two samples, and keeps fewer series.
    for s in samples
        .iter_mut()
        .filter(|s| s.agent_id == e.targets[1].agent_id)
        .take(2)
    {
        s.candidate.critical = CriticalCoverage {
            expected: vec!["nginx".to_owned(), "postgres".to_owned()],
            present: vec!["nginx".to_owned()],
            missing: vec!["postgres".to_owned()],
        };
        s.candidate.series = 100;
    }
    let k = compute(&e, &samples, &Catalogue::builtin());
    assert_eq!(kpi(&k, KpiName::CriticalCoveragePct).value, Some(50.0));
    assert_eq!(
        k.critical_missing,
        [CriticalMiss {
            name: "postgres".to_owned(),
            samples: 2
        }]
    );
    let db = k.per_host.iter().find(|h| h.host.host == "db-1").unwrap();
    assert_eq!(db.samples, 4);
    assert_eq!(db.state, Some(TargetState::Deployed));
    let db_red = db
        .kpis
        .iter()
        .find(|v| v.kpi == KpiName::CardinalityReductionPct)
        .unwrap();
    // (1 - (100 + 100 + 300 + 300) / 4,000) x 100 = 80%.
    assert!((db_red.value.unwrap() - 80.0).abs() < 1e-9);
    let web = k.per_host.iter().find(|h| h.host.host == "web-1").unwrap();
    let web_cov = web
        .kpis
        .iter()
        .find(|v| v.kpi == KpiName::CriticalCoveragePct)
        .unwrap();
    assert_eq!(web_cov.value, Some(100.0));
}

#[test]
fn time_series_buckets_sum_hosts() {
    let e = experiment(&["web-1", "web-2"]);
    let k = compute(&e, &run(&e, 10, BASE, GOOD), &Catalogue::builtin());
    // 10 s buckets anchored at the end of warm-up: one per sample time, both hosts in each.
    assert_eq!(k.time_series.len(), 10);
    let p = &k.time_series[0];
    assert_eq!(p.at, t0() + Duration::seconds(70));
    assert_eq!(p.width_secs, 10);
    assert_eq!((p.hosts, p.samples), (2, 2));
    assert_eq!(p.baseline.series, 2_000.0);
    assert_eq!(p.candidate.series, 600.0);
    assert_eq!(p.fidelity_pct, Some(90.0));
    let json = serde_json::to_string(&k).unwrap();
    let back: ExperimentKpis = serde_json::from_str(&json).unwrap();
    assert_eq!(back.samples, k.samples);
    assert_eq!(back.cost, k.cost);
}

/// `e` judged on three frozen queries (`NodeFsSpace`, `NodeDown`, `CpuByMode`).
pub(crate) fn with_queries(e: Experiment) -> Experiment {
    let rules = "groups:\n  - name: node\n    rules:\n      - alert: NodeFsSpace\n        expr: node_filesystem_avail_bytes{fstype!=\"\"} < 5\n      - alert: NodeDown\n        expr: up == 0\n      - record: cpu:by_mode\n        expr: sum by (mode) (rate(node_cpu_seconds_total[5m]))\n";
    let source = crate::queries::QuerySource::import(
        "node.rules.yml",
        crate::queries::SourceKind::RuleFile,
        rules,
        "alice",
        t0(),
    )
    .unwrap();
    e.with_queries(crate::queries::freeze(&[source]).unwrap())
}

/// `samples` with every sample of `host` reporting `statuses` (and a reason for each
/// broken or changed query), the others `aaa`.
pub(crate) fn reporting(
    mut samples: Vec<MeasurementSample>,
    e: &Experiment,
    host: usize,
    statuses: &str,
) -> Vec<MeasurementSample> {
    for s in &mut samples {
        let own = s.agent_id == e.targets[host].agent_id;
        let statuses = if own { statuses } else { "aaa" };
        s.queries = Some(crate::queries::SampleQueries {
            statuses: statuses.to_owned(),
            reasons: statuses
                .chars()
                .enumerate()
                .filter(|(_, c)| matches!(c, 'b' | 'c'))
                .map(|(i, _)| crate::queries::QueryReasons {
                    query: u32::try_from(i).unwrap(),
                    reasons: vec![format!("query {i} lost `fstype`")],
                })
                .collect(),
        });
    }
    samples
}

#[test]
fn a_query_broken_on_any_host_is_broken() {
    let e = with_queries(experiment(&["web-1", "web-2", "web-3"]));
    let samples = reporting(run(&e, 10, BASE, GOOD), &e, 1, "bac");
    let k = compute(&e, &samples, &Catalogue::builtin());
    let broken = kpi(&k, KpiName::QueriesBroken);
    assert_eq!(broken.value, Some(1.0));
    assert!(broken.basis.contains("of 3"), "{}", broken.basis);
    let q = k.queries.as_ref().unwrap();
    assert_eq!(
        (q.answered, q.changed, q.broken, q.unobserved),
        (1, 1, 1, 0)
    );
    assert_eq!(q.affected[0].name, "NodeFsSpace");
    assert_eq!(q.affected[0].status, crate::queries::QueryStatus::Broken);
    assert!(q.affected[0].location.starts_with("node.rules.yml"));
    assert!(q.affected[0].reasons[0].contains("lost `fstype`"));
    assert!(
        q.affected[0].reasons[1].contains("in 10 of 30 samples, on web-2"),
        "{:?}",
        q.affected[0].reasons
    );
    assert_eq!(q.affected[1].name, "cpu:by_mode");
    // Each host's own value: only web-2 broke it.
    let own: Vec<Option<f64>> = k
        .per_host
        .iter()
        .map(|h| {
            h.kpis
                .iter()
                .find(|v| v.kpi == KpiName::QueriesBroken)
                .unwrap()
                .value
        })
        .collect();
    assert_eq!(own.iter().filter(|v| **v == Some(1.0)).count(), 1);
    assert_eq!(own.iter().filter(|v| **v == Some(0.0)).count(), 2);
}

#[test]
fn queries_are_not_measured_without_an_inventory_or_without_reports() {
    let e = experiment(&["web-1"]);
    let k = compute(&e, &run(&e, 5, BASE, GOOD), &Catalogue::builtin());
    let q = kpi(&k, KpiName::QueriesBroken);
    assert_eq!((q.value, q.undefined), (None, Some(Undefined::NotMeasured)));
    assert!(q.basis.contains("no query inventory"), "{}", q.basis);
    assert!(k.queries.is_none());
    // Samples of agents that predate query evaluation carry none.
    let e = with_queries(experiment(&["web-1"]));
    let k = compute(&e, &run(&e, 5, BASE, GOOD), &Catalogue::builtin());
    let q = kpi(&k, KpiName::QueriesBroken);
    assert_eq!((q.value, q.undefined), (None, Some(Undefined::NotMeasured)));
    assert!(q.basis.contains("predate"), "{}", q.basis);
    // A sample without the field still reads.
    let mut json = serde_json::to_value(&run(&e, 1, BASE, GOOD)[0]).unwrap();
    json.as_object_mut().unwrap().remove("queries");
    let old: MeasurementSample = serde_json::from_value(json).unwrap();
    assert!(old.queries.is_none());
}
