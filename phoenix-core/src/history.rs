//! Cost history: bounded hourly and daily rollups of the fleet's series, data points per
//! minute, estimated bytes and cost, in total and per breakdown (metric, service,
//! namespace, host), and the monthly and yearly figures read from them.
//!
//! Every rule is here and pure; stores only keep [`RollupBucket`]s with compare-and-set
//! ([`crate::store::HistoryStore`]):
//!
//! - An [`Observation`] is one analysis of the fleet's host set (the cost page's), stamped
//!   with the start of its recording interval. [`record`] adds it to its hour's bucket
//!   unless the bucket already holds that stamp, so replicas that observe the same
//!   interval count it once (the loser of the compare-and-set re-reads and finds it).
//! - A bucket holds sums over its observations; a figure is a sum divided by the
//!   observations (the mean over the bucket). Each breakdown keeps its top [`HistoryConfig::top`]
//!   keys by series plus `(other)` and `(none)`, so a bucket's size is bounded whatever
//!   the fleet: a key outside the top is summed into `(other)`, and the rows of a breakdown
//!   always sum to the total.
//! - A complete hour is folded into its day by [`fold`], once (the day bucket holds the
//!   hours folded); an hour already folded takes no more observations.
//! - [`figures`] says what a month and a year cost: `measured` when every day of the
//!   window has recorded data, otherwise `projected` from the trend of the hourly data.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::cardinality::{
    AnalysisError, AnalysisOptions, Dimension, NONE_GROUP, OTHER_GROUP, PricedBreakdowns,
    SeriesTable,
};
use crate::cost::{Catalogue, Money};
use crate::measure::CardinalitySnapshot;

/// Most buckets one history read returns.
pub const MAX_HISTORY_BUCKETS: usize = 1_000;
/// A complete hour is folded into its day this long after it ended (clock skew between
/// replicas; an hour already folded takes no more observations).
pub const FOLD_GRACE: Duration = Duration::minutes(2);
/// Complete hours looked at for folding: the current day and the day before.
pub const FOLD_LOOKBACK: Duration = Duration::days(2);
/// Days of a measured month.
pub const MONTH_DAYS: i64 = 30;
/// Days of a measured year.
pub const YEAR_DAYS: i64 = 365;
/// Hourly data a projection reads, at most.
pub const PROJECTION_WINDOW: Duration = Duration::days(7);

/// How history is recorded and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// One observation per interval (whole minutes, at least one).
    pub interval: Duration,
    /// Hourly buckets are deleted this long after they start.
    pub hourly_retention: Duration,
    /// Daily buckets are deleted this long after they start.
    pub daily_retention: Duration,
    /// Keys kept per breakdown per bucket; the rest are summed in `(other)`.
    pub top: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            interval: Duration::minutes(1),
            hourly_retention: Duration::days(14),
            daily_retention: Duration::days(400),
            top: 10,
        }
    }
}

/// Bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One bucket per UTC hour.
    Hour,
    /// One bucket per UTC day.
    Day,
}

impl Granularity {
    /// Both, hour first.
    pub const ALL: [Self; 2] = [Self::Hour, Self::Day];

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// A bucket's length.
    #[must_use]
    pub fn span(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The start of the bucket holding `t`.
    #[must_use]
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        floor(t, self.span())
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err("granularity must be `hour` or `day`".to_owned()),
        }
    }
}

/// What a history row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakdownKind {
    /// The whole fleet (one row).
    Total,
    /// Metric name.
    Metric,
    /// Service ([`crate::cardinality::SERVICE_KEYS`]).
    Service,
    /// Namespace ([`crate::cardinality::NAMESPACE_KEYS`]).
    Namespace,
    /// Host.
    Host,
}

impl BreakdownKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Total,
        Self::Metric,
        Self::Service,
        Self::Namespace,
        Self::Host,
    ];

    /// The wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Metric => "metric",
            Self::Service => "service",
            Self::Namespace => "namespace",
            Self::Host => "host",
        }
    }

    fn dimension(self) -> Option<Dimension> {
        match self {
            Self::Total => None,
            Self::Metric => Some(Dimension::Metric),
            Self::Service => Some(Dimension::Service),
            Self::Namespace => Some(Dimension::Namespace),
            Self::Host => Some(Dimension::Host),
        }
    }
}

