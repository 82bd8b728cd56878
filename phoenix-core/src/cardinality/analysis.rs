//! One pass over a [`SeriesTable`]: totals, breakdowns by any dimension with top
//! contributors, label cardinalities (overall and per metric), and the cost flow.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::table::SeriesTable;
use crate::cost::{
    CostBreakdown, CostError, Money, PricingModel, SECONDS_PER_MONTH, Usage, allocate,
    allocate_units, group_digits, price,
};

/// Label keys tried, in order, for [`Dimension::Service`].
pub const SERVICE_KEYS: [&str; 4] = ["service.name", "service", "job", "app"];
/// Label keys tried, in order, for [`Dimension::Namespace`].
pub const NAMESPACE_KEYS: [&str; 4] = [
    "k8s.namespace.name",
    "namespace",
    "kubernetes_namespace",
    "k8s_namespace",
];
/// Group name of series that lack the dimension's label.
pub const NONE_GROUP: &str = "(none)";
/// Group name of everything past the top contributors.
pub const OTHER_GROUP: &str = "(other)";
/// Bytes of one exposition line besides the name and labels: a space, the value, a space,
/// a millisecond timestamp and the newline (used to estimate bytes from a snapshot).
pub const EXPOSITION_VALUE_BYTES: u64 = 32;

/// What series are grouped by. On the wire: `metric`, `host`, `service`, `namespace`,
/// or `label:<key>` (a bare key is read as a label too).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// The metric name.
    Metric,
    /// The host (snapshot) a series came from.
    Host,
    /// The first of [`SERVICE_KEYS`] present in the snapshots.
    Service,
    /// The first of [`NAMESPACE_KEYS`] present in the snapshots.
    Namespace,
    /// Any label key.
    Label(String),
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Metric => f.write_str("metric"),
            Self::Host => f.write_str("host"),
            Self::Service => f.write_str("service"),
            Self::Namespace => f.write_str("namespace"),
            Self::Label(key) => write!(f, "label:{key}"),
        }
    }
}

impl FromStr for Dimension {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s {
            "" => return Err("a dimension must not be empty".to_owned()),
            "metric" | "__name__" => Self::Metric,
            "host" => Self::Host,
            "service" => Self::Service,
            "namespace" => Self::Namespace,
            other => {
                let key = other.strip_prefix("label:").unwrap_or(other);
                if key.is_empty() {
                    return Err("a label dimension needs a key (`label:<key>`)".to_owned());
                }
                Self::Label(key.to_owned())
            }
        })
    }
}

impl Serialize for Dimension {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dimension {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What to compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisOptions {
    /// Breakdowns (and cost flows) to compute.
    #[serde(default = "default_breakdowns")]
    pub breakdowns: Vec<Dimension>,
    /// Top contributors listed per breakdown; the rest are summed in `(other)`.
    #[serde(default = "default_top")]
    pub top: usize,
    /// (metric, label) pairs listed, highest cardinality first.
    #[serde(default = "default_top_metric_labels")]
    pub top_metric_labels: usize,
}

fn default_breakdowns() -> Vec<Dimension> {
    vec![
        Dimension::Metric,
        Dimension::Service,
        Dimension::Namespace,
        Dimension::Host,
    ]
}

fn default_top() -> usize {
    20
}

fn default_top_metric_labels() -> usize {
    50
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            breakdowns: default_breakdowns(),
            top: default_top(),
            top_metric_labels: default_top_metric_labels(),
        }
    }
}

/// One group of a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The group's value (metric name, host, label value, `(none)` or `(other)`).
    pub value: String,
    /// Series in the group.
    pub series: u64,
    /// Data points per minute of the group.
    pub points_per_minute: u64,
    /// Share of all series in percent; the groups of a breakdown sum to exactly 100.
    pub share_pct: f64,
}

/// Series grouped by one dimension, top contributors first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// The dimension.
    pub dimension: Dimension,
    /// The label key it resolved to (`None` for metric and host, or when no series has it).
    pub key: Option<String>,
    /// Distinct groups, `(none)` excluded.
    pub distinct_groups: u64,
    /// Top contributors by series (ties by name), then `(other)` and `(none)` if not empty.
    pub groups: Vec<GroupStats>,
}

