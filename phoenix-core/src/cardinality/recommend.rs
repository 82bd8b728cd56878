//! Recommendations from label statistics: labels whose removal (and re-aggregation of the
//! series that then collide) saves the most, with the projected series counted exactly by
//! re-grouping the snapshot's series and the saving priced under a catalogue model.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FixedState;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};

use super::analysis::{AnalysisOptions, GroupAcc, HostRates, line_bytes, usage_of};
use super::engine::{EngineProjection, check_projectable};
use super::queries::{Judgement, QueryGuard, QueryImpact};
use super::table::SeriesTable;
use crate::cost::{
    CostBreakdown, CostError, Money, PriceSource, PricingModel, Usage, group_digits, price,
};
use crate::pipeline::spec::{DropLabelsStage, PipelineSpec, Stage};
use crate::pipeline::{PipelineRef, RenderContext, RenderedPipeline, Sample, TemplateRegistry};
use crate::queries::InventoryQuery;
const REGROUP_METHOD: &str = "exact: the affected series re-grouped by host and their remaining labels; points and bytes scaled by the series kept";
const ENGINE_METHOD: &str = "native engine: the stage evaluated on each host's snapshot (resource and point attributes split by OpenTelemetry resource namespaces); bytes measured by encoding the output";

/// Host samples for the engine, the unchanged pipeline's projection and its cost.
struct EngineBase {
    samples: Vec<Sample>,
    projection: EngineProjection,
    cost: CostBreakdown,
}

/// What a recommendation proposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Remove `label` from `metrics` and sum the series that then share a label set (the
    /// `drop_labels` / `aggregate_by` processor).
    DropLabel {
        /// The label key.
        label: String,
        /// The metrics it is dropped from.
        metrics: Vec<String>,
    },
    /// Process entities keep only these resource attributes (dropping `process.pid` and the
    /// other per-process identities) and the series that coincide are summed: the
    /// `aggregate_by` stage, as the built-in `aggregate` template renders it.
    AggregateBy {
        /// Resource attributes kept.
        resource_labels: Vec<String>,
    },
}

/// One proposed action and what it would save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// The action.
    pub action: Action,
    /// The action in words.
    pub summary: String,
    /// Series of the analysed snapshots before.
    pub series_before: u64,
    /// Series after the action.
    pub series_after: u64,
    /// Series the action touches (those of the metric, or carrying the label).
    pub affected_series: u64,
    /// How the projection was computed.
    pub method: String,
    /// The snapshots' monthly bill before.
    pub monthly_before: Money,
    /// The snapshots' monthly bill after.
    pub monthly_after: Money,
    /// `monthly_before - monthly_after`.
    pub saving_per_month: Money,
    /// Saving per year (x 12).
    pub saving_per_year: Money,
    /// The price used.
    pub price_source: PriceSource,
    /// What it does to the query inventory (`None` without an inventory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<QueryImpact>,
}

/// Limits and exclusions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendOptions {
    /// Recommendations returned at most.
    #[serde(default = "default_max")]
    pub max: usize,
    /// (metric, label) pairs evaluated exactly at most, chosen by their potential.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Metrics never touched (`*` globs), e.g. the experiment's critical metrics.
    #[serde(default)]
    pub protected_metrics: Vec<String>,
    /// Labels never dropped.
    #[serde(default)]
    pub protected_labels: Vec<String>,
    /// Label-wide drops projected by the native engine at most (those saving the most
    /// series by exact re-grouping); the others keep the exact re-grouping, which gives
    /// the same series count far faster.
    #[serde(default = "default_engine_actions")]
    pub engine_actions: usize,
    /// Above this many series the engine is not run at all (it costs microseconds per series
    /// and evaluation; see `docs/benchmarks.md`): label-wide drops use exact re-grouping and
    /// the process aggregation is not proposed.
    #[serde(default = "default_engine_max_series")]
    pub engine_max_series: usize,
    /// With a query inventory: also recommend actions under which some query answers
    /// differently (groups merge, output series lose a label), listing those queries and
    /// how. Off by default: only actions under which every inventoried query answers as
    /// before are recommended. An action that breaks a query is never recommended.
    #[serde(default)]
    pub allow_changed_queries: bool,
}

