//! Churn: which series a vendor bills in each interval when series start and stop.
//!
//! A per-interval series count cannot tell a steady series from one replaced by another
//! (a new process id, a new pod): both count 1 in their interval. Vendors bill more for
//! the second. Grafana Cloud counts a series as active until 20 minutes after its last data
//! point, so a series replaced every 5 minutes is billed as about 5. Datadog counts the
//! distinct custom metrics of each hour, so the same series is billed as 12 in every hour.
//! Both rules need each series' identity over time ([`series_identity`]: a stable 64-bit
//! hash of metric name and labels).
//!
//! The rules live once, in [`ChurnTracker`]: fed the series of each interval in time order,
//! it answers, at each interval's time, the active series under the activity window and the
//! distinct series so far in the interval's clock hour. Agents keep one per experiment
//! variant and report both figures with every sample (`VariantStats::active_series`,
//! `hour_distinct_series`); the calculator bills them (P95 of active series for Grafana,
//! each hour's final distinct count for Datadog and CloudWatch). The pure functions
//! [`active_series`] and [`hourly_distinct`] run the same tracker over a recorded history.
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
use sha2::{Digest, Sha256};

use crate::pipeline::Sample;

/// How long Grafana Cloud keeps a series active after its last data point.
pub const GRAFANA_ACTIVE_WINDOW: Duration = Duration::minutes(20);

/// Most series identities a [`ChurnTracker`] remembers, separately for the activity window
/// and for the clock hour (about 3.5 MB per tracker when full). An identity seen while its
/// memory is full is not remembered: it still counts in the figures of the interval it is
/// seen in (so a figure is never below the interval's own distinct series), but not in
/// later intervals, so beyond the cap the figures are lower bounds. Every identity left
/// out so is counted ([`ChurnTracker::untracked`]). A reported figure is therefore at most
/// the interval's series plus this cap, the bound the server checks.
pub const MAX_TRACKED_SERIES: usize = 100_000;

/// The series seen in one interval: each has at least one data point in it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeenInterval {
    /// When the interval ended.
    pub at: DateTime<Utc>,
    /// Identities of the series with a data point in the interval (duplicates allowed).
    pub series: Vec<u64>,
}

/// The stable 64-bit identity of a series: the first 8 bytes (big-endian) of the SHA-256
/// of its metric name and its labels sorted by key, each string length-prefixed. The same
/// series has the same identity in every sample, on every agent and in every version
/// (it is no `std` hasher, whose keys are random per process).
#[must_use]
pub fn series_identity<'a>(
    metric: &str,
    sorted_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut hasher = Sha256::new();
    let mut put = |s: &str| {
        hasher.update((s.len() as u64).to_le_bytes());
        hasher.update(s.as_bytes());
    };
    put(metric);
    for (k, v) in sorted_labels {
        put(k);
        put(v);
    }
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The identity of every series of `sample`: metric name and its resource attributes and
/// point attributes merged (a point attribute wins over a resource attribute of the same
/// key), as [`Sample::snapshot_series`] names a series. One identity per series, in order.
#[must_use]
pub fn sample_identities(sample: &Sample) -> Vec<u64> {
    let mut labels: Vec<(&str, &str)> = Vec::new();
    sample
        .series()
        .iter()
        .map(|s| {
            labels.clear();
            labels.extend(
                sample
                    .resource(s.resource)
                    .pairs()
                    .iter()
                    .chain(s.attributes.pairs())
                    .map(|(k, v)| (sample.resolve(*k), sample.resolve(*v))),
            );
            // Stable: among equal keys the point attribute (pushed last) stays last.
            labels.sort_by(|a, b| a.0.cmp(b.0));
            let mut merged: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
            for &(k, v) in &labels {
                match merged.last_mut() {
                    Some(last) if last.0 == k => last.1 = v,
                    _ => merged.push((k, v)),
                }
            }
            series_identity(sample.resolve(s.metric), merged)
        })
        .collect()
}

/// What a vendor's churn rules bill at one interval's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChurnFigures {
    /// Series active at the interval's time: a data point less than the window old (the
    /// interval's own series included).
    pub active: u64,
    /// Distinct series with a data point in the interval's clock hour (UTC) so far, the
    /// interval's own included. It only grows within an hour, so the hour's last figure
    /// is the hour's distinct count.
    pub hour_distinct: u64,
    /// Start of the interval's clock hour.
    pub hour: DateTime<Utc>,
}

/// The vendors' churn rules, fed one interval at a time (see the module docs): each series
/// identity's last-seen time, kept while it is inside the activity window, and the
/// identities seen in the current clock hour, each memory bounded by
/// [`MAX_TRACKED_SERIES`].
#[derive(Debug, Clone)]
pub struct ChurnTracker {
    window: Duration,
    cap: usize,
    /// Latest interval time observed.
    clock: Option<DateTime<Utc>>,
    last_seen: HashMap<u64, DateTime<Utc>>,
    /// The current clock hour (hours since the epoch) and its identities.
    hour: i64,
    hour_seen: HashSet<u64>,
    untracked: u64,
}

