//! Query-aware recommendations: what an action does to the query inventory, decided by the
//! one evaluation rule ([`crate::queries::eval`]) on the snapshot the recommendation is
//! computed from.
//!
//! An action's candidate series are the snapshot's series with the action applied
//! ([`SeriesTable::apply`]), named as queries select them
//! ([`crate::queries::series_of_snapshot`]). To stay fast on whole fleets, a query is only
//! evaluated when the action can matter to it:
//!
//! - per query, the metrics its selectors can match by name are found once; a query reading
//!   none of the metrics an action touches answers as before (untouched);
//! - a label drop can only break a query through a matcher on the label, and only change it
//!   through a label it groups, matches or copies by, or an output that keeps its
//!   selectors' labels; a query reading a touched metric with none of those keeps answering
//!   (kept, not evaluated);
//! - every other query is evaluated, on the distinct series of the metrics it reads only
//!   (a selector matches no series of another metric, so the verdict is the same).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::table::SeriesTable;
use crate::measure::{CardinalitySnapshot, SnapshotSeries};
use crate::pipeline::Engine;
use crate::pipeline::spec::{AggregateByStage, PipelineSpec, Stage};
use crate::queries::eval::{SeriesIndex, evaluate_compiled};
use crate::queries::needs::{Compiled, compile};
use crate::queries::{
    InventoryQuery, QueryStatus, QueryVerdict, Series, series_of_snapshot, snapshot_label_name,
    snapshot_metric_name,
};

use super::recommend::Action;

/// Names of kept queries a recommendation lists at most (the count is always whole).
pub const KEPT_QUERIES_LISTED: usize = 10;

/// What a recommendation does to the query inventory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryImpact {
    /// Queries reading series the action touches that answer as before.
    pub kept: u32,
    /// Their names, at most [`KEPT_QUERIES_LISTED`], in inventory order.
    pub kept_queries: Vec<String>,
    /// Queries that would answer differently (groups merge, output series relabelled), with
    /// the evaluation's reasons. Empty unless changed queries are allowed
    /// ([`super::RecommendOptions::allow_changed_queries`]).
    pub changed: Vec<QueryVerdict>,
    /// Queries answering on the snapshot that read nothing the action touches.
    pub untouched: u32,
    /// Queries with no series in the snapshot (nothing to keep).
    pub unobserved: u32,
}

/// An action's effect on the inventory, broken queries included (never recommended).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Judgement {
    pub(crate) impact: QueryImpact,
    pub(crate) broken: Vec<QueryVerdict>,
}

impl Judgement {
    /// Whether the action may be recommended: nothing broken, and nothing changed unless
    /// allowed.
    pub(crate) fn acceptable(&self, allow_changed: bool) -> bool {
        self.broken.is_empty() && (allow_changed || self.impact.changed.is_empty())
    }
}

struct Guarded<'q> {
    query: &'q InventoryQuery,
    compiled: Compiled,
    /// Table metric ids its selectors can match by name, ascending.
    metrics: Vec<u32>,
    /// Labels it matches on, groups, matches or copies by (as queries name them).
    labels: BTreeSet<String>,
    /// Whether a selector's labels reach its output.
    keeps_labels: bool,
    /// Whether any selector matches a series of the snapshot.
    observed: bool,
}

/// The inventory compiled against one [`SeriesTable`].
pub(crate) struct QueryGuard<'q> {
    queries: Vec<Guarded<'q>>,
    /// Per table metric: its distinct series as queries see them (empty when no query
    /// reads the metric).
    base: Vec<Vec<Series>>,
    /// Per table metric: whether a query reads it.
    read: Vec<bool>,
    /// Per key id: the label name as queries see it.
    key_names: Vec<String>,
}

