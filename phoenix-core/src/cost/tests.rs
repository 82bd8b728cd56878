//! Hand-computed examples (the same ones `docs/cost-model.md` walks through) and
//! properties of the cost model.

use proptest::prelude::*;

use super::*;

fn m(s: &str) -> Money {
    s.parse().unwrap()
}

fn builtin() -> Catalogue {
    Catalogue::builtin()
}

fn steady(hosts: u64, series: u64, ppm: u64, bytes: u64) -> Usage {
    Usage::steady(hosts, series, ppm, bytes, "hand-computed example")
}

// Example 1: Grafana Cloud Pro, 25,000 active series at 1 DPM.
// 25,000 - 10,000 included = 15,000 x $6.50 / 1,000 = $97.50 per month.
#[test]
fn grafana_active_series_with_allotment() {
    let cost = builtin()
        .price("grafana-cloud-pro", &steady(5, 25_000, 25_000, 0))
        .unwrap();
    assert_eq!(cost.quantity, 25_000);
    assert_eq!(cost.included, 10_000);
    assert_eq!(cost.billable, 15_000);
    assert_eq!(cost.per_month, m("97.50"));
    assert_eq!(cost.gross_monthly, m("162.50"));
    // 97.50 / 43,800 = 0.0022260274 -> 0.002226
    assert_eq!(cost.per_minute, m("0.002226"));
    assert_eq!(cost.per_year, m("1170.00"));
    assert_eq!(cost.price_source.model_id, "grafana-cloud-pro");
    assert_eq!(cost.price_source.effective_date.to_string(), "2026-05-01");
    assert_eq!(cost.price_source.source, "https://grafana.com/pricing");
}

// Example 2: the same 25,000 series scraped every 15 s: 4 DPM, 100,000 points per minute,
// billed as 100,000 series: 90,000 x $0.0065 = $585.00.
#[test]
fn grafana_extra_dpm_is_billed_as_series() {
    let cost = builtin()
        .price("grafana-cloud-pro", &steady(5, 25_000, 100_000, 0))
        .unwrap();
    assert_eq!(cost.quantity, 100_000);
    assert_eq!(cost.billable, 90_000);
    assert_eq!(cost.per_month, m("585.00"));
}

// Grafana bills the 95th percentile; a spike in 1 sample of 20 does not count.
#[test]
fn grafana_uses_the_p95_of_each_host() {
    let mut host = vec![
        Observation {
            series: 20_000,
            points: 20_000,
            bytes: 0,
            interval_secs: 60,
        };
        19
    ];
    host.push(Observation {
        series: 90_000,
        points: 90_000,
        bytes: 0,
        interval_secs: 60,
    });
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.series_p95, 20_000);
    // mean = (19 x 20,000 + 90,000) / 20 = 23,500
    assert_eq!(usage.series_mean, 23_500);
    assert_eq!(usage.points_per_minute, 23_500);
    let cost = builtin().price("grafana-cloud-pro", &usage).unwrap();
    // Quantity: max(p95 20,000, 23,500 DPM series) = 23,500: the DPM rule bills the
    // spike's points. 13,500 x 0.0065 = 87.75.
    assert_eq!(cost.quantity, 23_500);
    assert_eq!(cost.per_month, m("87.75"));
}

// Example 3: Datadog Pro, 10 hosts averaging 3,500 custom metrics in total.
// Allotment 100 x 10 = 1,000 -> 2,500 x $0.05 = $125.00 per month; Enterprise: 2,000
// allotted -> 1,500 x $0.05 = $75.00.
#[test]
fn datadog_per_host_pooled_allotment() {
    let usage = steady(10, 3_500, 0, 0);
    let pro = builtin().price("datadog-pro", &usage).unwrap();
    assert_eq!(pro.included, 1_000);
    assert_eq!(pro.included_rule, "100 custom metrics per host x 10 hosts");
    assert_eq!(pro.per_month, m("125.00"));
    assert_eq!(pro.per_year, m("1500.00"));
    // 125 / 43,800 = 0.00285388 -> 0.002854
    assert_eq!(pro.per_minute, m("0.002854"));
    let ent = builtin().price("datadog-enterprise", &usage).unwrap();
    assert_eq!(ent.per_month, m("75.00"));
    // Metrics without Limits, ingested: 2,500 x $0.10 / 100 = $2.50.
    let mwl = builtin().price("datadog-mwl-ingested", &usage).unwrap();
    assert_eq!(mwl.per_month, m("2.50"));
}