/// Cardinality of one label key over all series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelKeyStats {
    /// The key.
    pub key: String,
    /// Distinct values.
    pub distinct_values: u64,
    /// Series carrying the key.
    pub series: u64,
}

/// Cardinality of one label key within one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricLabelStats {
    /// The metric.
    pub metric: String,
    /// The label key.
    pub key: String,
    /// Distinct values of the key among the metric's series.
    pub distinct_values: u64,
    /// Series of the metric carrying the key.
    pub series: u64,
    /// Series of the metric.
    pub metric_series: u64,
}

/// How the cost flow shares the bill between groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostDriver {
    /// In proportion to series.
    Series,
    /// In proportion to billed series, `max(series, points per minute / included DPM)`.
    DpmAdjustedSeries,
    /// In proportion to bytes per month estimated from the exposition format.
    EstimatedBytes,
}

/// One group's share of the bill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowGroup {
    /// The group's value.
    pub value: String,
    /// The group's quantity of the driver (series, billed series or bytes per month).
    pub driver_quantity: u64,
    /// Its share of the monthly bill; the groups sum exactly to the bill.
    pub monthly: Money,
    /// Share in hundredths of a percent; the groups sum to exactly 10,000.
    pub basis_points: u32,
    /// `basis_points / 100`.
    pub share_pct: f64,
}

/// The bill of one breakdown's groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowBreakdown {
    /// The dimension.
    pub dimension: Dimension,
    /// The label key it resolved to.
    pub key: Option<String>,
    /// Same groups as the breakdown.
    pub groups: Vec<FlowGroup>,
}

/// Where the money goes: the snapshots' bill under one pricing model, shared between the
/// groups of every breakdown in proportion to the driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostFlow {
    /// The bill of all analysed series, with its price source.
    pub cost: CostBreakdown,
    /// How it is shared.
    pub driver: CostDriver,
    /// Shares per breakdown.
    pub flows: Vec<FlowBreakdown>,
    /// Caveats (estimated bytes, ...).
    pub notes: Vec<String>,
}

/// One group of [`SeriesTable::priced_breakdowns`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedGroup {
    /// The group's value (empty for the total).
    pub value: String,
    /// Series.
    pub series: u64,
    /// Data points per minute.
    pub points_per_minute: u64,
    /// Bytes per month estimated from the exposition format.
    pub bytes_per_month: u64,
    /// Its share of the monthly bill, one per model in the order given.
    pub monthly: Vec<Money>,
}

/// What [`SeriesTable::priced_breakdowns`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedBreakdowns {
    /// Snapshots (hosts) analysed.
    pub hosts: u64,
    /// The models priced, as (id, currency), in the order given.
    pub models: Vec<(String, String)>,
    /// Every series.
    pub total: PricedGroup,
    /// Per breakdown: top groups, then `(other)` and `(none)`.
    pub breakdowns: Vec<(Dimension, Vec<PricedGroup>)>,
}

/// Everything the cardinality explorer shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardinalityReport {
    /// Snapshots (hosts) analysed.
    pub hosts: u64,
    /// Earliest snapshot time.
    pub taken_from: Option<DateTime<Utc>>,
    /// Latest snapshot time.
    pub taken_to: Option<DateTime<Utc>>,
    /// Series analysed (host, metric and labels identify one).
    pub total_series: u64,
    /// Data points per minute of all series.
    pub points_per_minute: u64,
    /// Distinct metric names.
    pub distinct_metrics: u64,
    /// Every label key, highest cardinality first (ties by key).
    pub label_keys: Vec<LabelKeyStats>,
    /// (metric, label) pairs, highest cardinality first, at most `top_metric_labels`.
    pub metric_labels: Vec<MetricLabelStats>,
    /// One per requested dimension.
    pub breakdowns: Vec<Breakdown>,
    /// Where the money goes, when a pricing model was given.
    pub cost_flow: Option<CostFlow>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupAcc {
    pub(crate) series: u64,
    /// Points per minute, in millionths.
    pub(crate) micro_ppm: u64,
    /// Estimated bytes per month (only when a bytes-metered model asks).
    pub(crate) bytes: u64,
}