fn default_engine_max_series() -> usize {
    200_000
}

fn default_engine_actions() -> usize {
    3
}

fn default_max() -> usize {
    10
}

fn default_candidates() -> usize {
    40
}

impl Default for RecommendOptions {
    fn default() -> Self {
        Self {
            max: default_max(),
            candidates: default_candidates(),
            protected_metrics: Vec::new(),
            protected_labels: Vec::new(),
            engine_actions: default_engine_actions(),
            engine_max_series: default_engine_max_series(),
            allow_changed_queries: false,
        }
    }
}

/// `*` matches any run of characters; everything else literally.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

impl SeriesTable {
    fn engine_usage(&self, p: EngineProjection, with_bytes: bool, what: &str) -> Usage {
        let acc = GroupAcc {
            series: p.series,
            micro_ppm: p.micro_ppm,
            bytes: p.bytes_per_month,
        };
        let mut usage = usage_of(self, acc, with_bytes);
        usage.basis = format!("{}, {what}, as the native engine emits them", usage.basis);
        usage
    }

    /// Series of `metric` after removing `key` and merging the series that collide: the
    /// number of distinct (host, remaining labels) among the metric's series. Exact.
    #[must_use]
    pub(crate) fn series_without(&self, metric: u32, key: u32) -> u64 {
        let (start, end) = self.metric_ranges[metric as usize];
        let hasher = FixedState::default();
        let hash_of = |i: usize| {
            let mut h = hasher.build_hasher();
            h.write_u32(self.series_host[i]);
            for l in self.series_labels(i) {
                if l.key != key {
                    h.write_u32(l.key);
                    h.write_u32(l.value);
                }
            }
            h.finish()
        };
        let same = |a: usize, b: usize| {
            self.series_host[a] == self.series_host[b]
                && self
                    .series_labels(a)
                    .iter()
                    .filter(|l| l.key != key)
                    .eq(self.series_labels(b).iter().filter(|l| l.key != key))
        };
        let mut seen: HashTable<u32> = HashTable::with_capacity((end - start) as usize);
        for i in start as usize..end as usize {
            let hash = hash_of(i);
            if seen.find(hash, |&j| same(j as usize, i)).is_none() {
                seen.insert_unique(hash, i as u32, |&j| hash_of(j as usize));
            }
        }
        seen.len() as u64
    }

    /// Label-dropping recommendations, sorted by monthly saving under `model` (then by
    /// series saved).
    pub fn recommend(
        &self,
        model: &PricingModel,
        options: &RecommendOptions,
    ) -> Result<Vec<Recommendation>, CostError> {
        self.recommend_with_queries(model, options, &[])
    }