// Datadog bills the hourly average: the mean, rounded up to a whole metric.
#[test]
fn datadog_uses_the_mean() {
    let host: Vec<Observation> = [1_000, 1_001]
        .into_iter()
        .map(|series| Observation {
            series,
            points: series,
            bytes: 0,
            interval_secs: 10,
        })
        .collect();
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.series_mean, 1_001); // 1,000.5 rounded up
    let cost = builtin().price("datadog-pro", &usage).unwrap();
    assert_eq!(cost.billable, 901);
    assert_eq!(cost.per_month, m("45.05"));
}

// Example 4: New Relic, 20 hosts each sending 50,000 encoded bytes per 10 s interval:
// 5,000 B/s x 2,628,000 s = 13.14 GB per host per month, 262.8 GB in total;
// 262.8 - 100 free = 162.8 GB x $0.40 = $65.12 (Data Plus: x $0.60 = $97.68).
#[test]
fn newrelic_per_gb_from_measured_bytes() {
    let host = [Observation {
        series: 1_000,
        points: 1_000,
        bytes: 50_000,
        interval_secs: 10,
    }];
    let hosts: Vec<&[Observation]> = (0..20).map(|_| host.as_slice()).collect();
    let usage = Usage::from_hosts(hosts, "20 hosts");
    assert_eq!(usage.bytes_per_month, 262_800_000_000);
    let cost = builtin().price("newrelic-original", &usage).unwrap();
    assert_eq!(cost.included, 100_000_000_000);
    assert_eq!(cost.billable, 162_800_000_000);
    assert_eq!(cost.per_month, m("65.12"));
    assert_eq!(cost.gross_monthly, m("105.12"));
    let plus = builtin().price("newrelic-data-plus", &usage).unwrap();
    assert_eq!(plus.per_month, m("97.68"));
    // Two such hosts: 26.28 GB, inside the free 100 GB.
    let two = Usage::from_hosts([host.as_slice(), host.as_slice()], "2 hosts");
    let cost = builtin().price("newrelic-original", &two).unwrap();
    assert_eq!(cost.per_month, Money::ZERO);
    assert_eq!(cost.gross_monthly, m("10.512"));
}

// Example 5: CloudWatch, 300,000 metrics: 10 free, 299,990 billed across three tiers:
// 10,000 x 0.30 + 240,000 x 0.10 + 49,990 x 0.05 = 3,000 + 24,000 + 2,499.50 = $29,499.50.
#[test]
fn cloudwatch_tiers_cross() {
    let cost = builtin()
        .price("aws-cloudwatch-us-east-1", &steady(100, 300_000, 0, 0))
        .unwrap();
    assert_eq!(cost.billable, 299_990);
    let bands: Vec<(u64, Money)> = cost.tiers.iter().map(|t| (t.quantity, t.monthly)).collect();
    assert_eq!(
        bands,
        [
            (10_000, m("3000")),
            (240_000, m("24000")),
            (49_990, m("2499.50"))
        ]
    );
    assert_eq!(cost.per_month, m("29499.50"));
    assert_eq!(cost.gross_monthly, m("29500"));
    // 1,200,000 metrics reach the last tier: 3,000 + 24,000 + 37,500 + 199,990 x 0.02.
    let big = builtin()
        .price("aws-cloudwatch-us-east-1", &steady(100, 1_200_000, 0, 0))
        .unwrap();
    assert_eq!(big.tiers.len(), 4);
    assert_eq!(big.tiers[3].quantity, 199_990);
    assert_eq!(big.per_month, m("68499.80"));
    // Inside the free tier: nothing.
    let tiny = builtin()
        .price("aws-cloudwatch-us-east-1", &steady(1, 10, 0, 0))
        .unwrap();
    assert_eq!(tiny.per_month, Money::ZERO);
    assert_eq!(tiny.gross_monthly, m("3.00"));
}

// A tier boundary is exact: the 10,000th billable metric costs $0.30, the 10,001st $0.10.
#[test]
fn cloudwatch_tier_boundary() {
    let price = |q| {
        builtin()
            .price("aws-cloudwatch-us-east-1", &steady(1, q, 0, 0))
            .unwrap()
            .per_month
    };
    assert_eq!(price(10_010).saturating_sub(price(10_009)), m("0.30"));
    assert_eq!(price(10_011).saturating_sub(price(10_010)), m("0.10"));
    assert_eq!(price(250_011).saturating_sub(price(250_010)), m("0.05"));
    assert_eq!(price(1_000_011).saturating_sub(price(1_000_010)), m("0.02"));
}

