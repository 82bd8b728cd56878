//! Pipelines as the API carries them.

use std::collections::BTreeMap;

use phoenix_core::pipeline as core;
use phoenix_core::validation::FieldError;
use serde::{Deserialize, Serialize};

/// A pipeline by template name and parameters. Parameter values are JSON booleans,
/// numbers, strings or lists of strings; the template's schema decides which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct PipelineRef {
    /// Name of a built-in or admin-registered template.
    pub template: String,
    /// Parameters; missing ones take the template's defaults.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub params: BTreeMap<String, serde_json::Value>,
}

impl PipelineRef {
    /// A reference to `template` with default parameters.
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.params.insert(name.into(), value);
        self
    }

    /// The core reference; values of an unsupported JSON type are reported at
    /// `{path}.params.{name}`.
    pub fn into_core(self, path: &str) -> Result<core::PipelineRef, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut params = BTreeMap::new();
        for (name, value) in self.params {
            match serde_json::from_value::<core::ParamValue>(value) {
                Ok(v) => {
                    params.insert(name, v);
                }
                Err(_) => errors.push(FieldError::new(
                    format!("{path}.params.{name}"),
                    "must be a boolean, a number, a string or a list of strings",
                )),
            }
        }
        if errors.is_empty() {
            Ok(core::PipelineRef {
                template: self.template,
                params,
            })
        } else {
            Err(errors)
        }
    }
}

fn params_to_json(
    params: BTreeMap<String, core::ParamValue>,
) -> BTreeMap<String, serde_json::Value> {
    params
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

impl From<core::PipelineRef> for PipelineRef {
    fn from(r: core::PipelineRef) -> Self {
        Self {
            template: r.template,
            params: params_to_json(r.params),
        }
    }
}

/// A pipeline ready to run: the typed spec for the native engine and the OpenTelemetry
/// Collector YAML, with the hash agents report to show what they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RenderedPipeline {
    /// The template it came from.
    pub template: String,
    /// Parameters after defaults.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The typed pipeline spec (receivers, processor stages, exporters) for the native engine.
    pub spec: serde_json::Value,
    /// OpenTelemetry Collector configuration.
    pub collector_yaml: String,
    /// SHA-256 of the configuration.
    pub config_hash: String,
}

impl From<core::RenderedPipeline> for RenderedPipeline {
    fn from(p: core::RenderedPipeline) -> Self {
        Self {
            spec: serde_json::to_value(&p.spec).unwrap_or(serde_json::Value::Null),
            template: p.template,
            params: params_to_json(p.params),
            collector_yaml: p.collector_yaml,
            config_hash: p.config_hash,
        }
    }
}

impl RenderedPipeline {
    /// The core pipeline (for agents).
    pub fn into_core(self) -> Result<core::RenderedPipeline, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(self)?)
    }
}

/// Kind of a template parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Enum),
    oai(rename_all = "snake_case")
)]
pub enum ParamType {
    /// `true` or `false`.
    Bool,
    /// An integer in `[min, max]`.
    Int,
    /// A number in `[min, max]`.
    Float,
    /// Text of at most `max_len` bytes.
    String,
    /// One of `values`.
    Enum,
    /// A Go duration (`10s`) in `[min, max]` seconds.
    Duration,
    /// A list of attribute keys (`min_items`..`max_items`).
    LabelKeys,
    /// A list of `host:port` targets (at most `max_items`).
    Targets,
    /// An `http(s)://` URL.
    Url,
}

/// One parameter of a template: type, bounds, default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct ParamSpec {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", oai(rename = "type"))]
    pub kind: ParamType,
    /// Smallest value (int, float; seconds for duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Longest string, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<u64>,
    /// Allowed values (enum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Fewest list items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_items: Option<u64>,
    /// Most list items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// Value when omitted.
    pub default: serde_json::Value,
    /// What it does.
    pub description: String,
}

#[allow(clippy::cast_precision_loss, reason = "parameter bounds are small")]
impl From<core::params::ParamSpec> for ParamSpec {
    fn from(p: core::params::ParamSpec) -> Self {
        use core::params::ParamKind as K;
        let mut out = Self {
            name: p.name,
            kind: ParamType::Bool,
            min: None,
            max: None,
            max_len: None,
            values: None,
            min_items: None,
            max_items: None,
            default: serde_json::to_value(&p.default).unwrap_or(serde_json::Value::Null),
            description: p.description,
        };
        match p.kind {
            K::Bool => {}
            K::Int { min, max } => {
                out.kind = ParamType::Int;
                out.min = Some(min as f64);
                out.max = Some(max as f64);
            }
            K::Float { min, max } => {
                out.kind = ParamType::Float;
                out.min = Some(min);
                out.max = Some(max);
            }
            K::String { max_len } => {
                out.kind = ParamType::String;
                out.max_len = Some(max_len as u64);
            }
            K::Enum { values } => {
                out.kind = ParamType::Enum;
                out.values = Some(values);
            }
            K::Duration { min_secs, max_secs } => {
                out.kind = ParamType::Duration;
                out.min = Some(min_secs as f64);
                out.max = Some(max_secs as f64);
            }
            K::LabelKeys {
                min_items,
                max_items,
            } => {
                out.kind = ParamType::LabelKeys;
                out.min_items = Some(min_items as u64);
                out.max_items = Some(max_items as u64);
            }
            K::Targets { max_items } => {
                out.kind = ParamType::Targets;
                out.max_items = Some(max_items as u64);
            }
            K::Url => out.kind = ParamType::Url,
        }
        out
    }
}

