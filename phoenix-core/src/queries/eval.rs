//! Whether a candidate's series still answer a query as the baseline's did.
//!
//! For each selector of a query, the baseline series it matches (`B`) and the candidate
//! series it matches (`C`):
//!
//! - the query returns no series from the baseline: it is **unobserved** (this output
//!   never had its series, nothing to compare). That is `B` empty for every selector, or
//!   for one that the query cannot answer without (`a * on (x) b` needs both, `a or b`
//!   either, `a unless b` its left side; `vector(0)` is a constant, `absent(x)` answers
//!   from `x`).
//! - `B` not empty and `C` empty: **broken**, with the reason (a matcher's label gone from
//!   the metric, or the metric gone, or its series filtered out).
//! - labels present in `B` and absent from `C` that the query groups, matches or copies by,
//!   or that reach its output unaggregated: **changed** (it answers, with groups merged or
//!   output series relabelled).
//! - otherwise **answered**.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::InventoryQuery;
use super::needs::{Compiled, CompiledSelector, compile};

/// One series: a metric name and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Series {
    /// The metric name.
    pub metric: String,
    /// The labels (without `__name__`).
    pub labels: BTreeMap<String, String>,
}

impl Series {
    /// A series from a name and label pairs.
    #[must_use]
    pub fn new<K: Into<String>, V: Into<String>>(
        metric: impl Into<String>,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            metric: metric.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// How a query fares under a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryStatus {
    /// It answers as under the baseline.
    Answered,
    /// It answers, differently: groups merge or output series lose labels.
    Changed,
    /// It returns nothing where the baseline returned something, or loses a label it
    /// filters on.
    Broken,
    /// Its series are not in the baseline either.
    Unobserved,
}

impl QueryStatus {
    /// Every status, from the least to the most severe for a query's keeper: a query's
    /// status over many samples is the most severe it had in any ([`QueryStatus::severity`]).
    pub const ALL: [QueryStatus; 4] = [
        QueryStatus::Unobserved,
        QueryStatus::Answered,
        QueryStatus::Changed,
        QueryStatus::Broken,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Changed => "changed",
            Self::Broken => "broken",
            Self::Unobserved => "unobserved",
        }
    }

    /// The letter a sample reports it by (`a`, `c`, `b`, `u`).
    #[must_use]
    pub fn letter(self) -> char {
        match self {
            Self::Answered => 'a',
            Self::Changed => 'c',
            Self::Broken => 'b',
            Self::Unobserved => 'u',
        }
    }

    /// The status a sample's letter names.
    #[must_use]
    pub fn from_letter(letter: char) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.letter() == letter)
    }

    /// Rank from unobserved (0) to broken (3): broken anywhere is broken, changed anywhere
    /// (and broken nowhere) is changed, observed and never affected is answered.
    #[must_use]
    pub fn severity(self) -> u8 {
        match self {
            Self::Unobserved => 0,
            Self::Answered => 1,
            Self::Changed => 2,
            Self::Broken => 3,
        }
    }
}

/// The status of one query, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryVerdict {
    /// The query's name.
    pub name: String,
    /// Where it is.
    pub location: String,
    /// The status.
    pub status: QueryStatus,
    /// Why (empty when answered).
    pub reasons: Vec<String>,
}

fn matches(selector: &CompiledSelector, series: &Series) -> bool {
    selector.matches(&series.metric, |l| series.labels.get(l).map(String::as_str))
}

/// A set of series indexed by metric name, so that a selector naming its metric looks at
/// that metric's series only.
#[derive(Debug)]
pub(crate) struct SeriesIndex<'s> {
    all: &'s [Series],
    by_metric: HashMap<&'s str, Vec<&'s Series>>,
}

impl<'s> SeriesIndex<'s> {
    pub(crate) fn new(all: &'s [Series]) -> Self {
        let mut by_metric: HashMap<&str, Vec<&Series>> = HashMap::new();
        for s in all {
            by_metric.entry(s.metric.as_str()).or_default().push(s);
        }
        Self { all, by_metric }
    }

    fn of_metric(&self, metric: &str) -> &[&'s Series] {
        self.by_metric.get(metric).map_or(&[], Vec::as_slice)
    }
}

fn matching<'s>(selector: &CompiledSelector, series: &SeriesIndex<'s>) -> Vec<&'s Series> {
    let hit = |s: &&Series| matches(selector, s);
    match &selector.need.metric {
        Some(metric) => series
            .of_metric(metric)
            .iter()
            .copied()
            .filter(hit)
            .collect(),
        None => series.all.iter().filter(hit).collect(),
    }
}