impl GroupAcc {
    fn add(&mut self, other: GroupAcc) {
        self.series += other.series;
        self.micro_ppm += other.micro_ppm;
        self.bytes += other.bytes;
    }

    pub(crate) fn ppm(self) -> u64 {
        self.micro_ppm.div_ceil(1_000_000)
    }
}

#[derive(Debug, Clone, Copy)]
enum Resolved {
    Metric,
    Host,
    /// Slot in the per-series scratch of label values.
    Key {
        key: u32,
        slot: usize,
    },
    Absent,
}

const NO_SLOT: u32 = u32::MAX;

/// Per-host rate factors.
pub(crate) struct HostRates {
    /// Millionths of a point per minute, per point in the interval: 60e6 / interval.
    pub(crate) micro_ppm_per_point: Vec<u64>,
    /// Seconds per month / interval (rounded): bytes per interval -> bytes per month.
    pub(crate) months_factor: Vec<u64>,
}

impl HostRates {
    pub(crate) fn new(table: &SeriesTable) -> Self {
        let per = |num: u64, interval: u32| {
            let interval = u64::from(interval.max(1));
            (num + interval / 2) / interval
        };
        Self {
            micro_ppm_per_point: table
                .hosts
                .iter()
                .map(|h| per(60_000_000, h.interval_secs))
                .collect(),
            months_factor: table
                .hosts
                .iter()
                .map(|h| per(SECONDS_PER_MONTH, h.interval_secs))
                .collect(),
        }
    }
}

/// Estimated exposition bytes of one point of series `i`.
#[inline]
pub(crate) fn line_bytes(table: &SeriesTable, metric: u32, i: usize) -> u64 {
    let mut len = table.metrics.byte_len(metric) as u64 + 2 + EXPOSITION_VALUE_BYTES;
    for l in table.series_labels(i) {
        len += (table.keys.byte_len(l.key) + table.values[l.key as usize].byte_len(l.value)) as u64
            + 4;
    }
    len
}

/// Totals of the whole table.
pub(crate) fn usage_of(table: &SeriesTable, total: GroupAcc, with_bytes: bool) -> Usage {
    let mut hosts: Vec<_> = table.hosts.iter().map(|h| h.agent_id).collect();
    hosts.sort_unstable();
    hosts.dedup();
    Usage::steady(
        hosts.len() as u64,
        total.series,
        total.ppm(),
        if with_bytes { total.bytes } else { 0 },
        format!(
            "cardinality snapshots of {} hosts, {} series",
            group_digits(hosts.len() as u64),
            group_digits(total.series)
        ),
    )
}

impl SeriesTable {
    /// Analyses the table; with a pricing model, the cost flow too.
    pub fn analyze(
        &self,
        options: &AnalysisOptions,
        model: Option<&PricingModel>,
    ) -> Result<CardinalityReport, CostError> {
        let want_bytes = model.is_some_and(|m| !m.meter.counts_series());
        let (mut report, total, grouped) = self.grouped(options, want_bytes);
        if let Some(model) = model {
            report.cost_flow = Some(cost_flow(
                model,
                &usage_of(self, total, want_bytes),
                &report.breakdowns,
                &grouped,
            )?);
        }
        Ok(report)
    }

