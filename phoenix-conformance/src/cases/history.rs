//! Cost history: rollup buckets with compare-and-set, range reads, retention, and the
//! facade's recording counting an interval once however many replicas record it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, DurationRound, Utc};
use phoenix_core::cost::Money;
use phoenix_core::history::{BreakdownKind, Granularity, RollupBucket, RollupRow};
use phoenix_core::measure::{CardinalitySnapshot, PackedSnapshot, SnapshotSeries};
use phoenix_core::phoenix::HistoryQuery;

use crate::TestBackend;
use crate::fixtures::{enroll, phoenix, phoenix_on};

fn bucket(granularity: Granularity, start: DateTime<Utc>, series: u64) -> RollupBucket {
    let mut b = RollupBucket::empty(granularity, start);
    b.observations = 1;
    b.stamps = BTreeSet::from([start]);
    b.hosts = 1;
    b.currencies = BTreeMap::from([("generic-per-million".to_owned(), "USD".to_owned())]);
    b.rows = BTreeMap::from([
        (
            BreakdownKind::Total,
            vec![RollupRow {
                key: String::new(),
                series,
                points_per_minute: series * 6,
                bytes_per_month: series * 1_000,
                cost: BTreeMap::from([(
                    "generic-per-million".to_owned(),
                    Money::from_micros(i64::try_from(series).unwrap() * 50),
                )]),
            }],
        ),
        (
            BreakdownKind::Metric,
            vec![RollupRow {
                key: "up".to_owned(),
                series,
                ..RollupRow::default()
            }],
        ),
    ]);
    b
}

fn hour(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::hours(1)).unwrap()
}

/// A bucket is inserted once, then changed only by compare-and-set on its version; it
/// reads back intact.
pub async fn history_rollup_compare_and_set(backend: &dyn TestBackend) {
    let h = backend.stores().history;
    let start = hour(backend.clock().now()) - Duration::days(3);
    let first = bucket(Granularity::Hour, start, 10);
    assert_eq!(h.rollup(Granularity::Hour, start).await.unwrap(), None);
    assert_eq!(h.put_rollup(&first, 0).await.unwrap(), 1);
    assert!(
        h.put_rollup(&first, 0).await.unwrap_err().is_conflict(),
        "insert-if-absent"
    );
    let stored = h.rollup(Granularity::Hour, start).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    let mut expected = first.clone();
    expected.version = 1;
    assert_eq!(stored, expected, "stored intact");
    assert_eq!(
        h.rollup(Granularity::Day, start).await.unwrap(),
        None,
        "granularities are apart"
    );

    let second = bucket(Granularity::Hour, start, 20);
    assert_eq!(h.put_rollup(&second, 1).await.unwrap(), 2);
    let stale = bucket(Granularity::Hour, start, 99);
    assert!(h.put_rollup(&stale, 1).await.unwrap_err().is_conflict());
    let stored = h.rollup(Granularity::Hour, start).await.unwrap().unwrap();
    assert_eq!(
        (stored.version, stored.rows[&BreakdownKind::Total][0].series),
        (2, 20)
    );
}