impl SeriesTable {
    /// Series of metric `m` as queries see them, without label `drop`, distinct and sorted.
    fn query_series(&self, m: u32, key_names: &[String], drop: Option<u32>) -> Vec<Series> {
        let name = snapshot_metric_name(self.metrics.resolve(m));
        let (start, end) = self.metric_ranges[m as usize];
        let mut out: Vec<Series> = (start as usize..end as usize)
            .map(|i| Series {
                metric: name.clone(),
                labels: self
                    .series_labels(i)
                    .iter()
                    .filter(|l| Some(l.key) != drop)
                    .map(|l| {
                        (
                            key_names[l.key as usize].clone(),
                            self.values[l.key as usize].resolve(l.value).to_owned(),
                        )
                    })
                    .collect(),
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Each host's snapshot series after `action`: a label drop removes the label from the
    /// named metrics' series and merges those that then coincide; an aggregation runs its
    /// `aggregate_by` stage through the native engine. Points are those of the input when a
    /// series is unchanged, 1 for a merged one.
    #[must_use]
    pub fn apply(&self, action: &Action) -> Vec<CardinalitySnapshot> {
        let mut out: Vec<CardinalitySnapshot> = self
            .hosts
            .iter()
            .map(|h| CardinalitySnapshot {
                agent_id: h.agent_id,
                host: h.host.clone(),
                taken_at: h.taken_at,
                interval_secs: h.interval_secs,
                source: crate::measure::SnapshotSource::Input,
                series: Vec::new(),
            })
            .collect();
        match action {
            Action::DropLabel { label, metrics } => {
                let key = self.keys.get_id(label);
                for (m, &(start, end)) in self.metric_ranges.iter().enumerate() {
                    let name = self.metrics.resolve(m as u32);
                    let drop = key.filter(|_| metrics.iter().any(|x| x == name));
                    for i in start as usize..end as usize {
                        let labels = self
                            .series_labels(i)
                            .iter()
                            .filter(|l| Some(l.key) != drop)
                            .map(|l| {
                                (
                                    self.keys.resolve(l.key).to_owned(),
                                    self.values[l.key as usize].resolve(l.value).to_owned(),
                                )
                            })
                            .collect();
                        out[self.series_host[i] as usize]
                            .series
                            .push(SnapshotSeries {
                                metric: name.to_owned(),
                                labels,
                                points: self.series_points[i],
                                // The table keeps no values; what a query needs of the
                                // applied series is their names and labels.
                                value: None,
                            });
                    }
                }
                for host in &mut out {
                    let mut seen = BTreeSet::new();
                    host.series
                        .retain(|s| seen.insert((s.metric.clone(), s.labels.clone())));
                }
            }
            Action::AggregateBy { resource_labels } => {
                let spec = aggregate_spec(resource_labels);
                for (h, sample) in self.host_samples().iter().enumerate() {
                    out[h].series = Engine::new(spec.clone())
                        .evaluate(sample)
                        .output
                        .snapshot_series();
                }
            }
        }
        out
    }
}

fn aggregate_spec(resource_labels: &[String]) -> PipelineSpec {
    PipelineSpec {
        stages: vec![Stage::AggregateBy(AggregateByStage {
            resource_labels: resource_labels.to_vec(),
        })],
        ..PipelineSpec::default()
    }
}

impl<'q> QueryGuard<'q> {
    /// Compiles `inventory` against `table`. A stored query that no longer parses is left
    /// out (its verdict does not depend on any action).
    pub(crate) fn new(table: &SeriesTable, inventory: &'q [InventoryQuery]) -> Self {
        let key_names: Vec<String> = (0..table.keys.len())
            .map(|k| snapshot_label_name(table.keys.resolve(k as u32)))
            .collect();
        let metric_names: Vec<String> = (0..table.metrics.len())
            .map(|m| snapshot_metric_name(table.metrics.resolve(m as u32)))
            .collect();
        let mut read = vec![false; metric_names.len()];
        let mut queries = Vec::new();
        for query in inventory {
            let Ok(compiled) = compile(&query.promql) else {
                continue;
            };
            let mut metrics = BTreeSet::new();
            for selector in &compiled.selectors {
                let by_name = selector.matchers.iter().filter(|m| m.name == "__name__");
                for (m, name) in metric_names.iter().enumerate() {
                    if by_name.clone().all(|matcher| matcher.is_match(name)) {
                        metrics.insert(m as u32);
                    }
                }
            }
            for &m in &metrics {
                read[m as usize] = true;
            }
            let mut labels: BTreeSet<String> = compiled.grouping.clone();
            for selector in &compiled.selectors {
                labels.extend(selector.need.matchers.iter().map(|m| m.label.clone()));
            }
            let keeps_labels = compiled.selectors.iter().any(|s| s.need.keeps_labels);
            queries.push(Guarded {
                query,
                compiled,
                metrics: metrics.into_iter().collect(),
                labels,
                keeps_labels,
                observed: false,
            });
        }
        let base: Vec<Vec<Series>> = (0..metric_names.len())
            .map(|m| {
                if read[m] {
                    table.query_series(m as u32, &key_names, None)
                } else {
                    Vec::new()
                }
            })
            .collect();
        let mut guard = Self {
            queries,
            base,
            read,
            key_names,
        };
        for i in 0..guard.queries.len() {
            let series = guard.series_of(&guard.queries[i], &|_| None);
            let series = SeriesIndex::new(&series);
            let (status, _) = evaluate_compiled(&guard.queries[i].compiled, &series, &series);
            guard.queries[i].observed = status != QueryStatus::Unobserved;
        }
        guard
    }

    /// The series `q` reads, each touched metric's replaced by `candidate`'s.
    fn series_of<'a>(
        &'a self,
        q: &Guarded,
        candidate: &dyn Fn(u32) -> Option<&'a [Series]>,
    ) -> Vec<Series> {
        q.metrics
            .iter()
            .flat_map(|&m| {
                candidate(m)
                    .unwrap_or(&self.base[m as usize])
                    .iter()
                    .cloned()
            })
            .collect()
    }

    /// Every query's verdict under an action that replaces the series of the metrics
    /// `candidate` returns some for; `suspect` says which queries reading them can be
    /// affected at all (the others keep answering).
    fn judge<'a>(
        &'a self,
        touched: &dyn Fn(u32) -> bool,
        candidate: &dyn Fn(u32) -> Option<&'a [Series]>,
        suspect: &dyn Fn(&Guarded) -> bool,
    ) -> Judgement {
        let mut out = Judgement::default();
        let impact = &mut out.impact;
        let keep = |impact: &mut QueryImpact, q: &Guarded| {
            impact.kept += 1;
            if impact.kept_queries.len() < KEPT_QUERIES_LISTED {
                impact.kept_queries.push(q.query.name.clone());
            }
        };
        for q in &self.queries {
            if !q.observed {
                impact.unobserved += 1;
                continue;
            }
            if !q.metrics.iter().any(|&m| touched(m)) {
                impact.untouched += 1;
                continue;
            }
            if !suspect(q) {
                keep(impact, q);
                continue;
            }
            let before = self.series_of(q, &|_| None);
            let after = self.series_of(q, candidate);
            let (status, reasons) = evaluate_compiled(
                &q.compiled,
                &SeriesIndex::new(&before),
                &SeriesIndex::new(&after),
            );
            let verdict = || QueryVerdict {
                name: q.query.name.clone(),
                location: q.query.location.clone(),
                status,
                reasons: reasons.clone(),
            };
            match status {
                QueryStatus::Answered | QueryStatus::Unobserved => keep(impact, q),
                QueryStatus::Changed => impact.changed.push(verdict()),
                QueryStatus::Broken => out.broken.push(verdict()),
            }
        }
        out
    }

    /// Removing `key` from `metrics` (table ids).
    pub(crate) fn drop_label(&self, table: &SeriesTable, key: u32, metrics: &[u32]) -> Judgement {
        let candidates: Vec<(u32, Vec<Series>)> = metrics
            .iter()
            .filter(|&&m| self.read[m as usize])
            .map(|&m| (m, table.query_series(m, &self.key_names, Some(key))))
            .collect();
        let label = &self.key_names[key as usize];
        self.judge(
            &|m| metrics.contains(&m),
            &|m| {
                candidates
                    .iter()
                    .find(|(c, _)| *c == m)
                    .map(|(_, s)| s.as_slice())
            },
            &|q| q.keeps_labels || q.labels.contains(label),
        )
    }

    /// Process entities aggregated by `resource_labels` (the engine's `aggregate_by`).
    pub(crate) fn aggregate_by(
        &self,
        table: &SeriesTable,
        resource_labels: &[String],
    ) -> Judgement {
        let action = Action::AggregateBy {
            resource_labels: resource_labels.to_vec(),
        };
        let mut after: Vec<Vec<Series>> = vec![Vec::new(); self.base.len()];
        for host in table.apply(&action) {
            for s in &host.series {
                if let Some(m) = table.metrics.get_id(&s.metric)
                    && self.read[m as usize]
                {
                    after[m as usize].push(series_of_snapshot(s));
                }
            }
        }
        for series in &mut after {
            series.sort_unstable();
            series.dedup();
        }
        let touched: Vec<bool> = (0..self.base.len())
            .map(|m| self.read[m] && after[m] != self.base[m])
            .collect();
        self.judge(
            &|m| touched[m as usize],
            &|m| Some(after[m as usize].as_slice()),
            &|_| true,
        )
    }
}