impl fmt::Display for BreakdownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BreakdownKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                "breakdown must be `total`, `metric`, `service`, `namespace` or `host`".to_owned()
            })
    }
}

/// One key's sums over a bucket's observations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupRow {
    /// The key (metric name, service, ...; `(other)`, `(none)`; empty for the total).
    pub key: String,
    /// Sum of series.
    pub series: u64,
    /// Sum of data points per minute.
    pub points_per_minute: u64,
    /// Sum of estimated bytes per month.
    pub bytes_per_month: u64,
    /// Sum of the monthly cost, per pricing model id.
    pub cost: BTreeMap<String, Money>,
}

impl RollupRow {
    fn add(&mut self, other: &RollupRow) {
        self.series = self.series.saturating_add(other.series);
        self.points_per_minute = self
            .points_per_minute
            .saturating_add(other.points_per_minute);
        self.bytes_per_month = self.bytes_per_month.saturating_add(other.bytes_per_month);
        for (model, money) in &other.cost {
            let sum = self.cost.entry(model.clone()).or_insert(Money::ZERO);
            *sum = sum.saturating_add(*money);
        }
    }
}

/// One hourly or daily bucket: sums over its observations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupBucket {
    /// Hour or day.
    pub granularity: Granularity,
    /// Start of the bucket (UTC).
    pub start: DateTime<Utc>,
    /// Compare-and-set version, kept by the store (1 after the first write).
    #[serde(skip)]
    pub version: u64,
    /// Observations summed.
    pub observations: u64,
    /// What was summed, for idempotence: the observations' stamps (hour buckets) or the
    /// hours folded in (day buckets).
    pub stamps: BTreeSet<DateTime<Utc>>,
    /// Sum of hosts observed.
    pub hosts: u64,
    /// Sum of live agents.
    pub live_hosts: u64,
    /// Sum of live agents that had a snapshot.
    pub reporting_live: u64,
    /// Currency of each pricing model priced.
    pub currencies: BTreeMap<String, String>,
    /// Rows per breakdown kind: the total has one row, the others their top keys, then
    /// `(other)` and `(none)`.
    pub rows: BTreeMap<BreakdownKind, Vec<RollupRow>>,
}

impl RollupBucket {
    /// An empty bucket.
    #[must_use]
    pub fn empty(granularity: Granularity, start: DateTime<Utc>) -> Self {
        Self {
            granularity,
            start,
            version: 0,
            observations: 0,
            stamps: BTreeSet::new(),
            hosts: 0,
            live_hosts: 0,
            reporting_live: 0,
            currencies: BTreeMap::new(),
            rows: BTreeMap::new(),
        }
    }

    /// The end of the bucket.
    #[must_use]
    pub fn end(&self) -> DateTime<Utc> {
        self.start + self.granularity.span()
    }

    fn add(&mut self, other: &RollupBucket, top: usize) {
        self.observations += other.observations;
        self.hosts = self.hosts.saturating_add(other.hosts);
        self.live_hosts = self.live_hosts.saturating_add(other.live_hosts);
        self.reporting_live = self.reporting_live.saturating_add(other.reporting_live);
        for (model, currency) in &other.currencies {
            self.currencies
                .entry(model.clone())
                .or_insert_with(|| currency.clone());
        }
        for (kind, rows) in &other.rows {
            let mine = self.rows.entry(*kind).or_default();
            for row in rows {
                match mine.iter_mut().find(|r| r.key == row.key) {
                    Some(r) => r.add(row),
                    None => mine.push(row.clone()),
                }
            }
            bound(mine, top);
        }
    }

    /// The bucket's figures: each sum divided by its observations.
    #[must_use]
    pub fn point(&self, kind: BreakdownKind, model: &str) -> HistoryPoint {
        let n = self.observations.max(1);
        let mean_row = |row: &RollupRow| HistoryRow {
            key: row.key.clone(),
            series: mean(row.series, n),
            points_per_minute: mean(row.points_per_minute, n),
            bytes_per_month: mean(row.bytes_per_month, n),
            monthly_cost: row.cost.get(model).map(|m| mean_money(*m, n)),
        };
        let total = self
            .rows
            .get(&BreakdownKind::Total)
            .and_then(|r| r.first())
            .map_or_else(|| mean_row(&RollupRow::default()), mean_row);
        let groups = if kind == BreakdownKind::Total {
            Vec::new()
        } else {
            self.rows
                .get(&kind)
                .map(|rows| rows.iter().map(mean_row).collect())
                .unwrap_or_default()
        };
        HistoryPoint {
            start: self.start,
            observations: self.observations,
            hosts: mean(self.hosts, n),
            coverage_pct: (self.live_hosts > 0)
                .then(|| self.reporting_live as f64 * 100.0 / self.live_hosts as f64),
            total,
            groups,
        }
    }

