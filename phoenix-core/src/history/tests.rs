use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};

use super::*;
use crate::cost::Catalogue;
use crate::ids::AgentId;
use crate::measure::SnapshotSeries;

fn at(h: i64, m: i64) -> DateTime<Utc> {
    // 2026-06-01T00:00:00Z plus h hours and m minutes.
    Utc.timestamp_opt(1_780_272_000, 0).unwrap() + Duration::hours(h) + Duration::minutes(m)
}

fn snapshot(host: &str, metrics: &[(&str, &str, usize)]) -> CardinalitySnapshot {
    let mut series = Vec::new();
    for (metric, service, n) in metrics {
        for i in 0..*n {
            series.push(SnapshotSeries {
                metric: (*metric).to_owned(),
                labels: BTreeMap::from([
                    ("service.name".to_owned(), (*service).to_owned()),
                    ("id".to_owned(), i.to_string()),
                ]),
                points: 1,
                value: None,
            });
        }
    }
    CardinalitySnapshot {
        agent_id: AgentId::new(),
        host: host.to_owned(),
        taken_at: at(0, 0),
        interval_secs: 60,
        source: Default::default(), // the host's input
        series,
    }
}

fn fleet() -> Vec<CardinalitySnapshot> {
    vec![
        snapshot("web-1", &[("http_requests", "web", 30), ("cpu", "web", 5)]),
        snapshot("db-1", &[("pg_rows", "db", 20), ("cpu", "db", 5)]),
    ]
}

fn observation(stamp: DateTime<Utc>, top: usize) -> Observation {
    observe(&fleet(), 2, 2, &Catalogue::builtin(), stamp, top).unwrap()
}

fn total_cost(bucket: &RollupBucket, kind: BreakdownKind, model: &str) -> Money {
    bucket.rows[&kind]
        .iter()
        .map(|r| r.cost[model])
        .fold(Money::ZERO, Money::saturating_add)
}

#[test]
fn an_observation_prices_every_model_and_its_rows_sum_to_the_total() {
    let o = observation(at(1, 5), 10);
    let b = &o.bucket;
    let total = &b.rows[&BreakdownKind::Total][0];
    assert_eq!(total.series, 60);
    assert_eq!(total.points_per_minute, 60);
    assert!(total.bytes_per_month > 0);
    assert_eq!(b.currencies.len(), Catalogue::builtin().models().len());
    // 60 series x $50 / 1,000,000.
    assert_eq!(total.cost["generic-per-million"], Money::from_micros(3_000));
    for kind in [
        BreakdownKind::Metric,
        BreakdownKind::Service,
        BreakdownKind::Namespace,
        BreakdownKind::Host,
    ] {
        let rows = &b.rows[&kind];
        assert_eq!(rows.iter().map(|r| r.series).sum::<u64>(), 60, "{kind}");
        for model in b.currencies.keys() {
            assert_eq!(
                total_cost(b, kind, model),
                total.cost[model],
                "{kind} {model}"
            );
        }
    }
    let metric: Vec<_> = b.rows[&BreakdownKind::Metric]
        .iter()
        .map(|r| (r.key.as_str(), r.series))
        .collect();
    assert_eq!(
        metric,
        [("http_requests", 30), ("pg_rows", 20), ("cpu", 10)]
    );
    assert_eq!(b.rows[&BreakdownKind::Namespace][0].key, NONE_GROUP);
}

#[test]
fn a_bucket_keeps_the_top_keys_and_sums_the_rest_into_other() {
    let mut o = observation(at(1, 5), 1);
    let metric = &o.bucket.rows[&BreakdownKind::Metric];
    assert_eq!(metric.len(), 2);
    assert_eq!(metric[0].key, "http_requests");
    assert_eq!(
        (metric[1].key.as_str(), metric[1].series),
        (OTHER_GROUP, 30)
    );
    // Another observation whose top key differs: the bucket stays bounded and exact.
    let second = observe(
        &[snapshot("x", &[("pg_rows", "db", 50)])],
        1,
        1,
        &Catalogue::builtin(),
        at(1, 6),
        1,
    )
    .unwrap();
    let hour = record(None, None, &o, 1).unwrap();
    let hour = record(Some(&hour), None, &second, 1).unwrap();
    let rows = &hour.rows[&BreakdownKind::Metric];
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].key, "pg_rows");
    assert_eq!(rows.iter().map(|r| r.series).sum::<u64>(), 110);
    assert_eq!(
        total_cost(&hour, BreakdownKind::Metric, "grafana-cloud-pro"),
        hour.rows[&BreakdownKind::Total][0].cost["grafana-cloud-pro"]
    );
    o.bucket.rows.clear();
}