/// The labels `series` carry. A label with an empty value is no label: Prometheus drops it
/// when it ingests a series, and a query sees it as absent (`model=""` on one side and no
/// `model` on the other are the same series).
fn label_keys<'s>(series: &[&'s Series]) -> BTreeSet<&'s str> {
    series
        .iter()
        .flat_map(|s| {
            s.labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, _)| k.as_str())
        })
        .collect()
}

fn quote_all(labels: &BTreeSet<&str>) -> String {
    labels
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn evaluate_compiled(
    compiled: &Compiled,
    baseline: &SeriesIndex<'_>,
    candidate: &SeriesIndex<'_>,
) -> (QueryStatus, Vec<String>) {
    // Each selector's baseline series, matched once (agents evaluate every query on every
    // sample).
    let in_baseline: Vec<Vec<&Series>> = compiled
        .selectors
        .iter()
        .map(|selector| matching(selector, baseline))
        .collect();
    let observed: Vec<bool> = in_baseline.iter().map(|b| !b.is_empty()).collect();
    // A query that returns nothing from the baseline has nothing to lose: every selector
    // of `a * on (x) b` must match for it to answer, one of `a or b`.
    if !compiled.data.returns_series(&observed) {
        return (QueryStatus::Unobserved, Vec::new());
    }
    let mut broken = Vec::new();
    let mut changed = Vec::new();
    for (selector, b) in compiled.selectors.iter().zip(in_baseline) {
        if b.is_empty() {
            continue;
        }
        let c = matching(selector, candidate);
        let text = &selector.need.text;
        if c.is_empty() {
            broken.push(why_gone(selector, &b, candidate));
            continue;
        }
        let lost: BTreeSet<&str> = label_keys(&b)
            .difference(&label_keys(&c))
            .copied()
            .collect();
        let grouped: BTreeSet<&str> = lost
            .iter()
            .copied()
            .filter(|l| compiled.grouping.contains(*l))
            .collect();
        if !grouped.is_empty() {
            changed.push(format!(
                "`{text}` loses {} that the query groups or matches by: groups merge",
                quote_all(&grouped)
            ));
        }
        if selector.need.keeps_labels {
            let output: BTreeSet<&str> = lost
                .iter()
                .copied()
                .filter(|l| !selector.need.removed.contains(*l) && !grouped.contains(l))
                .collect();
            if !output.is_empty() {
                changed.push(format!(
                    "`{text}` loses {}, which the query's output series carry",
                    quote_all(&output)
                ));
            }
        }
    }
    if !broken.is_empty() {
        (QueryStatus::Broken, broken)
    } else if !changed.is_empty() {
        (QueryStatus::Changed, changed)
    } else {
        (QueryStatus::Answered, Vec::new())
    }
}

/// Why a selector that matched baseline series matches none of the candidate's.
fn why_gone(selector: &CompiledSelector, b: &[&Series], candidate: &SeriesIndex<'_>) -> String {
    let text = &selector.need.text;
    let metrics: BTreeSet<&str> = b.iter().map(|s| s.metric.as_str()).collect();
    let same_metric: Vec<&Series> = metrics
        .iter()
        .flat_map(|m| candidate.of_metric(m).iter().copied())
        .collect();
    if same_metric.is_empty() {
        let names: BTreeSet<&str> = metrics.iter().copied().collect();
        return format!(
            "`{text}` matches no series: the candidate drops {}",
            quote_all(&names)
        );
    }
    let present = label_keys(&same_metric);
    let gone: BTreeSet<&str> = selector
        .need
        .matchers
        .iter()
        .map(|m| m.label.as_str())
        .filter(|l| *l != "__name__" && !present.contains(l))
        .collect();
    if gone.is_empty() {
        format!(
            "`{text}` matches {} baseline series and none of the candidate's",
            b.len()
        )
    } else {
        format!(
            "`{text}` matches no series: the candidate drops label {}",
            quote_all(&gone)
        )
    }
}

/// The series of `sample` as its Prometheus exposition names them (what a query selects
/// when Prometheus scrapes the agent's `/metrics/baseline` or `/metrics/candidate`), with
/// labels of empty value left out, as Prometheus leaves them out when it ingests a scrape.
#[must_use]
pub fn series_of(sample: &crate::pipeline::Sample) -> Vec<Series> {
    use crate::pipeline::encode::{prometheus_label_name, prometheus_metric_name};
    sample
        .series()
        .iter()
        .map(|s| Series {
            metric: prometheus_metric_name(sample.resolve(s.metric), s.kind),
            labels: sample
                .resource(s.resource)
                .pairs()
                .iter()
                .chain(s.attributes.pairs())
                .filter(|(_, v)| !sample.resolve(*v).is_empty())
                .map(|(k, v)| {
                    (
                        prometheus_label_name(sample.resolve(*k)),
                        sample.resolve(*v).to_owned(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// The name a query selects a cardinality snapshot's metric by: as the agent's Prometheus
/// exposition names it. A process scraper metric gets its kind's suffix
/// (`process.cpu.time` is `process_cpu_time_total`); any other name is sanitized only (a
/// scraped series keeps the name its target exposed).
#[must_use]
pub fn snapshot_metric_name(metric: &str) -> String {
    use crate::pipeline::encode::prometheus_metric_name;
    use crate::pipeline::sample::MetricKind;
    let kind =
        crate::pipeline::exposition::process_metric_kind(metric).unwrap_or(MetricKind::Gauge);
    prometheus_metric_name(metric, kind)
}

/// A label's name as a query selects it (`process.pid` is `process_pid`).
#[must_use]
pub fn snapshot_label_name(label: &str) -> String {
    crate::pipeline::encode::prometheus_label_name(label)
}

/// A cardinality snapshot's series as a query selects it ([`snapshot_metric_name`],
/// [`snapshot_label_name`]). When two label names sanitize to the same one, the later in
/// name order stands.
#[must_use]
pub fn series_of_snapshot(series: &crate::measure::SnapshotSeries) -> Series {
    Series {
        metric: snapshot_metric_name(&series.metric),
        labels: series
            .labels
            .iter()
            .map(|(k, v)| (snapshot_label_name(k), v.clone()))
            .collect(),
    }
}

/// How an inventory fares under a candidate: counts, and every query not answered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueriesKept {
    /// Queries answered as under the baseline.
    pub answered: u32,
    /// Queries that answer differently (groups merge, output series relabelled).
    pub changed: u32,
    /// Queries that return nothing where the baseline returned something.
    pub broken: u32,
    /// Queries whose series are not in the baseline either.
    pub unobserved: u32,
    /// The broken and changed queries, broken first, with the reasons.
    pub affected: Vec<QueryVerdict>,
}

/// [`evaluate`] for every query, summed up.
#[must_use]
pub fn kept<'q>(
    queries: impl IntoIterator<Item = &'q InventoryQuery>,
    baseline: &[Series],
    candidate: &[Series],
) -> QueriesKept {
    let mut out = QueriesKept::default();
    let (baseline, candidate) = (SeriesIndex::new(baseline), SeriesIndex::new(candidate));
    for verdict in queries
        .into_iter()
        .map(|q| evaluate_indexed(q, &baseline, &candidate))
    {
        match verdict.status {
            QueryStatus::Answered => out.answered += 1,
            QueryStatus::Changed => out.changed += 1,
            QueryStatus::Broken => out.broken += 1,
            QueryStatus::Unobserved => out.unobserved += 1,
        }
        if matches!(verdict.status, QueryStatus::Broken | QueryStatus::Changed) {
            out.affected.push(verdict);
        }
    }
    out.affected.sort_by_key(|v| std::cmp::Reverse(v.status));
    out
}

/// The status of `query` under `candidate`, compared with `baseline`.
#[must_use]
pub fn evaluate(query: &InventoryQuery, baseline: &[Series], candidate: &[Series]) -> QueryVerdict {
    evaluate_indexed(
        query,
        &SeriesIndex::new(baseline),
        &SeriesIndex::new(candidate),
    )
}

/// The status of a parsed (or unparseable) query; an error is reported, not hidden.
pub(crate) fn status_of(
    compiled: Result<&Compiled, &String>,
    baseline: &SeriesIndex<'_>,
    candidate: &SeriesIndex<'_>,
) -> (QueryStatus, Vec<String>) {
    match compiled {
        Ok(compiled) => evaluate_compiled(compiled, baseline, candidate),
        // Imported queries parsed; a stored one that no longer does is reported, not hidden.
        Err(e) => (
            QueryStatus::Broken,
            vec![format!("the query no longer parses: {e}")],
        ),
    }
}

fn evaluate_indexed(
    query: &InventoryQuery,
    baseline: &SeriesIndex<'_>,
    candidate: &SeriesIndex<'_>,
) -> QueryVerdict {
    let compiled = compile(&query.promql);
    let (status, reasons) = status_of(compiled.as_ref(), baseline, candidate);
    QueryVerdict {
        name: query.name.clone(),
        location: query.location.clone(),
        status,
        reasons,
    }
}

/// [`evaluate`] for every query.
#[must_use]
pub fn evaluate_all<'q>(
    queries: impl IntoIterator<Item = &'q InventoryQuery>,
    baseline: &[Series],
    candidate: &[Series],
) -> Vec<QueryVerdict> {
    let (baseline, candidate) = (SeriesIndex::new(baseline), SeriesIndex::new(candidate));
    queries
        .into_iter()
        .map(|q| evaluate_indexed(q, &baseline, &candidate))
        .collect()
}
