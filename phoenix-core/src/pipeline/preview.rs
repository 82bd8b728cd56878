//! Preview: what a template would do to a recorded sample, computed by the native engine on
//! that sample (nothing here is estimated or constant).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::engine::{Engine, reduction_pct};
use super::sample::Sample;
use super::{ParamValue, PipelineError, PipelineRef, RenderContext, TemplateRegistry};
use crate::measure::{Fidelity, VariantStats};

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
