//! Churn: which series a vendor bills in each interval when series start and stop.
//!
//! A per-interval series count cannot tell a steady series from one replaced by another
//! (a new process id, a new pod): both count 1 in their interval. Vendors bill more for
//! the second. Grafana Cloud counts a series as active until 20 minutes after its last data
//! point, so a series replaced every 5 minutes is billed as about 5. Datadog counts the
//! distinct custom metrics of each hour, so the same series is billed as 12 in every hour.
//! Both rules need each series' identity over time; these functions take it as the set of
//! series (any stable 64-bit identity, e.g. a hash of metric and labels) seen in each
//! interval, and return the count the vendor's rule bills, ready for the statistic the
//! catalogue entry takes (P95 for Grafana, the hourly mean for Datadog).
//!
//! Sources (read 2026-12-06):
//! - Grafana: <https://grafana.com/docs/grafana-cloud/cost-management-and-billing/understand-usage-cost/metrics/>
//!   ("active series: the number of unique time series that have received data within the
//!   last 20 minutes").
//! - Datadog: <https://docs.datadoghq.com/account_management/billing/custom_metrics/>
//!   ("the total of all distinct custom metrics for each hour in a given month, divided by
//!   the number of hours in the month").

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

/// How long Grafana Cloud keeps a series active after its last data point.
pub const GRAFANA_ACTIVE_WINDOW: Duration = Duration::minutes(20);

/// The series seen in one interval: each has at least one data point in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenInterval {
    /// When the interval ended.
    pub at: DateTime<Utc>,
    /// Identities of the series with a data point in the interval (duplicates allowed).
    pub series: Vec<u64>,
}

fn in_time_order(intervals: &[SeenInterval]) -> Vec<&SeenInterval> {
    let mut ordered: Vec<&SeenInterval> = intervals.iter().collect();
    ordered.sort_by_key(|i| i.at);
    ordered
}

/// Active series at the end of each interval under an activity window: a series is
/// active at `t` when its last data point at or before `t` is less than `window` old
/// (Grafana Cloud: [`GRAFANA_ACTIVE_WINDOW`]). One `(at, active)` per interval, in time
/// order. Data points are taken at the end of their interval (a sample's time).
#[must_use]
pub fn active_series(intervals: &[SeenInterval], window: Duration) -> Vec<(DateTime<Utc>, u64)> {
    let mut last_seen: HashMap<u64, DateTime<Utc>> = HashMap::new();
    let mut out = Vec::with_capacity(intervals.len());
    for interval in in_time_order(intervals) {
        for &id in &interval.series {
            last_seen.insert(id, interval.at);
        }
        // A series whose window has closed stays inactive until it is seen again, which
        // re-inserts it: dropping it keeps the map the size of the active set.
        last_seen.retain(|_, &mut seen| interval.at - seen < window);
        out.push((interval.at, last_seen.len() as u64));
    }
    out
}

/// Distinct series of each clock hour (UTC): the series with a data point in any
/// interval that ended in the hour. One `(hour start, distinct)` per hour that has an
/// interval, in time order.
#[must_use]
pub fn hourly_distinct(intervals: &[SeenInterval]) -> Vec<(DateTime<Utc>, u64)> {
    let mut hours: BTreeMap<i64, HashSet<u64>> = BTreeMap::new();
    for interval in intervals {
        hours
            .entry(interval.at.timestamp().div_euclid(3600))
            .or_default()
            .extend(interval.series.iter().copied());
    }
    hours
        .into_iter()
        .filter_map(|(hour, set)| {
            DateTime::from_timestamp(hour.saturating_mul(3600), 0).map(|h| (h, set.len() as u64))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::nearest_rank;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() // an hour boundary
            + Duration::minutes(minutes)
    }

    fn interval(minute: i64, series: &[u64]) -> SeenInterval {
        SeenInterval {
            at: t(minute),
            series: series.to_vec(),
        }
    }

    // Grafana: "a time series is considered active if new data points have been received
    // within the last 20 minutes" (understand-usage-cost/metrics, read 2026-12-06). A
    // series that stops at minute 0 is still active at 19, no longer at 20.
    #[test]
    fn grafana_keeps_a_stopped_series_active_for_20_minutes() {
        let intervals: Vec<SeenInterval> = (0..=25)
            .map(|m| interval(m, if m == 0 { &[1, 2] } else { &[1] }))
            .collect();
        let active = active_series(&intervals, GRAFANA_ACTIVE_WINDOW);
        assert_eq!(active[0].1, 2);
        assert_eq!(
            active[19].1, 2,
            "series 2 last seen at 0 is active at 19 min"
        );
        assert_eq!(active[20].1, 1, "and no longer at 20 min");
        assert_eq!(active[25].1, 1);
        // Seen again, it is active again.
        let mut again = intervals.clone();
        again.push(interval(30, &[1, 2]));
        assert_eq!(
            active_series(&again, GRAFANA_ACTIVE_WINDOW)
                .last()
                .unwrap()
                .1,
            2
        );
    }

    // A process restarted every 5 minutes (a new pid label each time): one series per
    // interval, but Grafana bills the 4 earlier ones still inside their 20 minutes too,
    // and Datadog bills the 12 distinct ones of each hour.
    #[test]
    fn churn_is_billed_by_the_vendor_window_not_the_interval_count() {
        let intervals: Vec<SeenInterval> = (0..120)
            .map(|m| interval(m, &[u64::try_from(m / 5).unwrap()]))
            .collect();
        assert!(intervals.iter().all(|i| i.series.len() == 1));
        let active: Vec<u64> = active_series(&intervals, GRAFANA_ACTIVE_WINDOW)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        let mut sorted = active[20..].to_vec();
        sorted.sort_unstable();
        // In steady state 4 or 5 series are active (the current one and those whose last
        // point is less than 20 minutes old).
        assert_eq!(sorted.first(), Some(&4));
        assert_eq!(nearest_rank(&sorted, 95), 5);
        let hourly = hourly_distinct(&intervals);
        assert_eq!(hourly, vec![(t(0), 12), (t(60), 12)]);
    }

    // Datadog's worked example (custom_metrics, read 2026-12-06): `request.Latency` from
    // host:A and host:B with endpoint and status tags; endpoint:X on both hosts fails only
    // on host:B, endpoint:Y only on host:B and always succeeds: four distinct tag
    // combinations, four custom metrics, however often each is submitted.
    #[test]
    fn datadog_counts_distinct_tag_combinations_per_hour() {
        // host:A endpoint:X status:200 = 1, host:B X 200 = 2, host:B X 400 = 3,
        // host:B Y 200 = 4; submitted every 10 s for the hour, 400 only now and then.
        let intervals: Vec<SeenInterval> = (0..360)
            .map(|i| SeenInterval {
                at: t(0) + Duration::seconds(i * 10 + 10),
                series: if i % 7 == 0 {
                    vec![1, 2, 3, 4]
                } else {
                    vec![1, 2, 4]
                },
            })
            .filter(|i| i.at < t(60))
            .collect();
        assert_eq!(hourly_distinct(&intervals), vec![(t(0), 4)]);
    }

    #[test]
    fn empty_input_gives_nothing() {
        assert!(active_series(&[], GRAFANA_ACTIVE_WINDOW).is_empty());
        assert!(hourly_distinct(&[]).is_empty());
    }
}