/// A template and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TemplateInfo {
    /// Name (use it in `PipelineRef.template`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// How the rendered Collector config relates to the native semantics.
    pub collector_notes: String,
    /// Parameters.
    pub params: Vec<ParamSpec>,
}

impl From<core::templates::TemplateInfo> for TemplateInfo {
    fn from(t: core::templates::TemplateInfo) -> Self {
        Self {
            name: t.name,
            description: t.description,
            collector_notes: t.collector_notes,
            params: t.params.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /pipelines/templates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TemplateList {
    /// Built-in and registered templates.
    pub items: Vec<TemplateInfo>,
}

/// Body of `POST /pipelines/render`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct RenderRequest {
    /// Template and parameters.
    pub pipeline: PipelineRef,
    /// Processes that must always pass.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_processes: Vec<String>,
    /// Metric patterns that must always pass.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_metrics: Vec<String>,
}

impl RenderRequest {
    /// The render context (critical processes and metrics).
    #[must_use]
    pub fn context(&self) -> core::RenderContext {
        core::RenderContext {
            variant: None,
            critical_processes: self.critical_processes.clone(),
            critical_metrics: self.critical_metrics.clone(),
        }
    }
}

/// Body of `POST /pipelines/preview`: a pipeline and what to evaluate it on, exactly one
/// of a pasted sample (`exposition`) and an agent's recorded snapshot (`agent_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct PreviewRequest {
    /// Template and parameters.
    pub pipeline: PipelineRef,
    /// Processes that must always pass.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_processes: Vec<String>,
    /// Metric patterns that must always pass.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub critical_metrics: Vec<String>,
    /// A recorded sample as Prometheus text exposition (e.g. scraped from an agent's
    /// `/metrics/baseline`). Exactly one of `exposition` and `agent_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposition: Option<String>,
    /// With `exposition` only: the seconds the sample covers (one point per series),
    /// needed to price it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<u32>,
    /// Preview on this agent's latest cardinality snapshot (what it sends the server on
    /// its schedule). Exactly one of `exposition` and `agent_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<uuid::Uuid>,
    /// Price the input and the pipeline's output under this pricing model (a catalogue
    /// id, as `ExperimentSpec.pricing_model` lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_model: Option<String>,
}

impl PreviewRequest {
    /// The core request; every shape problem as a field error.
    pub fn into_core(self) -> Result<phoenix_core::phoenix::PreviewRequest, Vec<FieldError>> {
        use phoenix_core::phoenix::PreviewSource;
        let mut errors = Vec::new();
        let source = match (self.exposition, self.agent_id) {
            (Some(text), None) => Some(PreviewSource::Exposition {
                text,
                interval_secs: self.interval_secs,
            }),
            (None, Some(id)) => {
                if self.interval_secs.is_some() {
                    errors.push(FieldError::new(
                        "interval_secs",
                        "only with `exposition`: an agent's snapshot states its own interval",
                    ));
                }
                Some(PreviewSource::Agent(phoenix_core::ids::AgentId(id)))
            }
            (both, _) => {
                let why = if both.is_some() {
                    "give exactly one of `exposition` and `agent_id`, not both"
                } else {
                    "required: exactly one of `exposition` (a recorded sample in Prometheus text exposition format) and `agent_id` (an agent whose recorded snapshot to use)"
                };
                errors.push(FieldError::new("exposition", why));
                errors.push(FieldError::new("agent_id", why));
                None
            }
        };
        let context = core::RenderContext {
            variant: None,
            critical_processes: self.critical_processes,
            critical_metrics: self.critical_metrics,
        };
        let pipeline = match self.pipeline.into_core("pipeline") {
            Ok(p) => Some(p),
            Err(e) => {
                errors.extend(e);
                None
            }
        };
        match (source, pipeline) {
            (Some(source), Some(pipeline)) if errors.is_empty() => {
                Ok(phoenix_core::phoenix::PreviewRequest {
                    pipeline,
                    context,
                    source,
                    pricing_model: self.pricing_model,
                })
            }
            _ => Err(errors),
        }
    }
}

/// One problem in a Collector config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct ConfigIssue {
    /// Dotted path (`service.pipelines.metrics.exporters[0]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Line, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Column, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl From<core::validate::ConfigIssue> for ConfigIssue {
    fn from(i: core::validate::ConfigIssue) -> Self {
        Self {
            path: i.path,
            message: i.message,
            line: i.line,
            column: i.column,
        }
    }
}