    /// Every breakdown's groups with their series, points per minute and estimated bytes
    /// per month, and each group's share of the bill under every one of `models` (the
    /// cost flow's rule, one pass over the series whatever the number of models). What
    /// cost history records ([`crate::history`]).
    pub fn priced_breakdowns(
        &self,
        options: &AnalysisOptions,
        models: &[&PricingModel],
    ) -> Result<PricedBreakdowns, CostError> {
        let (report, total, grouped) = self.grouped(options, true);
        let mut flows = Vec::with_capacity(models.len());
        for model in models {
            let with_bytes = !model.meter.counts_series();
            flows.push(cost_flow(
                model,
                &usage_of(self, total, with_bytes),
                &report.breakdowns,
                &grouped,
            )?);
        }
        let group = |value: &str, acc: &GroupAcc, monthly: Vec<Money>| PricedGroup {
            value: value.to_owned(),
            series: acc.series,
            points_per_minute: acc.ppm(),
            bytes_per_month: acc.bytes,
            monthly,
        };
        Ok(PricedBreakdowns {
            hosts: report.hosts,
            models: models
                .iter()
                .map(|m| (m.id.clone(), m.currency.clone()))
                .collect(),
            total: group("", &total, flows.iter().map(|f| f.cost.per_month).collect()),
            breakdowns: report
                .breakdowns
                .iter()
                .zip(&grouped)
                .enumerate()
                .map(|(b, (breakdown, rows))| {
                    (
                        breakdown.dimension.clone(),
                        rows.iter()
                            .enumerate()
                            .map(|(g, (value, acc))| {
                                group(
                                    value,
                                    acc,
                                    flows.iter().map(|f| f.flows[b].groups[g].monthly).collect(),
                                )
                            })
                            .collect(),
                    )
                })
                .collect(),
        })
    }