impl Default for ChurnTracker {
    fn default() -> Self {
        Self::new(GRAFANA_ACTIVE_WINDOW)
    }
}

impl ChurnTracker {
    /// A tracker with activity window `window` (Grafana Cloud: [`GRAFANA_ACTIVE_WINDOW`],
    /// the default) remembering at most [`MAX_TRACKED_SERIES`] identities.
    #[must_use]
    pub fn new(window: Duration) -> Self {
        Self::with_cap(window, MAX_TRACKED_SERIES)
    }

    /// The same with another cap on remembered identities (tests).
    #[must_use]
    pub fn with_cap(window: Duration, cap: usize) -> Self {
        Self {
            window,
            cap,
            clock: None,
            last_seen: HashMap::new(),
            hour: i64::MIN,
            hour_seen: HashSet::new(),
            untracked: 0,
        }
    }

    /// Identities not remembered so far because a memory was full (each counted once per
    /// interval it was seen in and left out).
    #[must_use]
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// Identities remembered now (activity window, current hour).
    #[must_use]
    pub fn remembered(&self) -> (usize, usize) {
        (self.last_seen.len(), self.hour_seen.len())
    }

    /// Records the series with a data point in the interval that ended `at` and returns the
    /// figures at `at`. Intervals are expected in time order; one older than the latest
    /// observed counts at the latest time (the tracker's clock never goes back).
    pub fn observe(
        &mut self,
        at: DateTime<Utc>,
        series: impl IntoIterator<Item = u64>,
    ) -> ChurnFigures {
        let at = self.clock.map_or(at, |c| c.max(at));
        self.clock = Some(at);
        let hour = at.timestamp().div_euclid(3600);
        if hour != self.hour {
            self.hour = hour;
            self.hour_seen.clear();
        }
        // A series whose window has closed stays inactive until it is seen again, which
        // re-inserts it: dropping it (before this interval's series take the room) keeps
        // the memory the size of the active set.
        let window = self.window;
        self.last_seen.retain(|_, &mut seen| at - seen < window);
        // Identities of this interval neither memory could take: counted now only.
        let mut extra_active: HashSet<u64> = HashSet::new();
        let mut extra_hour: HashSet<u64> = HashSet::new();
        for id in series {
            if let Some(seen) = self.last_seen.get_mut(&id) {
                *seen = at;
            } else if self.last_seen.len() < self.cap {
                self.last_seen.insert(id, at);
            } else if extra_active.insert(id) {
                self.untracked += 1;
            }
            if !self.hour_seen.contains(&id) {
                if self.hour_seen.len() < self.cap {
                    self.hour_seen.insert(id);
                } else if extra_hour.insert(id) {
                    self.untracked += 1;
                }
            }
        }
        ChurnFigures {
            active: (self.last_seen.len() + extra_active.len()) as u64,
            hour_distinct: (self.hour_seen.len() + extra_hour.len()) as u64,
            hour: DateTime::from_timestamp(hour.saturating_mul(3600), 0).unwrap_or(at),
        }
    }
}

fn in_time_order(intervals: &[SeenInterval]) -> Vec<&SeenInterval> {
    let mut ordered: Vec<&SeenInterval> = intervals.iter().collect();
    ordered.sort_by_key(|i| i.at);
    ordered
}

/// Active series at the end of each interval under an activity window: a series is
/// active at `t` when its last data point at or before `t` is less than `window` old
/// (Grafana Cloud: [`GRAFANA_ACTIVE_WINDOW`]). One `(at, active)` per interval, in time
/// order. Data points are taken at the end of their interval (a sample's time). This is
/// [`ChurnTracker::observe`] over the intervals in time order.
#[must_use]
pub fn active_series(intervals: &[SeenInterval], window: Duration) -> Vec<(DateTime<Utc>, u64)> {
    let mut tracker = ChurnTracker::new(window);
    in_time_order(intervals)
        .into_iter()
        .map(|i| (i.at, tracker.observe(i.at, i.series.iter().copied()).active))
        .collect()
}

