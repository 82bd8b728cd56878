//! Preview: what a template would do to a recorded sample, computed by the native engine on
//! that sample (nothing here is estimated or constant).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use super::engine::{Engine, reduction_pct};
use super::sample::{MetricKind, Sample, SampleBuilder};
use super::{ParamValue, PipelineError, PipelineRef, RenderContext, TemplateRegistry};
use crate::cardinality::{ProjectionError, check_projectable, is_resource_key};
use crate::cost::{CostBreakdown, Money, Observation, PricingModel, Usage, savings};
use crate::ids::AgentId;
use crate::measure::{CardinalitySnapshot, Fidelity, VariantStats};
use crate::validation::FieldError;

/// The projected effect of a pipeline on a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    /// The template.
    pub template: String,
    /// Its parameters, defaults applied.
    pub params: BTreeMap<String, ParamValue>,
    /// The sample as it is.
    pub input: VariantStats,
    /// What the pipeline would emit.
    pub output: VariantStats,
    /// Series reduction, percent.
    pub series_reduction_pct: f64,
    /// Data-point reduction, percent.
    pub points_reduction_pct: f64,
    /// Encoded-bytes reduction, percent.
    pub bytes_reduction_pct: f64,
    /// Reduction of series belonging to processes, percent.
    pub process_series_reduction_pct: f64,
    /// Share of process CPU and memory the output still carries.
    pub fidelity: Fidelity,
    /// Critical coverage of the output, percent.
    pub critical_coverage_pct: f64,
    /// The Collector config that goes with it.
    pub collector_yaml: String,
    /// The query inventory evaluated on the sample's series (baseline) and the output's
    /// (candidate), as Prometheus would scrape them; `None` without an inventory.
    pub queries: Option<crate::queries::QueriesKept>,
    /// The agent snapshot the preview ran on, when it ran on one.
    pub snapshot: Option<SnapshotRef>,
    /// The input and the output priced, when a pricing model was asked for.
    pub cost: Option<PreviewCost>,
}

/// Which agent snapshot a preview ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The agent.
    pub agent_id: AgentId,
    /// Its host.
    pub host: String,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
    /// The interval it covers, seconds.
    pub interval_secs: u32,
}

/// The recorded input and the pipeline's output priced under one model by the cost
/// calculator ([`crate::cost::savings`]), each as a month of that host's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewCost {
    /// The pricing model.
    pub pricing_model: String,
    /// The input as recorded.
    pub input: CostBreakdown,
    /// What the pipeline would emit.
    pub output: CostBreakdown,
    /// Input minus output, per month (negative: the output costs more).
    pub saving_per_month: Money,
    /// The saving as a percentage of the input's bill; `None` when that bill is zero.
    pub reduction_pct: Option<f64>,
}

/// A recorded input a preview evaluates a pipeline on, with the time it stands for.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The series, as the engine takes them.
    pub sample: Sample,
    /// Seconds the recording covers; `None` when unknown (a pasted sample given no
    /// interval), which leaves the preview without a cost.
    pub interval_secs: Option<u32>,
    /// Data points the input carried during the interval, all series together.
    pub points: u64,
    /// Whether the series carry values (snapshots of agents that predate values do not).
    pub has_values: bool,
    /// The agent snapshot it comes from.
    pub snapshot: Option<SnapshotRef>,
    /// Where it comes from, in words (the cost's usage basis).
    pub basis: String,
}

impl Recorded {
    /// A pasted or scraped sample: one point per series over `interval_secs`.
    #[must_use]
    pub fn from_sample(sample: Sample, interval_secs: Option<u32>) -> Self {
        let points = sample.len() as u64;
        Self {
            sample,
            interval_secs,
            points,
            has_values: true,
            snapshot: None,
            basis: match interval_secs {
                Some(secs) => format!("the pasted sample, one point per series every {secs} s"),
                None => "the pasted sample".to_owned(),
            },
        }
    }

    /// An agent's cardinality snapshot turned back into an engine sample: labels under
    /// [`crate::cardinality::RESOURCE_PREFIXES`] are resource attributes (so process
    /// series belong to their process again), the rest point attributes; each series'
    /// value as the agent sent it (not a number when it sent none, so fidelity counts
    /// only measured values); its points as recorded.
    #[must_use]
    pub fn from_snapshot(snapshot: &CardinalitySnapshot) -> Self {
        let mut builder = SampleBuilder::new(snapshot.taken_at.timestamp_millis());
        let mut resource: Vec<(&str, &str)> = Vec::new();
        let mut point: Vec<(&str, &str)> = Vec::new();
        let mut points = 0_u64;
        let mut has_values = false;
        for series in &snapshot.series {
            resource.clear();
            point.clear();
            for (k, v) in &series.labels {
                if is_resource_key(k) {
                    resource.push((k, v));
                } else {
                    point.push((k, v));
                }
            }
            let id = builder.resource(resource.iter().copied());
            has_values |= series.value.is_some();
            builder.push(
                id,
                &series.metric,
                MetricKind::Gauge,
                point.iter().copied(),
                series.value.unwrap_or(f64::NAN),
            );
            points = points.saturating_add(series.points);
        }
        let snapshot_ref = SnapshotRef {
            agent_id: snapshot.agent_id,
            host: snapshot.host.clone(),
            taken_at: snapshot.taken_at,
            interval_secs: snapshot.interval_secs,
        };
        Self {
            sample: builder.build(),
            interval_secs: Some(snapshot.interval_secs),
            points,
            has_values,
            basis: format!(
                "{}'s snapshot of {} ({} s)",
                snapshot.host,
                snapshot.taken_at.format("%Y-%m-%d %H:%M:%S UTC"),
                snapshot.interval_secs
            ),
            snapshot: Some(snapshot_ref),
        }
    }
}