    /// [`SeriesTable::recommend`], keeping `inventory` answering: no action under which an
    /// inventoried query breaks on these snapshots is proposed, nor one under which a query
    /// answers differently unless [`RecommendOptions::allow_changed_queries`]; each
    /// recommendation lists the queries it keeps (and those it changes). An empty
    /// inventory recommends as [`SeriesTable::recommend`].
    pub fn recommend_with_queries(
        &self,
        model: &PricingModel,
        options: &RecommendOptions,
        inventory: &[InventoryQuery],
    ) -> Result<Vec<Recommendation>, CostError> {
        let guard = (!inventory.is_empty()).then(|| QueryGuard::new(self, inventory));
        let allow_changed = options.allow_changed_queries;
        // Verdicts of single-metric drops, by (metric, key): `None` when no inventory.
        let mut single: std::collections::HashMap<(u32, u32), Judgement> =
            std::collections::HashMap::new();
        let mut judge_single = |m: u32, k: u32| -> bool {
            let Some(guard) = guard.as_ref() else {
                return true;
            };
            single
                .entry((m, k))
                .or_insert_with(|| guard.drop_label(self, k, &[m]))
                .acceptable(allow_changed)
        };
        let want_bytes = !model.meter.counts_series();
        let rates = HostRates::new(self);
        // Per metric: series, points per minute and bytes.
        let mut per_metric = vec![GroupAcc::default(); self.metrics.len()];
        let mut total = GroupAcc::default();
        for (m, &(start, end)) in self.metric_ranges.iter().enumerate() {
            for i in start as usize..end as usize {
                let host = self.series_host[i] as usize;
                let points = self.series_points[i];
                let acc = &mut per_metric[m];
                acc.series += 1;
                acc.micro_ppm += points.saturating_mul(rates.micro_ppm_per_point[host]);
                if want_bytes {
                    acc.bytes += points
                        .saturating_mul(line_bytes(self, m as u32, i))
                        .saturating_mul(rates.months_factor[host]);
                }
            }
            total.series += per_metric[m].series;
            total.micro_ppm += per_metric[m].micro_ppm;
            total.bytes += per_metric[m].bytes;
        }
        let before_usage = usage_of(self, total, want_bytes);
        let before = price(model, &before_usage)?;

        let stats = self.analyze(
            &AnalysisOptions {
                breakdowns: Vec::new(),
                top: 0,
                top_metric_labels: usize::MAX,
            },
            None,
        )?;
        let protected_metric = |m: &str| options.protected_metrics.iter().any(|p| glob_match(p, m));
        let protected_label = |k: &str| options.protected_labels.iter().any(|p| p == k);
        // Candidates by potential: series of the metric minus series / distinct values.
        let mut candidates: Vec<(u32, u32, u64)> = stats
            .metric_labels
            .iter()
            .filter(|s| s.distinct_values >= 2 && s.series >= 2)
            .filter(|s| !protected_metric(&s.metric) && !protected_label(&s.key))
            .filter_map(|s| {
                let m = self.metrics.get_id(&s.metric)?;
                let k = self.keys.get_id(&s.key)?;
                Some((m, k, s.series - s.series / s.distinct_values))
            })
            .collect();
        candidates.sort_by(|a, b| b.2.cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
        // The best `candidates` pairs whose drop keeps the inventory answering.
        let mut kept_candidates = Vec::with_capacity(options.candidates.min(candidates.len()));
        for c in candidates {
            if kept_candidates.len() >= options.candidates {
                break;
            }
            if judge_single(c.0, c.1) {
                kept_candidates.push(c);
            }
        }
        let candidates = kept_candidates;

        // Exact projection per candidate.
        let exact: Vec<(u32, u32, u64)> = candidates
            .iter()
            .map(|&(m, k, _)| (m, k, self.series_without(m, k)))
            .collect();
        // The labels of the candidates, dropped from every unprotected metric carrying them
        // whose inventory stays answering without it.
        let mut labels: Vec<u32> = candidates.iter().map(|c| c.1).collect();
        labels.sort_unstable();
        labels.dedup();
        let mut label_wide: Vec<(u32, Vec<(u32, u64)>)> = Vec::new();
        for k in labels {
            let key = self.keys.resolve(k);
            let changes: Vec<(u32, u64)> = stats
                .metric_labels
                .iter()
                .filter(|s| s.key == key && !protected_metric(&s.metric))
                .filter_map(|s| self.metrics.get_id(&s.metric))
                .filter(|&m| judge_single(m, k))
                .map(|m| {
                    let known = exact.iter().find(|e| e.0 == m && e.1 == k).map(|e| e.2);
                    (m, known.unwrap_or_else(|| self.series_without(m, k)))
                })
                .collect();
            if changes.len() >= 2 {
                label_wide.push((k, changes));
            }
        }

        let project = |changes: &[(u32, u64)]| -> Usage {
            let mut after = total;
            for &(m, projected) in changes {
                let acc = per_metric[m as usize];
                let removed = acc.series - projected;
                after.series -= removed;
                let scale = |q: u64| {
                    u64::try_from(
                        u128::from(q) * u128::from(projected) / u128::from(acc.series.max(1)),
                    )
                    .unwrap_or(u64::MAX)
                };
                after.micro_ppm -= acc.micro_ppm - scale(acc.micro_ppm);
                after.bytes -= acc.bytes - scale(acc.bytes);
            }
            let mut usage = usage_of(self, after, want_bytes);
            usage.basis = format!("{} after the action", before_usage.basis);
            usage
        };
        let mut out = Vec::new();
        let push_usage = |action: Action,
                          summary: String,
                          affected: u64,
                          before: &CostBreakdown,
                          after_usage: &Usage,
                          method: &str|
         -> Result<Recommendation, CostError> {
            let after = price(model, after_usage)?;
            let saving = before.per_month.saturating_sub(after.per_month);
            Ok(Recommendation {
                action,
                summary,
                series_before: total.series,
                series_after: after_usage.series_mean,
                affected_series: affected,
                method: method.to_owned(),
                monthly_before: before.per_month,
                monthly_after: after.per_month,
                saving_per_month: saving,
                saving_per_year: saving.saturating_mul(12),
                price_source: before.price_source.clone(),
                queries: None,
            })
        };
        let push = |action: Action, summary: String, changes: &[(u32, u64)]| {
            let affected: u64 = changes
                .iter()
                .map(|&(m, _)| per_metric[m as usize].series)
                .sum();
            push_usage(
                action,
                summary,
                affected,
                &before,
                &project(changes),
                REGROUP_METHOD,
            )
        };
        for &(m, k, projected) in &exact {
            let metric = self.metrics.resolve(m);
            let label = self.keys.resolve(k);
            let before_m = per_metric[m as usize].series;
            out.push(push(
                Action::DropLabel {
                    label: label.to_owned(),
                    metrics: vec![metric.to_owned()],
                },
                format!(
                    "Drop label `{label}` from `{metric}`: {} -> {} series",
                    group_digits(before_m),
                    group_digits(projected)
                ),
                &[(m, projected)],
            )?);
        }
        // Label-wide drops and process aggregation run through the native engine, on each
        // host's snapshot turned back into a sample. A drop that would touch a protected
        // metric, or past the engine budget, keeps the exact re-grouping instead.
        let carried_everywhere = |label: &str, metrics: usize| {
            stats
                .metric_labels
                .iter()
                .filter(|s| s.key == label)
                .count()
                == metrics
        };
        // Biggest label-wide savings first; the first `engine_actions` labels carried by
        // every metric run through the engine.
        let saved_by = |changes: &[(u32, u64)]| -> u64 {
            changes
                .iter()
                .map(|&(m, p)| per_metric[m as usize].series - p)
                .sum()
        };
        label_wide.sort_by(|a, b| saved_by(&b.1).cmp(&saved_by(&a.1)).then(a.0.cmp(&b.0)));
        let engine_labels: Vec<u32> = label_wide
            .iter()
            .filter(|(k, c)| carried_everywhere(self.keys.resolve(*k), c.len()))
            .map(|(k, _)| *k)
            .take(options.engine_actions)
            .collect();
        // Templates a snapshot can project: nothing protected may be touched by them.
        let registry = TemplateRegistry::builtin();
        let templates: Vec<(String, RenderedPipeline)> =
            if options.protected_metrics.is_empty() && options.protected_labels.is_empty() {
                registry
                    .names()
                    .iter()
                    .filter_map(|name| {
                        let rendered = registry
                            .render(&PipelineRef::new(name.as_str()), &RenderContext::default())
                            .ok()?;
                        check_projectable(&rendered.spec).ok()?;
                        Some((name.clone(), rendered))
                    })
                    .collect()
            } else {
                Vec::new()
            };
        let engine_allowed = self.len() <= options.engine_max_series;
        let engine_labels: Vec<u32> = if engine_allowed {
            engine_labels
        } else {
            Vec::new()
        };
        let templates = if engine_allowed {
            templates
        } else {
            Vec::new()
        };
        let needs_engine = !templates.is_empty() || !engine_labels.is_empty();
        let engine = if needs_engine {
            let samples = self.host_samples();
            let projection = self
                .project_with_engine(&samples, &PipelineSpec::default())
                .unwrap_or_default();
            let cost = price(
                model,
                &self.engine_usage(projection, want_bytes, "unchanged"),
            )?;
            Some(EngineBase {
                samples,
                projection,
                cost,
            })
        } else {
            None
        };
        for (k, changes) in &label_wide {
            let label = self.keys.resolve(*k);
            let mut metrics: Vec<String> = changes
                .iter()
                .map(|&(m, _)| self.metrics.resolve(m).to_owned())
                .collect();
            metrics.sort();
            let affected: u64 = changes
                .iter()
                .map(|&(m, _)| per_metric[m as usize].series)
                .sum();
            if let Some(base) = engine
                .as_ref()
                .filter(|_| carried_everywhere(label, changes.len()))
            {
                let spec = PipelineSpec {
                    stages: vec![Stage::DropLabels(DropLabelsStage {
                        labels: vec![label.to_owned()],
                    })],
                    ..PipelineSpec::default()
                };
                let projected = self
                    .project_with_engine(&base.samples, &spec)
                    .unwrap_or(base.projection);
                out.push(push_usage(
                    Action::DropLabel {
                        label: label.to_owned(),
                        metrics,
                    },
                    format!(
                        "Drop label `{label}` from all {} metrics carrying it: {} fewer series",
                        changes.len(),
                        group_digits(base.projection.series.saturating_sub(projected.series))
                    ),
                    affected,
                    &base.cost,
                    &self.engine_usage(projected, want_bytes, "after the action"),
                    ENGINE_METHOD,
                )?);
                continue;
            }
            let saved: u64 = changes
                .iter()
                .map(|&(m, p)| per_metric[m as usize].series - p)
                .sum();
            out.push(push(
                Action::DropLabel {
                    label: label.to_owned(),
                    metrics,
                },
                if carried_everywhere(label, changes.len()) {
                    format!(
                        "Drop label `{label}` from all {} metrics carrying it: {} fewer series",
                        changes.len(),
                        group_digits(saved)
                    )
                } else {
                    format!(
                        "Drop label `{label}` from the {} metrics carrying it that may lose it (not protected, no query needing it there): {} fewer series",
                        changes.len(),
                        group_digits(saved)
                    )
                },
                changes,
            )?);
        }
        // Built-in templates at their defaults, when a snapshot can project them (no stage
        // ranks by value: `aggregate` can, `topk`, `adaptive` and `hybrid` cannot) and their
        // reduction is an `aggregate_by` stage.
        if let Some(base) = engine.as_ref() {
            for (name, rendered) in &templates {
                let Some(resource_labels) = rendered.spec.stages.iter().find_map(|s| match s {
                    Stage::AggregateBy(a) => Some(a.resource_labels.clone()),
                    _ => None,
                }) else {
                    continue;
                };
                let projected = self
                    .project_with_engine(&base.samples, &rendered.spec)
                    .unwrap_or(base.projection);
                out.push(push_usage(
                    Action::AggregateBy {
                        resource_labels: resource_labels.clone(),
                    },
                    format!(
                        "Try template `{name}` (group processes by {}): {} fewer series",
                        resource_labels.join(", "),
                        group_digits(base.projection.series.saturating_sub(projected.series))
                    ),
                    total.series,
                    &base.cost,
                    &self.engine_usage(projected, want_bytes, "after the action"),
                    ENGINE_METHOD,
                )?);
            }
        }
        out.retain(|r| r.series_after < r.series_before);
        // Every action judged as a whole against the inventory (a label dropped from
        // several metrics can take it from every series a selector matches).
        if let Some(guard) = guard.as_ref() {
            out.retain_mut(|r| {
                let judgement = match &r.action {
                    Action::DropLabel { label, metrics } => {
                        let Some(k) = self.keys.get_id(label) else {
                            return false;
                        };
                        let ids: Vec<u32> = metrics
                            .iter()
                            .filter_map(|m| self.metrics.get_id(m))
                            .collect();
                        match ids.as_slice() {
                            [m] => single
                                .remove(&(*m, k))
                                .unwrap_or_else(|| guard.drop_label(self, k, &ids)),
                            _ => guard.drop_label(self, k, &ids),
                        }
                    }
                    Action::AggregateBy { resource_labels } => {
                        guard.aggregate_by(self, resource_labels)
                    }
                };
                if !judgement.acceptable(allow_changed) {
                    return false;
                }
                r.queries = Some(judgement.impact);
                true
            });
        }
        out.sort_by(|a, b| {
            b.saving_per_month
                .cmp(&a.saving_per_month)
                .then_with(|| a.series_after.cmp(&b.series_after))
                .then_with(|| a.summary.cmp(&b.summary))
        });
        out.truncate(options.max);
        Ok(out)
    }
}