/// One pipeline of a valid Collector config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct PipelineSummary {
    /// `metrics/candidate`.
    pub name: String,
    /// Receivers.
    pub receivers: Vec<String>,
    /// Processors, in order.
    pub processors: Vec<String>,
    /// Exporters.
    pub exporters: Vec<String>,
}

/// A Collector config's validation result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ValidationResult {
    /// No issue found.
    pub valid: bool,
    /// Every issue (parsing stops at the first syntax or limit error).
    pub issues: Vec<ConfigIssue>,
    /// The pipelines of a valid config.
    pub pipelines: Vec<PipelineSummary>,
}

impl From<Result<core::validate::CollectorSummary, Vec<core::validate::ConfigIssue>>>
    for ValidationResult
{
    fn from(r: Result<core::validate::CollectorSummary, Vec<core::validate::ConfigIssue>>) -> Self {
        match r {
            Ok(summary) => Self {
                valid: true,
                issues: Vec::new(),
                pipelines: summary
                    .pipelines
                    .into_iter()
                    .map(|p| PipelineSummary {
                        name: p.name,
                        receivers: p.receivers,
                        processors: p.processors,
                        exporters: p.exporters,
                    })
                    .collect(),
            },
            Err(issues) => Self {
                valid: false,
                issues: issues.into_iter().map(Into::into).collect(),
                pipelines: Vec::new(),
            },
        }
    }
}

/// `POST /pipelines/render`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RenderResponse {
    /// The rendered pipeline.
    pub rendered: RenderedPipeline,
    /// Its Collector config, validated.
    pub validation: ValidationResult,
}

/// Body of `POST /pipelines/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct ValidateRequest {
    /// An OpenTelemetry Collector configuration.
    pub collector_yaml: String,
}

/// `POST /pipelines/preview`: the pipeline's effect on the sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Preview {
    /// Template.
    pub template: String,
    /// Parameters, defaults applied.
    pub params: BTreeMap<String, serde_json::Value>,
    /// The sample as it is.
    pub input: crate::measure::VariantStats,
    /// What the pipeline would emit.
    pub output: crate::measure::VariantStats,
    /// Series reduction, percent.
    pub series_reduction_pct: f64,
    /// Data-point reduction, percent.
    pub points_reduction_pct: f64,
    /// Bytes reduction, percent.
    pub bytes_reduction_pct: f64,
    /// Reduction of process series, percent.
    pub process_series_reduction_pct: f64,
    /// Resource share the output carries.
    pub fidelity: crate::measure::Fidelity,
    /// Critical coverage, percent.
    pub critical_coverage_pct: f64,
    /// The Collector config that goes with it.
    pub collector_yaml: String,
    /// The query inventory on the sample (baseline) and the output (candidate); absent
    /// without an inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub queries: Option<crate::query::QueriesKept>,
    /// The agent snapshot the preview ran on (absent for a pasted sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub snapshot: Option<PreviewSnapshot>,
    /// The input and the output priced (absent without `pricing_model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(skip_serializing_if_is_none))]
    pub cost: Option<PreviewCost>,
}

wire_struct! {
    /// The agent snapshot a preview ran on.
    PreviewSnapshot <= core::preview::SnapshotRef {
        /// The agent.
        agent_id: uuid::Uuid,
        /// Its host.
        host: String,
        /// When the snapshot was taken.
        taken_at: chrono::DateTime<chrono::Utc>,
        /// Seconds it covers.
        interval_secs: u32,
    }
}

wire_struct! {
    /// The preview's input and output priced as a month of that host's traffic, by the
    /// same calculator as the cost views. Money is a decimal string.
    PreviewCost <= core::preview::PreviewCost {
        /// The pricing model.
        pricing_model: String,
        /// The input as recorded.
        input: crate::analysis::CostBreakdown,
        /// What the pipeline would emit.
        output: crate::analysis::CostBreakdown,
        /// Input minus output, per month (negative: the output costs more).
        saving_per_month: String,
        /// The saving in percent of the input's bill (absent when that bill is zero).
        reduction_pct: Option<f64>,
    }
}

impl From<core::preview::Preview> for Preview {
    fn from(p: core::preview::Preview) -> Self {
        Self {
            template: p.template,
            params: params_to_json(p.params),
            input: p.input.into(),
            output: p.output.into(),
            series_reduction_pct: p.series_reduction_pct,
            points_reduction_pct: p.points_reduction_pct,
            bytes_reduction_pct: p.bytes_reduction_pct,
            process_series_reduction_pct: p.process_series_reduction_pct,
            fidelity: crate::measure::Fidelity {
                cpu_pct: p.fidelity.cpu_pct,
                memory_pct: p.fidelity.memory_pct,
            },
            critical_coverage_pct: p.critical_coverage_pct,
            collector_yaml: p.collector_yaml,
            queries: p.queries.map(Into::into),
            snapshot: p.snapshot.map(Into::into),
            cost: p.cost.map(Into::into),
        }
    }
}