    /// The mean monthly cost of the whole fleet under `model`, when priced.
    #[must_use]
    pub fn monthly_cost(&self, model: &str) -> Option<Money> {
        if self.observations == 0 {
            return None;
        }
        self.rows
            .get(&BreakdownKind::Total)?
            .first()?
            .cost
            .get(model)
            .map(|m| mean_money(*m, self.observations))
    }
}

fn mean(sum: u64, n: u64) -> u64 {
    (sum + n / 2) / n
}

fn mean_money(sum: Money, n: u64) -> Money {
    sum.mul_div(1, u128::from(n)).unwrap_or(sum)
}

/// Keeps the top `top` keys by series (ties by key) and sums the rest into `(other)`;
/// `(other)` and `(none)` come last.
fn bound(rows: &mut Vec<RollupRow>, top: usize) {
    let mut other: Option<RollupRow> = None;
    let mut none: Option<RollupRow> = None;
    let mut named = Vec::with_capacity(rows.len());
    for row in rows.drain(..) {
        match row.key.as_str() {
            OTHER_GROUP => other.get_or_insert_with(RollupRow::default).add(&row),
            NONE_GROUP => none.get_or_insert_with(RollupRow::default).add(&row),
            _ => named.push(row),
        }
    }
    named.sort_by(|a, b| b.series.cmp(&a.series).then_with(|| a.key.cmp(&b.key)));
    if named.len() > top {
        for row in named.drain(top..) {
            other.get_or_insert_with(RollupRow::default).add(&row);
        }
    }
    rows.extend(named);
    if let Some(mut o) = other {
        o.key = OTHER_GROUP.to_owned();
        rows.push(o);
    }
    if let Some(mut n) = none {
        n.key = NONE_GROUP.to_owned();
        rows.push(n);
    }
}

/// One analysis of the fleet, before it is added to a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The start of its recording interval.
    pub stamp: DateTime<Utc>,
    /// As a one-observation hour bucket.
    pub bucket: RollupBucket,
}

/// Analyses `snapshots` (the fleet views' host set) under every model of `catalogue` and
/// makes the observation for `stamp`, bounded to `top` keys per breakdown.
pub fn observe(
    snapshots: &[CardinalitySnapshot],
    live_hosts: u64,
    reporting_live: u64,
    catalogue: &Catalogue,
    stamp: DateTime<Utc>,
    top: usize,
) -> Result<Observation, AnalysisError> {
    observe_table(
        &SeriesTable::from_snapshots(snapshots)?,
        live_hosts,
        reporting_live,
        catalogue,
        stamp,
        top,
    )
}

/// [`observe`] on the host set's snapshots already interned (the fleet cache's table).
pub fn observe_table(
    table: &SeriesTable,
    live_hosts: u64,
    reporting_live: u64,
    catalogue: &Catalogue,
    stamp: DateTime<Utc>,
    top: usize,
) -> Result<Observation, AnalysisError> {
    let options = AnalysisOptions {
        breakdowns: BreakdownKind::ALL
            .iter()
            .filter_map(|k| k.dimension())
            .collect(),
        top,
        top_metric_labels: 0,
    };
    let models: Vec<_> = catalogue.models().iter().collect();
    let priced = table.priced_breakdowns(&options, &models)?;
    Ok(Observation {
        stamp,
        bucket: bucket_of(&priced, stamp, live_hosts, reporting_live, top),
    })
}