    /// The analysis without the cost flow, its totals and every breakdown's rows.
    #[allow(
        clippy::type_complexity,
        reason = "private; the rows are what the cost flow shares the bill over"
    )]
    fn grouped(
        &self,
        options: &AnalysisOptions,
        want_bytes: bool,
    ) -> (CardinalityReport, GroupAcc, Vec<Vec<(String, GroupAcc)>>) {
        let key_count = self.keys.len();
        let rates = HostRates::new(self);

        // Resolve dimensions to keys; several dimensions may share one key's slot.
        let mut slot_of_key = vec![NO_SLOT; key_count];
        let mut slots = 0_usize;
        let resolved: Vec<(Resolved, Option<String>)> = options
            .breakdowns
            .iter()
            .map(|d| {
                let key = match d {
                    Dimension::Metric => return (Resolved::Metric, None),
                    Dimension::Host => return (Resolved::Host, None),
                    Dimension::Service => SERVICE_KEYS.iter().find_map(|k| self.key_id(k)),
                    Dimension::Namespace => NAMESPACE_KEYS.iter().find_map(|k| self.key_id(k)),
                    Dimension::Label(k) => self.key_id(k),
                };
                match key {
                    None => (Resolved::Absent, None),
                    Some(key) => {
                        let k = key as usize;
                        if slot_of_key[k] == NO_SLOT {
                            slot_of_key[k] = u32::try_from(slots).unwrap_or(NO_SLOT);
                            slots += 1;
                        }
                        (
                            Resolved::Key {
                                key,
                                slot: slot_of_key[k] as usize,
                            },
                            Some(self.keys.resolve(key).to_owned()),
                        )
                    }
                }
            })
            .collect();
        let mut accs: Vec<Vec<GroupAcc>> = resolved
            .iter()
            .map(|(r, _)| {
                let groups = match r {
                    Resolved::Metric => self.metrics.len(),
                    Resolved::Host => self.hosts.len(),
                    Resolved::Key { key, .. } => self.values[*key as usize].len() + 1,
                    Resolved::Absent => 1,
                };
                vec![GroupAcc::default(); groups]
            })
            .collect();

        // Per key: series carrying it; per (metric, key): distinct values via a stamp per
        // (key, value) holding the last metric that used it.
        let mut value_base = Vec::with_capacity(key_count);
        let mut all_values = 0_usize;
        for v in &self.values {
            value_base.push(all_values);
            all_values += v.len();
        }
        let mut stamp = vec![0_u32; all_values];
        let mut key_series = vec![0_u64; key_count];
        let mut mk_distinct = vec![0_u64; key_count];
        let mut mk_series = vec![0_u64; key_count];
        let mut touched: Vec<u32> = Vec::new();
        let mut metric_labels: Vec<MetricLabelStats> = Vec::new();
        let mut scratch = vec![u32::MAX; slots];
        let mut total = GroupAcc::default();

        for (metric, &(start, end)) in self.metric_ranges.iter().enumerate() {
            let metric_id = u32::try_from(metric).unwrap_or(u32::MAX);
            let mark = metric_id.wrapping_add(1);
            for i in start as usize..end as usize {
                let host = self.series_host[i] as usize;
                let points = self.series_points[i];
                let acc = GroupAcc {
                    series: 1,
                    micro_ppm: points.saturating_mul(rates.micro_ppm_per_point[host]),
                    bytes: if want_bytes {
                        points
                            .saturating_mul(line_bytes(self, metric_id, i))
                            .saturating_mul(rates.months_factor[host])
                    } else {
                        0
                    },
                };
                total.add(acc);
                scratch.fill(u32::MAX);
                for l in self.series_labels(i) {
                    let k = l.key as usize;
                    key_series[k] += 1;
                    if mk_series[k] == 0 {
                        touched.push(l.key);
                    }
                    mk_series[k] += 1;
                    let idx = value_base[k] + l.value as usize;
                    if stamp[idx] != mark {
                        stamp[idx] = mark;
                        mk_distinct[k] += 1;
                    }
                    let slot = slot_of_key[k];
                    if slot != NO_SLOT {
                        scratch[slot as usize] = l.value;
                    }
                }
                for ((r, _), groups) in resolved.iter().zip(accs.iter_mut()) {
                    let g = match *r {
                        Resolved::Metric => metric,
                        Resolved::Host => host,
                        Resolved::Key { slot, .. } => {
                            let v = scratch[slot];
                            if v == u32::MAX {
                                groups.len() - 1
                            } else {
                                v as usize
                            }
                        }
                        Resolved::Absent => 0,
                    };
                    groups[g].add(acc);
                }
            }
            let metric_series = u64::from(end - start);
            for &key in &touched {
                let k = key as usize;
                metric_labels.push(MetricLabelStats {
                    metric: self.metrics.resolve(metric_id).to_owned(),
                    key: self.keys.resolve(key).to_owned(),
                    distinct_values: mk_distinct[k],
                    series: mk_series[k],
                    metric_series,
                });
                mk_distinct[k] = 0;
                mk_series[k] = 0;
            }
            touched.clear();
        }

        metric_labels.sort_by(|a, b| {
            b.distinct_values
                .cmp(&a.distinct_values)
                .then_with(|| a.metric.cmp(&b.metric))
                .then_with(|| a.key.cmp(&b.key))
        });
        metric_labels.truncate(options.top_metric_labels);

        let mut label_keys: Vec<LabelKeyStats> = (0..key_count)
            .map(|k| LabelKeyStats {
                key: self.keys.resolve(k as u32).to_owned(),
                distinct_values: self.values[k].len() as u64,
                series: key_series[k],
            })
            .collect();
        label_keys.sort_by(|a, b| {
            b.distinct_values
                .cmp(&a.distinct_values)
                .then_with(|| a.key.cmp(&b.key))
        });

        // Top contributors per breakdown, then `(other)` and `(none)`.
        let mut breakdowns = Vec::with_capacity(resolved.len());
        let mut grouped: Vec<Vec<(String, GroupAcc)>> = Vec::with_capacity(resolved.len());
        for ((dimension, (r, key)), groups) in options.breakdowns.iter().zip(&resolved).zip(&accs) {
            let (named, none) = match r {
                Resolved::Key { .. } | Resolved::Absent => {
                    let (last, rest) = groups
                        .split_last()
                        .map_or((GroupAcc::default(), &[][..]), |(l, r)| (*l, r));
                    (rest, last)
                }
                Resolved::Metric | Resolved::Host => (&groups[..], GroupAcc::default()),
            };
            let name = |g: usize| -> &str {
                match r {
                    Resolved::Metric => self.metrics.resolve(g as u32),
                    Resolved::Host => &self.hosts[g].host,
                    Resolved::Key { key, .. } => self.values[*key as usize].resolve(g as u32),
                    Resolved::Absent => NONE_GROUP,
                }
            };
            let mut order: Vec<usize> = (0..named.len()).filter(|&g| named[g].series > 0).collect();
            let distinct_groups = order.len() as u64;
            let cmp = |a: &usize, b: &usize| {
                named[*b]
                    .series
                    .cmp(&named[*a].series)
                    .then_with(|| name(*a).cmp(name(*b)))
            };
            if order.len() > options.top && options.top > 0 {
                order.select_nth_unstable_by(options.top - 1, cmp);
            }
            let shown = order.len().min(options.top);
            order[..shown].sort_by(cmp);
            let mut rows: Vec<(String, GroupAcc)> = order[..shown]
                .iter()
                .map(|&g| (name(g).to_owned(), named[g]))
                .collect();
            let mut other = GroupAcc::default();
            for &g in &order[shown..] {
                other.add(named[g]);
            }
            if other.series > 0 {
                rows.push((OTHER_GROUP.to_owned(), other));
            }
            if none.series > 0 {
                rows.push((NONE_GROUP.to_owned(), none));
            }
            let weights: Vec<u128> = rows.iter().map(|(_, a)| u128::from(a.series)).collect();
            let bps = allocate_units(10_000, &weights);
            breakdowns.push(Breakdown {
                dimension: dimension.clone(),
                key: key.clone(),
                distinct_groups,
                groups: rows
                    .iter()
                    .zip(&bps)
                    .map(|((value, a), &bp)| GroupStats {
                        value: value.clone(),
                        series: a.series,
                        points_per_minute: a.ppm(),
                        share_pct: bp_to_pct(bp),
                    })
                    .collect(),
            });
            grouped.push(rows);
        }

        let taken_from = self.hosts.iter().map(|h| h.taken_at).min();
        let taken_to = self.hosts.iter().map(|h| h.taken_at).max();
        let report = CardinalityReport {
            hosts: self.hosts.len() as u64,
            taken_from,
            taken_to,
            total_series: total.series,
            points_per_minute: total.ppm(),
            distinct_metrics: self.metrics.len() as u64,
            label_keys,
            metric_labels,
            breakdowns,
            cost_flow: None,
        };
        (report, total, grouped)
    }
}

