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

// Grafana bills the 95th percentile of active series and of DPM; a spike in 1 sample of
// 20 counts in neither ("Grafana Cloud determines your usage based on the 95th percentile
// of both active series and total DPM over each billing period. Your usage equals the
// maximum of either: active series count; total DPM divided by included DPM per series",
// https://grafana.com/docs/grafana-cloud/cost-management-and-billing/understand-usage-cost/metrics/,
// read 2026-12-06).
#[test]
fn grafana_uses_the_p95_of_each_host() {
    let mut host = vec![
        Observation {
            series: 20_000,
            points: 20_000,
            interval_secs: 60,
            ..Observation::default()
        };
        19
    ];
    host.push(Observation {
        series: 90_000,
        points: 90_000,
        interval_secs: 60,
        ..Observation::default()
    });
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.series_p95, 20_000);
    // mean = (19 x 20,000 + 90,000) / 20 = 23,500
    assert_eq!(usage.series_mean, 23_500);
    assert_eq!(usage.points_per_minute, 23_500);
    assert_eq!(usage.points_per_minute_p95, 20_000);
    let cost = builtin().price("grafana-cloud-pro", &usage).unwrap();
    // Quantity: max(P95 series 20,000, P95 DPM 20,000 / 1) = 20,000: the spike's points
    // are forgiven as its series are (the mean, 23,500, would bill them).
    // 10,000 x 0.0065 = 65.00.
    assert_eq!(cost.quantity, 20_000);
    assert_eq!(cost.per_month, m("65.00"));
    assert_eq!(cost.samples_per_host, 20);
    assert!(!cost.quantity_rule.contains("single measurement"));
}

// The DPM term is a P95 too: a quiet half-window does not lower the bill. One host,
// 20 one-minute samples of 10,000 series: 10 at 4 DPM per series (40,000 points a
// minute) and 10 with nothing sent. The mean rate is 20,000 DPM, the P95 40,000: Grafana
// bills 40,000 series (30,000 x $0.0065 = $195.00), not 20,000 ($65.00).
#[test]
fn grafana_dpm_term_is_the_p95_not_the_mean() {
    let host: Vec<Observation> = (0..20)
        .map(|i| Observation {
            series: 10_000,
            points: if i % 2 == 0 { 40_000 } else { 0 },
            interval_secs: 60,
            ..Observation::default()
        })
        .collect();
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.points_per_minute, 20_000);
    assert_eq!(usage.points_per_minute_p95, 40_000);
    let cost = builtin().price("grafana-cloud-pro", &usage).unwrap();
    assert_eq!(cost.quantity, 40_000);
    assert_eq!(cost.per_month, m("195.00"));
    assert!(
        cost.quantity_rule
            .contains("95th percentile of data points per minute")
    );
}

// "This approach forgives the top 5% of usage time (approximately 36 hours per month)"
// (same Grafana page). Hourly samples over a 720-hour month: a spike lasting 36 hours is
// forgiven; one lasting 37 hours is billed.
#[test]
fn grafana_forgives_the_top_36_hours_of_a_720_hour_month() {
    let month = |spike_hours: usize| {
        let host: Vec<Observation> = (0..720)
            .map(|h| {
                let series = if h < spike_hours { 90_000 } else { 20_000 };
                Observation {
                    series,
                    points: series * 60,
                    interval_secs: 3_600,
                    ..Observation::default()
                }
            })
            .collect();
        let usage = Usage::from_hosts([host.as_slice()], "one host, hourly");
        builtin().price("grafana-cloud-pro", &usage).unwrap()
    };
    assert_eq!(month(0).quantity, 20_000);
    assert_eq!(month(36).quantity, 20_000);
    assert_eq!(month(36).per_month, m("65.00"));
    assert_eq!(month(37).quantity, 90_000);
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

// Datadog: "your monthly billable custom metrics usage is calculated by taking the total
// of all distinct custom metrics for each hour in a given month, and dividing it by the
// number of hours in the month" and "is not impacted by data point submission frequency"
// (https://docs.datadoghq.com/account_management/billing/custom_metrics/, read
// 2026-12-06). Two hours of 10 s samples: hour one 1,000 series throughout with 1,400 in
// one interval, hour two 600. Hourly counts 1,400 and 600, average 1,000, 900 over the
// 100 allotted x $0.05 = $45.00. The plain mean of the samples (about 801) would bill
// the burst as if it lasted 10 s.
#[test]
fn datadog_bills_the_monthly_average_of_hourly_counts() {
    let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(); // an hour boundary
    let host: Vec<Observation> = (0..720)
        .map(|i| {
            let series = match i {
                0..=359 if i == 100 => 1_400,
                0..=359 => 1_000,
                _ => 600,
            };
            Observation {
                taken_at: Some(start + chrono::Duration::seconds(i * 10 + 5)),
                series,
                points: series * 7, // frequency does not matter
                interval_secs: 10,
                ..Observation::default()
            }
        })
        .collect();
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.series_hourly_mean, 1_000);
    assert_eq!(usage.series_mean, 801);
    let cost = builtin().price("datadog-pro", &usage).unwrap();
    assert_eq!(cost.quantity, 1_000);
    assert_eq!(cost.billable, 900);
    assert_eq!(cost.per_month, m("45.00"));
    assert!(cost.quantity_rule.contains("clock hours"));
    // Without times, consecutive 10 s intervals fill hours in order: the same answer.
    let untimed: Vec<Observation> = host
        .iter()
        .map(|o| Observation {
            taken_at: None,
            ..*o
        })
        .collect();
    assert_eq!(
        Usage::from_hosts([untimed.as_slice()], "x").series_hourly_mean,
        1_000
    );
}