/// Renders `reference` (validating it) and evaluates its spec on `sample`. Critical coverage
/// is measured against the context's critical processes and metrics.
///
/// # Errors
/// As [`TemplateRegistry::render`].
pub fn preview(
    registry: &TemplateRegistry,
    reference: &PipelineRef,
    context: &RenderContext,
    sample: &Sample,
) -> Result<Preview, PipelineError> {
    preview_with_queries(registry, reference, context, sample, &[])
}

/// [`preview`], with `inventory` evaluated on the sample (baseline) and the pipeline's
/// output (candidate) when it is not empty.
///
/// # Errors
/// As [`TemplateRegistry::render`].
pub fn preview_with_queries(
    registry: &TemplateRegistry,
    reference: &PipelineRef,
    context: &RenderContext,
    sample: &Sample,
    inventory: &[crate::queries::InventoryQuery],
) -> Result<Preview, PipelineError> {
    let rendered = registry.render(reference, context)?;
    let mut engine = Engine::with_critical(
        rendered.spec.clone(),
        &context.critical_processes,
        &context.critical_metrics,
    );
    let input = engine.input_stats(sample);
    let evaluation = engine.evaluate(sample);
    let output = evaluation.stats.clone();
    let queries = (!inventory.is_empty()).then(|| {
        crate::queries::kept(
            inventory,
            &crate::queries::series_of(sample),
            &crate::queries::series_of(&evaluation.output),
        )
    });
    Ok(Preview {
        snapshot: None,
        cost: None,
        queries,
        template: rendered.template,
        params: rendered.params,
        series_reduction_pct: reduction_pct(input.series, output.series),
        points_reduction_pct: reduction_pct(input.points, output.points),
        bytes_reduction_pct: reduction_pct(input.bytes, output.bytes),
        process_series_reduction_pct: evaluation.process_series_reduction_pct(),
        fidelity: output.fidelity,
        critical_coverage_pct: output.critical.percent(),
        collector_yaml: rendered.collector_yaml,
        input,
        output,
    })
}

/// [`preview_with_queries`] on a [`Recorded`] input, priced under `pricing` when given.
/// A pipeline that ranks series by value (`topk`, `threshold`, `aggregate_other`) is
/// refused on an input without values, as a field error at `value_field`.
///
/// # Errors
/// As [`TemplateRegistry::render`]; the refusal above; a cost that does not fit the money
/// type (at `pricing_model`); a price asked of an input of unknown length (at
/// `interval_field`).
pub fn preview_recorded(
    registry: &TemplateRegistry,
    reference: &PipelineRef,
    context: &RenderContext,
    recorded: &Recorded,
    inventory: &[crate::queries::InventoryQuery],
    pricing: Option<&PricingModel>,
    (value_field, interval_field): (&str, &str),
) -> Result<Preview, PipelineError> {
    if !recorded.has_values && !recorded.sample.is_empty() {
        let spec = registry.render(reference, context)?.spec;
        if let Err(ProjectionError::NeedsValues { stage }) = check_projectable(&spec) {
            return Err(PipelineError::Invalid(vec![FieldError::new(
                value_field,
                format!(
                    "this snapshot carries no series values (its agent predates them), and stage `{stage}` ranks series by value: preview on a newer agent's snapshot or paste a recorded sample"
                ),
            )]));
        }
    }
    let mut preview =
        preview_with_queries(registry, reference, context, &recorded.sample, inventory)?;
    preview.snapshot.clone_from(&recorded.snapshot);
    if let Some(model) = pricing {
        let Some(interval_secs) = recorded.interval_secs else {
            return Err(PipelineError::Invalid(vec![FieldError::new(
                interval_field,
                "required to price a pasted sample: the seconds it covers (one point per series)",
            )]));
        };
        preview.cost = Some(
            price_preview(
                model,
                recorded,
                interval_secs,
                &preview.input,
                &preview.output,
            )
            .map_err(|e| {
                PipelineError::Invalid(vec![FieldError::new("pricing_model", e.to_string())])
            })?,
        );
    }
    Ok(preview)
}

/// Prices the input and the output as one host's traffic: series as counted, points and
/// bytes scaled from the engine's one point per series to the points the input carried
/// (the same scaling as the fleet's engine projections).
fn price_preview(
    model: &PricingModel,
    recorded: &Recorded,
    interval_secs: u32,
    input: &VariantStats,
    output: &VariantStats,
) -> Result<PreviewCost, crate::cost::CostError> {
    let in_series = u128::from(input.series.max(1));
    let points = u128::from(recorded.points);
    let scaled = |q: u64| u64::try_from(u128::from(q) * points / in_series).unwrap_or(u64::MAX);
    let observe = |stats: &VariantStats| Observation {
        taken_at: None,
        series: stats.series,
        points: scaled(stats.series),
        bytes: scaled(stats.bytes),
        interval_secs,
        // One recorded sample has no history: no churn to measure.
        active_series: None,
        hour_distinct_series: None,
    };
    let usage = |stats: &VariantStats, what: &str| {
        Usage::from_hosts(
            [&[observe(stats)][..]],
            format!("{what} of {}", recorded.basis),
        )
    };
    let s = savings(
        model,
        &usage(input, "the input"),
        &usage(output, "the pipeline's output"),
    )?;
    Ok(PreviewCost {
        pricing_model: model.id.clone(),
        saving_per_month: s.saving_per_month,
        reduction_pct: s.reduction_pct,
        input: s.baseline,
        output: s.candidate,
    })
}