fn bp_to_pct(bp: u128) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "at most 10,000")]
    {
        bp as f64 / 100.0
    }
}

fn cost_flow(
    model: &PricingModel,
    usage: &Usage,
    breakdowns: &[Breakdown],
    grouped: &[Vec<(String, GroupAcc)>],
) -> Result<CostFlow, CostError> {
    let cost = price(model, usage)?;
    let (driver, notes) = if !model.meter.counts_series() {
        (
            CostDriver::EstimatedBytes,
            vec![format!(
                "Bytes are estimated from the Prometheus text exposition size of each series (name, labels and {EXPOSITION_VALUE_BYTES} bytes of value and timestamp per point): a snapshot carries no measured encoding."
            )],
        )
    } else if model.included_dpm_per_series.is_some() {
        (CostDriver::DpmAdjustedSeries, Vec::new())
    } else {
        (CostDriver::Series, Vec::new())
    };
    let quantity = |a: &GroupAcc| -> u64 {
        match driver {
            CostDriver::Series => a.series,
            CostDriver::DpmAdjustedSeries => {
                let dpm = u64::from(model.included_dpm_per_series.unwrap_or(1).max(1));
                a.series.max(a.ppm().div_ceil(dpm))
            }
            CostDriver::EstimatedBytes => a.bytes,
        }
    };
    let flows = breakdowns
        .iter()
        .zip(grouped)
        .map(|(b, rows)| {
            let drivers: Vec<u64> = rows.iter().map(|(_, a)| quantity(a)).collect();
            let weights: Vec<u128> = drivers.iter().map(|&d| u128::from(d)).collect();
            let money = allocate(cost.per_month, &weights);
            let bps = allocate_units(10_000, &weights);
            FlowBreakdown {
                dimension: b.dimension.clone(),
                key: b.key.clone(),
                groups: rows
                    .iter()
                    .zip(drivers)
                    .zip(money)
                    .zip(bps)
                    .map(|((((value, _), d), monthly), bp)| FlowGroup {
                        value: value.clone(),
                        driver_quantity: d,
                        monthly,
                        basis_points: u32::try_from(bp).unwrap_or(u32::MAX),
                        share_pct: bp_to_pct(bp),
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(CostFlow {
        cost,
        driver,
        flows,
        notes,
    })
}