// Example 6: the generic rate, $50 per million series: 2,500,000 series = $125.00.
#[test]
fn generic_per_million() {
    let cost = builtin()
        .price("generic-per-million", &steady(1, 2_500_000, 0, 0))
        .unwrap();
    assert_eq!(cost.per_month, m("125.00"));
    assert_eq!(cost.included_rule, "no allotment");
    // One series: $0.00005.
    let one = builtin()
        .price("generic-per-million", &steady(1, 1, 0, 0))
        .unwrap();
    assert_eq!(one.per_month, m("0.00005"));
}

// Example 7: savings and the fleet projection under Grafana Cloud Pro. Measured on 4 hosts:
// baseline 8,000 series, candidate 2,000: both inside the 10,000 free series, so the bill
// is $0 either way (reduction undefined) while the list price falls 75%. Projected to
// 1,000 hosts: baseline 2,000,000 - 10,000 = 1,990,000 x 0.0065 = $12,935.00, candidate
// 500,000 - 10,000 = 490,000 x 0.0065 = $3,185.00: $9,750.00 a month, $117,000.00 a year.
#[test]
fn savings_and_fleet_projection() {
    let base = steady(4, 8_000, 8_000, 0);
    let cand = steady(4, 2_000, 2_000, 0);
    let s = builtin()
        .savings("grafana-cloud-pro", &base, &cand)
        .unwrap();
    assert_eq!(s.saving_per_month, Money::ZERO);
    assert_eq!(s.reduction_pct, None);
    assert_eq!(s.gross_reduction_pct, Some(75.0));
    let p = builtin()
        .project_fleet("grafana-cloud-pro", &base, &cand, 1_000)
        .unwrap();
    assert_eq!(p.savings.baseline.quantity, 2_000_000);
    assert_eq!(p.savings.baseline.per_month, m("12935.00"));
    assert_eq!(p.savings.candidate.per_month, m("3185.00"));
    assert_eq!(p.savings.saving_per_month, m("9750.00"));
    assert_eq!(p.savings.saving_per_year, m("117000.00"));
    let pct = p.savings.reduction_pct.unwrap();
    // 1 - 3,185 / 12,935 = 75.3769%
    assert!((pct - 75.376_884_422_110_55).abs() < 1e-9, "{pct}");
    assert_eq!(
        Usage::default().scaled_to_hosts(10),
        Err(CostError::NoHosts)
    );
}

#[test]
fn zero_usage_costs_nothing_and_has_no_reduction() {
    for model in builtin().models() {
        let s = savings(model, &Usage::default(), &Usage::default()).unwrap();
        assert_eq!(s.baseline.per_month, Money::ZERO, "{}", model.id);
        assert_eq!(s.reduction_pct, None);
        assert_eq!(s.gross_reduction_pct, None);
    }
}

#[test]
fn a_more_expensive_candidate_is_a_negative_saving() {
    let s = builtin()
        .savings(
            "generic-per-million",
            &steady(1, 1_000_000, 0, 0),
            &steady(1, 1_500_000, 0, 0),
        )
        .unwrap();
    assert_eq!(s.saving_per_month, m("-25.00"));
    assert_eq!(s.reduction_pct, Some(-50.0));
}

#[test]
fn unknown_model_and_overflow_are_typed_errors() {
    assert!(matches!(
        builtin().price("nope", &Usage::default()),
        Err(CostError::Catalogue(CatalogueError::UnknownModel { .. }))
    ));
    assert!(matches!(
        builtin().price("aws-cloudwatch-us-east-1", &steady(1, u64::MAX, 0, 0)),
        Err(CostError::Overflow { .. })
    ));
}

#[test]
fn nearest_rank_percentile() {
    let v: Vec<u64> = (1..=20).collect();
    assert_eq!(nearest_rank(&v, 95), 19);
    assert_eq!(nearest_rank(&v, 100), 20);
    assert_eq!(nearest_rank(&[7], 95), 7);
    assert_eq!(nearest_rank(&[], 95), 0);
}