fn bucket_of(
    priced: &PricedBreakdowns,
    stamp: DateTime<Utc>,
    live_hosts: u64,
    reporting_live: u64,
    top: usize,
) -> RollupBucket {
    let row = |g: &crate::cardinality::PricedGroup| RollupRow {
        key: g.value.clone(),
        series: g.series,
        points_per_minute: g.points_per_minute,
        bytes_per_month: g.bytes_per_month,
        cost: priced
            .models
            .iter()
            .zip(&g.monthly)
            .map(|((id, _), m)| (id.clone(), *m))
            .collect(),
    };
    let mut rows = BTreeMap::new();
    rows.insert(BreakdownKind::Total, vec![row(&priced.total)]);
    for kind in BreakdownKind::ALL {
        let Some(dimension) = kind.dimension() else {
            continue;
        };
        if let Some((_, groups)) = priced.breakdowns.iter().find(|(d, _)| *d == dimension) {
            let mut r: Vec<RollupRow> = groups.iter().map(row).collect();
            bound(&mut r, top);
            rows.insert(kind, r);
        }
    }
    RollupBucket {
        granularity: Granularity::Hour,
        start: Granularity::Hour.start(stamp),
        version: 0,
        observations: 1,
        stamps: BTreeSet::from([stamp]),
        hosts: priced.hosts,
        live_hosts,
        reporting_live,
        currencies: priced.models.iter().cloned().collect(),
        rows,
    }
}

/// The stamp of the interval holding `now`.
#[must_use]
pub fn stamp(now: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    floor(now, interval.max(Duration::minutes(1)))
}

fn floor(t: DateTime<Utc>, span: Duration) -> DateTime<Utc> {
    t.duration_trunc(span).unwrap_or_else(|_| {
        let secs = span.num_seconds().max(1);
        Utc.timestamp_opt(t.timestamp().div_euclid(secs) * secs, 0)
            .single()
            .unwrap_or(t)
    })
}

/// Why an observation was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The hour bucket already holds this stamp (another replica, or a retry).
    AlreadyRecorded,
    /// The hour was already folded into its day.
    HourFolded,
}

/// `hour` (the stored bucket of the observation's hour, if any) with the observation
/// added, or why not. `day` is the stored bucket of its day.
pub fn record(
    hour: Option<&RollupBucket>,
    day: Option<&RollupBucket>,
    observation: &Observation,
    top: usize,
) -> Result<RollupBucket, Skip> {
    let hour_start = Granularity::Hour.start(observation.stamp);
    if day.is_some_and(|d| d.stamps.contains(&hour_start)) {
        return Err(Skip::HourFolded);
    }
    if hour.is_some_and(|h| h.stamps.contains(&observation.stamp)) {
        return Err(Skip::AlreadyRecorded);
    }
    let mut next = hour
        .cloned()
        .unwrap_or_else(|| RollupBucket::empty(Granularity::Hour, hour_start));
    next.add(&observation.bucket, top);
    next.stamps.insert(observation.stamp);
    Ok(next)
}

/// The complete hours that may still need folding at `now`, oldest first.
#[must_use]
pub fn foldable_hours(now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let last = Granularity::Hour.start(now - FOLD_GRACE) - Duration::hours(1);
    let first = Granularity::Day.start(now) - FOLD_LOOKBACK + Duration::days(1);
    let mut hours = Vec::new();
    let mut h = first;
    while h <= last {
        hours.push(h);
        h += Duration::hours(1);
    }
    hours
}

/// `day` with the complete `hour` folded in, or `None` when it already is.
#[must_use]
pub fn fold(day: Option<&RollupBucket>, hour: &RollupBucket, top: usize) -> Option<RollupBucket> {
    if day.is_some_and(|d| d.stamps.contains(&hour.start)) {
        return None;
    }
    let mut next = day.cloned().unwrap_or_else(|| {
        RollupBucket::empty(Granularity::Day, Granularity::Day.start(hour.start))
    });
    let mut added = hour.clone();
    added.stamps.clear();
    next.add(&added, top);
    next.stamps.insert(hour.start);
    Some(next)
}

/// Buckets of `granularity` starting before this are deleted at `now`.
#[must_use]
pub fn retention_cutoff(
    config: &HistoryConfig,
    granularity: Granularity,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match granularity {
        Granularity::Hour => now - config.hourly_retention,
        Granularity::Day => now - config.daily_retention,
    }
}

/// A bucket's figures: means over its observations.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    /// Start of the bucket.
    pub start: DateTime<Utc>,
    /// Observations in it.
    pub observations: u64,
    /// Mean hosts observed.
    pub hosts: u64,
    /// Live agents with a snapshot over live agents, percent (absent without live agents).
    pub coverage_pct: Option<f64>,
    /// The whole fleet.
    pub total: HistoryRow,
    /// The breakdown's keys (empty for `total`).
    pub groups: Vec<HistoryRow>,
}