// The hourly average rounds up to a whole metric.
#[test]
fn datadog_hourly_average_rounds_up() {
    let host: Vec<Observation> = [1_000, 1_001]
        .into_iter()
        .map(|series| Observation {
            series,
            points: series,
            interval_secs: 3_600,
            ..Observation::default()
        })
        .collect();
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    assert_eq!(usage.series_hourly_mean, 1_001); // 1,000.5 rounded up
    let cost = builtin().price("datadog-pro", &usage).unwrap();
    assert_eq!(cost.billable, 901);
    assert_eq!(cost.per_month, m("45.05"));
}

// CloudWatch prorates a metric by the hours it exists: 20,000 metrics for half the
// measured hours and none for the other half bill as 10,000 metric-months.
#[test]
fn cloudwatch_prorates_by_the_hour() {
    let host: Vec<Observation> = (0..4)
        .map(|h| Observation {
            series: if h < 2 { 20_000 } else { 0 },
            interval_secs: 3_600,
            ..Observation::default()
        })
        .collect();
    let usage = Usage::from_hosts([host.as_slice()], "one host");
    let cost = builtin().price("aws-cloudwatch-us-east-1", &usage).unwrap();
    assert_eq!(cost.quantity, 10_000);
    // 9,990 billable x $0.30.
    assert_eq!(cost.per_month, m("2997.00"));
}

// Example 4: New Relic, 20 hosts each sending 50,000 encoded bytes per 10 s interval:
// 5,000 B/s x 2,628,000 s = 13.14 GB per host per month, 262.8 GB in total, billed as
// 262 GB (New Relic rounds the month down to a whole GB); 262 - 100 free = 162 GB x
// $0.40 = $64.80 (Data Plus: x $0.60 = $97.20).
#[test]
fn newrelic_per_gb_from_measured_bytes() {
    let host = [Observation {
        series: 1_000,
        points: 1_000,
        bytes: 50_000,
        interval_secs: 10,
        ..Observation::default()
    }];
    let hosts: Vec<&[Observation]> = (0..20).map(|_| host.as_slice()).collect();
    let usage = Usage::from_hosts(hosts, "20 hosts");
    assert_eq!(usage.bytes_per_month, 262_800_000_000);
    let cost = builtin().price("newrelic-original", &usage).unwrap();
    assert_eq!(cost.quantity, 262_000_000_000);
    assert_eq!(cost.included, 100_000_000_000);
    assert_eq!(cost.billable, 162_000_000_000);
    assert_eq!(cost.per_month, m("64.80"));
    assert_eq!(cost.gross_monthly, m("104.80"));
    assert!(cost.quantity_rule.contains("rounded down"));
    // One measurement per host: the result says the month is extrapolated from it.
    assert_eq!(cost.samples_per_host, 1);
    assert!(cost.quantity_rule.contains("single measurement"));
    let plus = builtin().price("newrelic-data-plus", &usage).unwrap();
    assert_eq!(plus.per_month, m("97.20"));
    // Two such hosts: 26.28 GB, billed as 26 GB, inside the free 100 GB.
    let two = Usage::from_hosts([host.as_slice(), host.as_slice()], "2 hosts");
    let cost = builtin().price("newrelic-original", &two).unwrap();
    assert_eq!(cost.per_month, Money::ZERO);
    assert_eq!(cost.gross_monthly, m("10.40"));
}