/// Ranges are half-open and ordered, limited, per granularity; retention deletes what
/// starts before the cut-off, once.
pub async fn history_rollups_range_and_retention(backend: &dyn TestBackend) {
    let h = backend.stores().history;
    let base = hour(backend.clock().now()) - Duration::days(5);
    for i in 0..6 {
        let start = base + Duration::hours(i);
        h.put_rollup(&bucket(Granularity::Hour, start, 10 + i as u64), 0)
            .await
            .unwrap();
    }
    let day = base.duration_trunc(Duration::days(1)).unwrap();
    h.put_rollup(&bucket(Granularity::Day, day, 1), 0)
        .await
        .unwrap();

    let starts = |v: &[RollupBucket]| v.iter().map(|b| b.start).collect::<Vec<_>>();
    let all = h
        .rollups(Granularity::Hour, base, base + Duration::hours(6), 100)
        .await
        .unwrap();
    assert_eq!(
        starts(&all),
        (0..6)
            .map(|i| base + Duration::hours(i))
            .collect::<Vec<_>>()
    );
    assert_eq!(all[3].rows[&BreakdownKind::Total][0].series, 13);
    let mid = h
        .rollups(
            Granularity::Hour,
            base + Duration::hours(1),
            base + Duration::hours(4),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        starts(&mid),
        (1..4)
            .map(|i| base + Duration::hours(i))
            .collect::<Vec<_>>(),
        "from inclusive, to exclusive"
    );
    let odd = h
        .rollups(
            Granularity::Hour,
            base + Duration::minutes(30),
            base + Duration::minutes(150),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        starts(&odd),
        vec![base + Duration::hours(1), base + Duration::hours(2)],
        "bounds between starts"
    );
    let limited = h
        .rollups(Granularity::Hour, base, base + Duration::hours(6), 2)
        .await
        .unwrap();
    assert_eq!(starts(&limited), starts(&all[..2]));
    let days = h
        .rollups(Granularity::Day, day, day + Duration::days(1), 100)
        .await
        .unwrap();
    assert_eq!(starts(&days), vec![day]);

    assert_eq!(
        h.prune_rollups(Granularity::Hour, base + Duration::hours(2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        h.prune_rollups(Granularity::Hour, base + Duration::hours(2))
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    let left = h
        .rollups(Granularity::Hour, base, base + Duration::hours(6), 100)
        .await
        .unwrap();
    assert_eq!(starts(&left), starts(&all[2..]));
    assert!(h.rollup(Granularity::Hour, base).await.unwrap().is_none());
    assert_eq!(
        h.rollups(Granularity::Day, day, day + Duration::days(1), 100)
            .await
            .unwrap()
            .len(),
        1,
        "another granularity is untouched"
    );
}

fn snapshot(agent: phoenix_core::ids::AgentId, host: &str, n: usize) -> CardinalitySnapshot {
    CardinalitySnapshot {
        agent_id: agent,
        host: host.to_owned(),
        taken_at: Utc::now(),
        interval_secs: 60,
        source: phoenix_core::measure::SnapshotSource::Input,
        series: (0..n)
            .map(|i| SnapshotSeries {
                metric: if i % 2 == 0 { "up" } else { "http_requests" }.to_owned(),
                labels: BTreeMap::from([("id".to_owned(), i.to_string())]),
                points: 1,
                value: None,
            })
            .collect(),
    }
}

/// Two replicas recording the same interval count it once; the next interval adds one
/// observation; a complete hour folds into its day once; retention prunes; the read shows
/// the points and a projected monthly figure.
pub async fn history_recording_is_idempotent_across_replicas(backend: &dyn TestBackend) {
    let a = phoenix(backend);
    let b = match backend.replica().await {
        Some(stores) => phoenix_on(backend, stores),
        None => phoenix(backend),
    };
    // Start a few minutes into an hour, so the next minutes stay in it.
    let now = backend.clock().now();
    let into = now - hour(now);
    if into > Duration::minutes(50) {
        backend.advance(Duration::hours(1) - into + Duration::minutes(5));
    }
    let agent = enroll(&a, "history-1").await;
    a.stores()
        .metrics
        .put_snapshot(&PackedSnapshot::pack(&snapshot(agent.id, "history-1", 40)))
        .await
        .unwrap();

    let (ta, tb) = tokio::join!(a.record_history(), b.record_history());
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert!(
        ta.recorded ^ tb.recorded,
        "exactly one replica records: {ta:?} {tb:?}"
    );
    let start = hour(backend.clock().now());
    let h = a.stores().history.clone();
    let stored = h.rollup(Granularity::Hour, start).await.unwrap().unwrap();
    assert_eq!(stored.observations, 1);
    assert_eq!(stored.rows[&BreakdownKind::Total][0].series, 40);
    // Asked again in the same interval: nothing new, even by a fresh process.
    let fresh = phoenix(backend);
    assert!(!fresh.record_history().await.unwrap().recorded);

    backend.advance(Duration::minutes(1));
    assert!(b.record_history().await.unwrap().recorded);
    assert!(!a.record_history().await.unwrap().recorded);
    let stored = h.rollup(Granularity::Hour, start).await.unwrap().unwrap();
    assert_eq!(stored.observations, 2);
    assert_eq!(stored.rows[&BreakdownKind::Total][0].series, 80);

    let view = a
        .cost_history(&HistoryQuery {
            granularity: Granularity::Hour,
            breakdown: BreakdownKind::Metric,
            pricing_model: Some("generic-per-million".to_owned()),
            from: Some(start - Duration::hours(1)),
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(view.points.len(), 1);
    let point = &view.points[0];
    assert_eq!(point.total.series, 40);
    assert_eq!(point.total.monthly_cost, Some(Money::from_micros(2_000)));
    assert_eq!(
        point.groups.iter().map(|g| g.series).sum::<u64>(),
        40,
        "{:?}",
        point.groups
    );
    let monthly = view.monthly.expect("a monthly figure");
    assert_eq!(monthly.basis, phoenix_core::history::FigureBasis::Projected);
    assert_eq!(monthly.amount, Money::from_micros(2_000));

    // Past the hour and its grace: the next record folds it into its day, once.
    let next_hour = start + Duration::hours(1) + Duration::minutes(3);
    backend.advance(next_hour - backend.clock().now());
    let (ta, tb) = tokio::join!(a.record_history(), b.record_history());
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert_eq!(ta.folded + tb.folded, 1, "{ta:?} {tb:?}");
    let day = h
        .rollup(
            Granularity::Day,
            start.duration_trunc(Duration::days(1)).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(day.observations, 2);
    assert!(day.stamps.contains(&start));

    // Past the hourly retention (14 days): the hours go, the day stays.
    backend.advance(Duration::days(15));
    let tick = a.record_history().await.unwrap();
    assert!(tick.pruned >= 2, "{tick:?}");
    assert!(h.rollup(Granularity::Hour, start).await.unwrap().is_none());
    assert!(
        h.rollup(
            Granularity::Day,
            start.duration_trunc(Duration::days(1)).unwrap()
        )
        .await
        .unwrap()
        .is_some()
    );
}