#[test]
fn recording_is_idempotent_per_stamp_and_refused_once_the_hour_is_folded() {
    let o = observation(at(1, 5), 10);
    let hour = record(None, None, &o, 10).unwrap();
    assert_eq!(hour.start, at(1, 0));
    assert_eq!(hour.observations, 1);
    assert_eq!(
        record(Some(&hour), None, &o, 10),
        Err(Skip::AlreadyRecorded)
    );
    let hour = record(Some(&hour), None, &observation(at(1, 6), 10), 10).unwrap();
    assert_eq!(hour.observations, 2);
    assert_eq!(hour.rows[&BreakdownKind::Total][0].series, 120);
    let point = hour.point(BreakdownKind::Metric, "generic-per-million");
    assert_eq!(
        point.total.series, 60,
        "a point is the mean of the observations"
    );
    assert_eq!(point.total.monthly_cost, Some(Money::from_micros(3_000)));
    assert_eq!(point.groups.len(), 3);
    assert_eq!(point.coverage_pct, Some(100.0));

    let day = fold(None, &hour, 10).unwrap();
    assert_eq!(day.start, at(0, 0));
    assert_eq!(day.observations, 2);
    assert!(fold(Some(&day), &hour, 10).is_none(), "an hour folds once");
    assert_eq!(
        record(Some(&hour), Some(&day), &observation(at(1, 7), 10), 10),
        Err(Skip::HourFolded)
    );
    let later = record(None, Some(&day), &observation(at(2, 0), 10), 10).unwrap();
    let day = fold(Some(&day), &later, 10).unwrap();
    assert_eq!(day.observations, 3);
    assert_eq!(day.stamps.len(), 2);
    assert_eq!(
        day.monthly_cost("generic-per-million"),
        Some(Money::from_micros(3_000))
    );
}

#[test]
fn complete_hours_fold_after_the_grace_within_the_lookback() {
    assert_eq!(
        stamp(at(3, 7) + Duration::seconds(42), Duration::minutes(1)),
        at(3, 7)
    );
    assert_eq!(stamp(at(3, 7), Duration::minutes(5)), at(3, 5));
    let hours = foldable_hours(at(26, 1));
    assert_eq!(hours.first(), Some(&at(0, 0)), "yesterday included");
    assert_eq!(
        hours.last(),
        Some(&at(24, 0)),
        "the hour before the last one still waits"
    );
    assert_eq!(foldable_hours(at(26, 3)).last(), Some(&at(25, 0)));
    assert!(foldable_hours(at(0, 1)).iter().all(|h| *h < at(0, 0)));
}

fn day_bucket(day: i64, micros: i64) -> RollupBucket {
    let mut b = RollupBucket::empty(Granularity::Day, at(24 * day, 0));
    b.observations = 2;
    b.rows.insert(
        BreakdownKind::Total,
        vec![RollupRow {
            cost: BTreeMap::from([("m".to_owned(), Money::from_micros(2 * micros))]),
            ..RollupRow::default()
        }],
    );
    b
}

fn hour_bucket(hour: i64, micros: i64) -> RollupBucket {
    let mut b = day_bucket(0, micros);
    b.granularity = Granularity::Hour;
    b.start = at(hour, 0);
    b
}

#[test]
fn a_full_window_is_measured_and_anything_less_is_projected_from_the_trend() {
    let now = at(24 * 40 + 5, 0);
    let daily: Vec<_> = (10..40).map(|d| day_bucket(d, 1_000_000 + d)).collect();
    let hourly: Vec<_> = (0..5).map(|h| hour_bucket(24 * 40 + h, 500)).collect();
    let (monthly, yearly) = figures(&daily, &hourly, "m", now);
    let monthly = monthly.unwrap();
    assert_eq!(monthly.basis, FigureBasis::Measured);
    assert_eq!(monthly.days, 30.0);
    // Mean of 1,000,010 ..= 1,000,039.
    assert_eq!(monthly.amount, Money::from_micros(1_000_025));
    let yearly = yearly.unwrap();
    assert_eq!(yearly.basis, FigureBasis::Projected, "not 365 days");
    assert_eq!(yearly.amount, Money::from_micros(500 * 12));

    // One day missing: projected from the hours.
    let (monthly, _) = figures(&daily[1..], &hourly, "m", now);
    let monthly = monthly.unwrap();
    assert_eq!(monthly.basis, FigureBasis::Projected);
    assert_eq!(monthly.amount, Money::from_micros(500));
    assert!((monthly.days - 0.21).abs() < 1e-9, "{}", monthly.days);
    assert!(monthly.note.contains("0.21 days"), "{}", monthly.note);

    // A falling trend reads at its latest hour, held within what was observed.
    let falling: Vec<_> = (0..4)
        .map(|h| hour_bucket(24 * 40 + h, 1_000 - 200 * h))
        .collect();
    let (monthly, _) = figures(&[], &falling, "m", now);
    assert_eq!(monthly.unwrap().amount, Money::from_micros(400));
    let step: Vec<_> = (0..4)
        .map(|h| hour_bucket(24 * 40 + h, if h < 2 { 1_000 } else { 100 }))
        .collect();
    let (monthly, _) = figures(&[], &step, "m", now);
    let amount = monthly.unwrap().amount.micros();
    assert!((100..=1_000).contains(&amount), "{amount}");

    // Another model, or nothing recorded: no figure.
    assert_eq!(figures(&daily, &hourly, "other", now), (None, None));
    assert_eq!(figures(&[], &[], "m", now), (None, None));
}

#[test]
fn names_parse_and_print() {
    for g in Granularity::ALL {
        assert_eq!(g.as_str().parse::<Granularity>(), Ok(g));
    }
    for k in BreakdownKind::ALL {
        assert_eq!(k.to_string().parse::<BreakdownKind>(), Ok(k));
    }
    assert!("week".parse::<Granularity>().is_err());
    assert!("label".parse::<BreakdownKind>().is_err());
}