// New Relic's worked example: "Monthly data ingested is rounded down to the nearest
// integer. For example, if your account uses 100.9 GBs during a month, that's counted as
// 100 GBs"; "a GB is defined as 1 billion bytes"; 100 GB a month free
// (https://docs.newrelic.com/docs/accounts/accounts-billing/new-relic-one-pricing-billing/data-ingest-billing/,
// read 2026-12-06). 100.9 GB costs nothing; 101.999999999 GB bills 1 GB.
#[test]
fn newrelic_rounds_the_month_down_to_a_whole_gb() {
    let gb = |bytes: u64| {
        builtin()
            .price("newrelic-original", &steady(1, 0, 0, bytes))
            .unwrap()
    };
    let c = gb(100_900_000_000);
    assert_eq!(c.quantity, 100_000_000_000);
    assert_eq!(c.billable, 0);
    assert_eq!(c.per_month, Money::ZERO);
    let c = gb(101_999_999_999);
    assert_eq!(c.quantity, 101_000_000_000);
    assert_eq!(c.per_month, m("0.40"));
    assert_eq!(gb(999_999_999).gross_monthly, Money::ZERO);
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
            active_series_p95: mean + extra + extra / 3,
            series_hourly_mean: mean + extra / 2,
            points_per_minute: ppm,
            points_per_minute_p95: ppm + extra,
            bytes_per_month: bytes,
            samples_per_host: 1 + extra % 7,
            churn: crate::cost::ChurnCoverage::default(),
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
            active_series_p95: u.active_series_p95 + d.0 + d1(d.1),
            series_hourly_mean: u.series_hourly_mean + d.0,
            points_per_minute: u.points_per_minute + d.2,
            points_per_minute_p95: u.points_per_minute_p95 + d.2,
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
            active_series_p95: u.active_series_p95 / 2,
            series_hourly_mean: u.series_hourly_mean / 2,
            points_per_minute: u.points_per_minute / 2, points_per_minute_p95: u.points_per_minute_p95 / 2,
            bytes_per_month: u.bytes_per_month / 2, ..u.clone() };
        for model in builtin().models() {
            let p = project_fleet(model, &u, &less, n).unwrap();
            prop_assert_eq!(p.fleet_hosts, n);
            prop_assert!(p.savings.saving_per_month >= Money::ZERO, "{}", model.id);
            prop_assert!(p.savings.candidate.per_month <= p.savings.baseline.per_month);
        }
    }

    // A spike above the P95 does not change the Grafana bill: raising every sample above
    // a host's 95th percentile (series and points alike) leaves the quantity and the bill.
    #[test]
    fn a_spike_above_the_p95_does_not_change_the_grafana_bill(
        base in proptest::collection::vec((1_u64..100_000, 1_u64..8), 1..200),
        spike in 1_u64..1_000_000,
    ) {
        let obs: Vec<Observation> = base.iter().map(|&(series, dpm)| Observation {
            series, points: series * dpm, interval_secs: 60, ..Observation::default()
        }).collect();
        let usage = Usage::from_hosts([obs.as_slice()], "generated");
        let (p95_series, p95_points) = (usage.series_p95, usage.points_per_minute_p95);
        // Spike the samples strictly above both P95s (a series figure and its points).
        let spiked: Vec<Observation> = obs.iter().map(|o| {
            if o.series > p95_series && o.points > p95_points {
                Observation { series: o.series + spike, points: o.points + spike * 8, ..*o }
            } else { *o }
        }).collect();
        let after = Usage::from_hosts([spiked.as_slice()], "generated");
        let model = builtin().get("grafana-cloud-pro").unwrap().clone();
        let a = price(&model, &usage).unwrap();
        let b = price(&model, &after).unwrap();
        prop_assert_eq!(a.quantity, b.quantity);
        prop_assert_eq!(a.per_month, b.per_month);
    }

    // Doubling every sample doubles a linear bill (no allotment, one band, a price that
    // is a whole number of micro-units per unit), whatever the statistic.
    #[test]
    fn doubling_every_sample_doubles_a_linear_bill(
        base in proptest::collection::vec((0_u64..1_000_000, 0_u64..4_000_000), 1..100),
    ) {
        let obs: Vec<Observation> = base.iter().map(|&(series, points)| Observation {
            series, points, interval_secs: 60, ..Observation::default()
        }).collect();
        let doubled: Vec<Observation> = obs.iter()
            .map(|o| Observation { series: o.series * 2, points: o.points * 2, ..*o })
            .collect();
        for aggregation in [Aggregation::P95, Aggregation::Mean, Aggregation::HourlyMean] {
            let mut model = builtin().get("generic-per-million").unwrap().clone();
            model.aggregation = aggregation;
            let one = price(&model, &Usage::from_hosts([obs.as_slice()], "x")).unwrap();
            let two = price(&model, &Usage::from_hosts([doubled.as_slice()], "x")).unwrap();
            // A mean rounds up to a whole series once, so doubling may land one unit
            // under twice the rounded figure; the P95 doubles exactly.
            let exact = one.per_month.saturating_mul(2);
            prop_assert!(two.per_month <= exact, "{:?}", aggregation);
            prop_assert!(exact.saturating_sub(two.per_month) <= m("0.00005"), "{:?}", aggregation);
            if aggregation == Aggregation::P95 {
                prop_assert_eq!(two.per_month, exact);
            }
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

/// Two hours of one host's 1-minute samples, one series per sample, fed through the
/// agent's churn tracker: `replaced_every` minutes the series gets a new identity (a new
/// pid), or never (`None`, a steady series).
fn churning_host(replaced_every: Option<i64>) -> Vec<Observation> {
    use crate::cost::churn::ChurnTracker;
    let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(); // an hour boundary
    let mut tracker = ChurnTracker::default();
    (1..=120)
        .map(|minute| {
            let at = start + chrono::Duration::minutes(minute) - chrono::Duration::seconds(1);
            let id = replaced_every.map_or(0, |every| (minute - 1) / every);
            let f = tracker.observe(at, [u64::try_from(id).unwrap()]);
            Observation {
                taken_at: Some(at),
                series: 1,
                points: 1,
                bytes: 100,
                interval_secs: 60,
                active_series: Some(f.active),
                hour_distinct_series: Some(f.hour_distinct),
            }
        })
        .collect()
}

// The vendors' worked semantics (docs/cost-model.md, Churn): a series replaced every 5
// minutes counts 1 in each sample, but Grafana bills the series still inside their 20
// minutes (4 to 5, P95 5) and Datadog the 12 distinct ones of each hour; a steady series is
// 1 under both. Without the agents' figures the count rule applies, and the rule says so.
#[test]
fn churn_is_billed_from_the_agents_figures() {
    let catalogue = builtin();
    let quantity = |model: &str, obs: &[Observation]| {
        let c = catalogue
            .price(model, &Usage::from_hosts([obs], "churn example"))
            .unwrap();
        (c.quantity, c.quantity_rule)
    };
    let churning = churning_host(Some(5));
    assert!(churning.iter().all(|o| o.series == 1));
    let usage = Usage::from_hosts([churning.as_slice()], "x");
    assert_eq!(usage.series_p95, 1, "the per-sample count");
    assert_eq!(usage.active_series_p95, 5);
    assert_eq!(usage.series_hourly_mean, 12);
    let (q, rule) = quantity("grafana-cloud-pro", &churning);
    assert_eq!(q, 5);
    assert!(
        rule.contains(
            "series active within the last 20 minutes measured by the agents on every sample (120)"
        ),
        "{rule}"
    );
    let (q, rule) = quantity("datadog-pro", &churning);
    assert_eq!(q, 12);
    assert!(
        rule.contains("each hour's distinct series measured by the agents on every sample"),
        "{rule}"
    );
    assert_eq!(quantity("aws-cloudwatch-us-east-1", &churning).0, 12);

    let steady = churning_host(None);
    assert_eq!(quantity("grafana-cloud-pro", &steady).0, 1);
    assert_eq!(quantity("datadog-pro", &steady).0, 1);

    // Samples of older agents carry no figures: each sample's count, said to be a lower bound.
    let unmeasured: Vec<Observation> = churning
        .iter()
        .map(|o| Observation {
            active_series: None,
            hour_distinct_series: None,
            ..*o
        })
        .collect();
    let (q, rule) = quantity("grafana-cloud-pro", &unmeasured);
    assert_eq!(q, 1);
    assert!(
        rule.contains("each sample's own series count (no sample carried"),
        "{rule}"
    );
    let (q, rule) = quantity("datadog-pro", &unmeasured);
    assert_eq!(q, 1);
    assert!(
        rule.contains("each hour's highest series count (no sample carried"),
        "{rule}"
    );
    // Half measured: each observation falls back on its own; the rule counts both.
    let mixed: Vec<Observation> = churning
        .iter()
        .zip(&unmeasured)
        .enumerate()
        .map(|(i, (m, u))| if i < 60 { *u } else { *m })
        .collect();
    let (q, rule) = quantity("datadog-pro", &mixed);
    assert_eq!(
        q, 7,
        "hour 1 by its highest count (1), hour 2 by its distinct count (12)"
    );
    assert!(rule.contains("on 60 of 120 samples"), "{rule}");
}