/// Distinct series of each clock hour (UTC): the series with a data point in any
/// interval that ended in the hour. One `(hour start, distinct)` per hour that has an
/// interval, in time order: the last [`ChurnTracker::observe`] figure of each hour.
#[must_use]
pub fn hourly_distinct(intervals: &[SeenInterval]) -> Vec<(DateTime<Utc>, u64)> {
    let mut tracker = ChurnTracker::default();
    let mut hours: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
    for i in in_time_order(intervals) {
        let f = tracker.observe(i.at, i.series.iter().copied());
        hours.insert(f.hour, f.hour_distinct);
    }
    hours.into_iter().collect()
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

    // The tracker fed one interval at a time gives what the pure functions give over the
    // whole history (they run it), and what an agent reports with each sample.
    #[test]
    fn the_tracker_reports_the_vendor_figures_at_each_interval() {
        let mut tracker = ChurnTracker::default();
        let figures: Vec<ChurnFigures> = (0..120)
            .map(|m| tracker.observe(t(m), [u64::try_from(m / 5).unwrap()]))
            .collect();
        // Minute 19: the series of minutes 0, 5, 10 and 15 are all inside their 20 minutes.
        assert_eq!(figures[19].active, 4);
        // Minute 20: the first one (last point at 4) is 16 minutes old; 5 are active.
        assert_eq!(figures[20].active, 5);
        assert_eq!(figures[59].hour_distinct, 12);
        assert_eq!(
            figures[60].hour_distinct, 1,
            "a new clock hour starts afresh"
        );
        assert_eq!(figures[60].hour, t(60));
        // A steady series is 1 under both rules.
        let mut steady = ChurnTracker::default();
        for m in 0..120 {
            let f = steady.observe(t(m), [7, 7]);
            assert_eq!((f.active, f.hour_distinct), (1, 1));
        }
        assert_eq!(steady.untracked(), 0);
    }

    #[test]
    fn beyond_the_cap_identities_count_in_their_own_interval_only_and_are_counted() {
        let mut tracker = ChurnTracker::with_cap(GRAFANA_ACTIVE_WINDOW, 3);
        let f = tracker.observe(t(0), [1, 2, 3, 4, 5]);
        assert_eq!(
            (f.active, f.hour_distinct),
            (5, 5),
            "never below the interval's own"
        );
        assert_eq!(tracker.untracked(), 4, "4 and 5, once per memory");
        assert_eq!(tracker.remembered(), (3, 3));
        let f = tracker.observe(t(1), [1]);
        // 4 and 5 were not remembered: a lower bound beyond the cap.
        assert_eq!((f.active, f.hour_distinct), (3, 3));
        // The window's memory frees as series go inactive; the hour's at the next hour.
        let f = tracker.observe(t(25), [6]);
        assert_eq!(f.active, 1);
        assert_eq!(f.hour_distinct, 4);
        assert_eq!(tracker.untracked(), 5);
    }

    #[test]
    fn an_interval_older_than_the_latest_counts_at_the_latest_time() {
        let mut tracker = ChurnTracker::default();
        tracker.observe(t(30), [1]);
        let f = tracker.observe(t(0), [2]);
        assert_eq!((f.active, f.hour_distinct, f.hour), (2, 2, t(0)));
        let f = tracker.observe(t(49), [3]);
        assert_eq!(f.active, 3, "1 and 2 last seen at 30");
        let f = tracker.observe(t(50), [3]);
        assert_eq!(f.active, 1);
    }

    // The identity is stable: a fixed value, independent of the process, of label order
    // and of where a label comes from (resource or point).
    #[test]
    fn a_series_identity_is_stable_and_ignores_label_order() {
        use crate::pipeline::{SampleBuilder, sample::MetricKind};
        let id = series_identity("up", [("job", "node")]);
        assert_eq!(id, series_identity("up", [("job", "node")]));
        assert_ne!(id, series_identity("up", [("job", "nodes")]));
        assert_ne!(
            id,
            series_identity("upjob", [("", "node")]),
            "length-prefixed"
        );
        // sha256(le64(2) "up" le64(3) "job" le64(4) "node")[..8], big-endian.
        assert_eq!(id, 7_936_202_533_494_700_724, "pinned across versions");
        let mut b = SampleBuilder::new(0);
        let r = b.resource([("job", "node"), ("instance", "a")]);
        b.push(r, "up", MetricKind::Gauge, [("zone", "x")], 1.0);
        let mut c = SampleBuilder::new(0);
        let r = c.resource([("instance", "a")]);
        c.push(
            r,
            "up",
            MetricKind::Gauge,
            [("zone", "x"), ("job", "node")],
            2.0,
        );
        let (one, two) = (b.build(), c.build());
        assert_eq!(sample_identities(&one), sample_identities(&two));
        assert_eq!(
            sample_identities(&one),
            vec![series_identity(
                "up",
                [("instance", "a"), ("job", "node"), ("zone", "x")]
            )]
        );
    }

    #[test]
    fn empty_input_gives_nothing() {
        assert!(active_series(&[], GRAFANA_ACTIVE_WINDOW).is_empty());
        assert!(hourly_distinct(&[]).is_empty());
    }
}