/// Means of one key over a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// The key (empty for the total).
    pub key: String,
    /// Series.
    pub series: u64,
    /// Data points per minute.
    pub points_per_minute: u64,
    /// Estimated bytes per month.
    pub bytes_per_month: u64,
    /// Monthly cost under the model asked for (absent when it was not priced then).
    pub monthly_cost: Option<Money>,
}

/// Whether a figure covers its whole window with recorded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FigureBasis {
    /// Every day of the window has recorded data: the mean of the recorded days.
    Measured,
    /// Not a full window: the trend of the recorded hours, extended.
    Projected,
}

/// A monthly or yearly cost and how it was obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct CostFigure {
    /// Measured or projected.
    pub basis: FigureBasis,
    /// The cost of the period.
    pub amount: Money,
    /// Days of recorded data it comes from.
    pub days: f64,
    /// First bucket used.
    pub from: DateTime<Utc>,
    /// End of the last bucket used.
    pub to: DateTime<Utc>,
    /// How, in words.
    pub note: String,
}

/// The month's and year's cost under `model` at `now`: measured from the daily buckets
/// when every one of the last [`MONTH_DAYS`] (or [`YEAR_DAYS`]) complete days has data,
/// otherwise projected from the hourly buckets of the last [`PROJECTION_WINDOW`]: a
/// least-squares line through their mean monthly costs, read at the latest hour and held
/// within the costs observed. `None` when nothing was recorded under `model`.
#[must_use]
pub fn figures(
    daily: &[RollupBucket],
    hourly: &[RollupBucket],
    model: &str,
    now: DateTime<Utc>,
) -> (Option<CostFigure>, Option<CostFigure>) {
    let today = Granularity::Day.start(now);
    let measured = |days: i64| -> Option<CostFigure> {
        let from = today - Duration::days(days);
        let costs: Vec<Money> = daily
            .iter()
            .filter(|b| b.start >= from && b.start < today)
            .filter_map(|b| b.monthly_cost(model))
            .collect();
        if costs.len() != usize::try_from(days).unwrap_or(usize::MAX) {
            return None;
        }
        let sum = costs.iter().fold(Money::ZERO, |a, m| a.saturating_add(*m));
        Some(CostFigure {
            basis: FigureBasis::Measured,
            amount: mean_money(sum, costs.len() as u64),
            days: days as f64,
            from,
            to: today,
            note: format!(
                "measured: the mean monthly cost of the {days} complete days recorded before {}",
                today.date_naive()
            ),
        })
    };
    let projected = projection(hourly, model, now);
    let monthly = measured(MONTH_DAYS).or_else(|| projected.clone());
    let yearly = measured(YEAR_DAYS)
        .or_else(|| projected.clone())
        .map(|mut f| {
            f.amount = f.amount.saturating_mul(12);
            f
        });
    (monthly, yearly)
}

fn projection(hourly: &[RollupBucket], model: &str, now: DateTime<Utc>) -> Option<CostFigure> {
    let since = now - PROJECTION_WINDOW;
    let points: Vec<(DateTime<Utc>, f64)> = hourly
        .iter()
        .filter(|b| b.start >= since && b.start <= now)
        .filter_map(|b| b.monthly_cost(model).map(|m| (b.start, m.micros() as f64)))
        .collect();
    let (first, last) = (points.first()?.0, points.last()?.0);
    let xs: Vec<f64> = points
        .iter()
        .map(|(t, _)| (*t - first).num_seconds() as f64 / 3600.0)
        .collect();
    let ys: Vec<f64> = points.iter().map(|(_, y)| *y).collect();
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let at_last = my + slope * (xs[xs.len() - 1] - mx);
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "within the observed micro-unit amounts, which are i64"
    )]
    let amount = Money::from_micros(at_last.clamp(lo, hi).round() as i64);
    let to = last + Duration::hours(1);
    let days = ((to - first).num_minutes() as f64 / 1440.0 * 100.0).round() / 100.0;
    Some(CostFigure {
        basis: FigureBasis::Projected,
        amount,
        days,
        from: first,
        to,
        note: format!(
            "projected from {days} days of recorded data ({} hourly buckets): the least-squares trend of the hourly monthly cost at its latest hour",
            points.len()
        ),
    })
}

#[cfg(test)]
mod tests;