#[test]
fn group_digits_formats() {
    assert_eq!(group_digits(0), "0");
    assert_eq!(group_digits(999), "999");
    assert_eq!(group_digits(1_000), "1,000");
    assert_eq!(group_digits(1_234_567), "1,234,567");
}

fn usage_strategy() -> impl Strategy<Value = Usage> {
    (
        0_u64..5_000,
        0_u64..5_000_000,
        0_u64..2_000_000,
        0_u64..20_000_000,
        0_u64..2_000_000_000_000,
    )
        .prop_map(|(hosts, mean, extra, ppm, bytes)| Usage {
            hosts,
            series_mean: mean,
            series_p95: mean + extra,
            points_per_minute: ppm,
            bytes_per_month: bytes,
            basis: "generated".to_owned(),
        })
}

proptest! {
    // More series, points or bytes never cost less, under every built-in model.
    #[test]
    fn more_usage_never_costs_less(
        u in usage_strategy(),
        d in (0_u64..1_000_000, 0_u64..1_000_000, 0_u64..1_000_000, 0_u64..100_000_000_000),
    ) {
        let more = Usage {
            series_mean: u.series_mean + d.0,
            series_p95: u.series_p95 + d.0 + d1(d.1),
            points_per_minute: u.points_per_minute + d.2,
            bytes_per_month: u.bytes_per_month + d.3,
            ..u.clone()
        };
        for model in builtin().models() {
            let a = price(model, &u).unwrap();
            let b = price(model, &more).unwrap();
            prop_assert!(b.per_month >= a.per_month, "{}: {} < {}", model.id, b.per_month, a.per_month);
            prop_assert!(b.gross_monthly >= a.gross_monthly, "{}", model.id);
            prop_assert!(b.per_year >= a.per_year);
            prop_assert!(b.per_minute >= a.per_minute);
        }
    }

    // More hosts for the same usage never cost more (allotments only grow).
    #[test]
    fn more_hosts_never_cost_more(u in usage_strategy(), extra in 0_u64..1_000) {
        let more_hosts = Usage { hosts: u.hosts + extra, ..u.clone() };
        for model in builtin().models() {
            prop_assert!(price(model, &more_hosts).unwrap().per_month <= price(model, &u).unwrap().per_month);
        }
    }

    // The bill is the sum of its tier lines, never above the list price, and the
    // allotment subtraction is shown exactly.
    #[test]
    fn breakdown_is_consistent(u in usage_strategy()) {
        for model in builtin().models() {
            let c = price(model, &u).unwrap();
            let sum = c.tiers.iter().fold(Money::ZERO, |a, t| a.saturating_add(t.monthly));
            prop_assert_eq!(sum, c.per_month);
            prop_assert_eq!(c.billable, c.quantity.saturating_sub(c.included));
            prop_assert_eq!(c.tiers.iter().map(|t| t.quantity).sum::<u64>(), c.billable);
            prop_assert!(c.per_month <= c.gross_monthly);
            prop_assert_eq!(c.per_year, c.per_month.saturating_mul(12));
        }
    }

    // A candidate that uses less never costs more than the baseline at any fleet size.
    #[test]
    fn fleet_projection_keeps_the_order(u in usage_strategy(), n in 1_u64..100_000) {
        prop_assume!(u.hosts > 0);
        let less = Usage { series_mean: u.series_mean / 2, series_p95: u.series_p95 / 2,
            points_per_minute: u.points_per_minute / 2, bytes_per_month: u.bytes_per_month / 2, ..u.clone() };
        for model in builtin().models() {
            let p = project_fleet(model, &u, &less, n).unwrap();
            prop_assert_eq!(p.fleet_hosts, n);
            prop_assert!(p.savings.saving_per_month >= Money::ZERO, "{}", model.id);
            prop_assert!(p.savings.candidate.per_month <= p.savings.baseline.per_month);
        }
    }

    #[test]
    fn allocation_sums_exactly(total in 0_i64..1_000_000_000_000, weights in proptest::collection::vec(0_u128..1_000_000_000, 0..50)) {
        let parts = allocate(Money::from_micros(total), &weights);
        prop_assert_eq!(parts.len(), weights.len());
        if weights.iter().any(|&w| w > 0) {
            prop_assert_eq!(parts.iter().map(|p| p.micros()).sum::<i64>(), total);
        }
    }
}

fn d1(x: u64) -> u64 {
    x / 2
}
