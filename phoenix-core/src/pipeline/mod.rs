//! Pipelines: what an experiment deploys to agents.
//!
//! A pipeline is referenced by a template name and typed parameters ([`PipelineRef`]); the
//! [`TemplateRegistry`] turns a reference into a [`RenderedPipeline`]: a typed
//! [`PipelineSpec`] that the native engine evaluates, plus the OpenTelemetry Collector YAML
//! for hosts that run a real collector.

#[cfg(test)]
pub(crate) mod corpus;
pub mod encode;
pub mod engine;
pub mod exposition;
pub mod params;
pub mod pattern;
pub mod preview;
pub mod render;
pub mod sample;
pub mod spec;
pub mod syntax;
pub mod templates;
pub mod validate;
pub mod yaml;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::measure::Variant;
use crate::validation::FieldError;

/// A typed template parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    String(String),
    /// A list of strings.
    List(Vec<String>),
}

/// A pipeline by template name and parameters, as written in an experiment spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRef {
    /// Name of a built-in or admin-registered template.
    pub template: String,
    /// Parameters; missing ones take the template's defaults.
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
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
    pub fn with_param(mut self, name: impl Into<String>, value: ParamValue) -> Self {
        self.params.insert(name.into(), value);
        self
    }
}

pub use engine::{Engine, Evaluation, evaluate};
pub use pattern::Pattern;
pub use sample::{ProcessRecord, Sample, SampleBuilder};
pub use spec::{PipelineSpec, Stage};

/// What rendering needs besides the reference.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RenderContext {
    /// Which variant this pipeline is in its experiment.
    pub variant: Option<Variant>,
    /// Processes that must always pass (executable names or patterns).
    pub critical_processes: Vec<String>,
    /// Metric name patterns that must always pass.
    pub critical_metrics: Vec<String>,
}

/// A pipeline ready to ship to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedPipeline {
    /// The template it came from.
    pub template: String,
    /// The parameters after defaults were applied.
    pub params: BTreeMap<String, ParamValue>,
    /// The typed spec for the native engine.
    pub spec: PipelineSpec,
    /// The OpenTelemetry Collector configuration.
    pub collector_yaml: String,
    /// SHA-256 (hex) of the collector YAML and the spec: agents report it to show which
    /// configuration they run.
    pub config_hash: String,
}

/// Why a pipeline could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The reference is invalid (unknown template, bad parameters, bad critical patterns).
    #[error("invalid pipeline reference")]
    Invalid(Vec<FieldError>),
    /// A template could not be registered.
    #[error("invalid template")]
    Template(#[source] render::DocumentError),
    /// A template name is taken or malformed.
    #[error("template name `{0}` is taken or malformed")]
    TemplateName(String),
    /// The handlebars document failed to render (a template bug, not a user error).
    #[error("template failed to render: {0}")]
    Render(String),
    /// The rendered YAML failed validation (a template bug, not a user error).
    #[error("rendered configuration is invalid")]
    InvalidConfig(Vec<validate::ConfigIssue>),
}

impl PipelineError {
    /// The error as field errors (what an API reports): the invalid fields, or one entry
    /// describing a template or rendering problem.
    #[must_use]
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Invalid(errors) => errors.clone(),
            Self::Template(e) => vec![FieldError::new("template", e.to_string())],
            Self::TemplateName(name) => vec![FieldError::new(
                "template.name",
                format!("`{}` is taken or malformed", name.escape_debug()),
            )],
            Self::Render(message) => vec![FieldError::new("template", message.clone())],
            Self::InvalidConfig(issues) => issues
                .iter()
                .map(|i| {
                    let at = i.line.map_or(String::new(), |l| format!(" (line {l})"));
                    FieldError::new(
                        format!("collector_yaml.{}", i.path),
                        format!("{}{at}", i.message),
                    )
                })
                .collect(),
        }
    }
}

/// One Collector config running both variants of an experiment side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRender {
    /// The baseline on its own (its spec drives the native engine).
    pub baseline: RenderedPipeline,
    /// The candidate on its own.
    pub candidate: RenderedPipeline,
    /// One config with `metrics/baseline` and `metrics/candidate` sharing the receivers, so
    /// the Collector fans the same input out to both.
    pub collector_yaml: String,
    /// SHA-256 (hex) over both specs and the YAML.
    pub config_hash: String,
}

/// The templates Phoenix can render: built-in ones and those an administrator registered.
/// Documents are compiled once, when registered; cloning shares them.
#[derive(Debug, Clone)]
pub struct TemplateRegistry {
    names: Vec<String>,
    templates: Vec<templates::TemplateDef>,
    renderer: Arc<render::Renderer>,
}

impl Default for TemplateRegistry {
    fn default() -> Self {
        Self::builtin()
    }
}

impl TemplateRegistry {
    /// The built-in templates.
    #[must_use]
    pub fn builtin() -> Self {
        let templates = templates::builtin();
        Self {
            names: templates.iter().map(|t| t.name.clone()).collect(),
            templates,
            renderer: Arc::new(render::Renderer::default()),
        }
    }

    /// Template names.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// A template's public description.
    #[must_use]
    pub fn info(&self, name: &str) -> Option<templates::TemplateInfo> {
        self.get(name).map(templates::TemplateDef::info)
    }

    /// Every template's public description.
    #[must_use]
    pub fn infos(&self) -> Vec<templates::TemplateInfo> {
        self.templates
            .iter()
            .map(templates::TemplateDef::info)
            .collect()
    }

    fn get(&self, name: &str) -> Option<&templates::TemplateDef> {
        self.templates.iter().find(|t| t.name == name)
    }

    /// Registers an administrator's template. `document`, when given, is a handlebars
    /// collector document compiled now under `custom/<name>`; otherwise `def.document` must
    /// name a registered document (such as the built-in `collector`). Request bodies never
    /// reach this: it is for embedders and operators' configuration.
    ///
    /// # Errors
    /// A taken or malformed name, defaults that fail their own schema, or a document that
    /// bypasses escaping or does not compile.
    pub fn register(
        &mut self,
        mut def: templates::TemplateDef,
        document: Option<&str>,
    ) -> Result<(), PipelineError> {
        let well_formed = !def.name.is_empty()
            && def.name.len() <= 64
            && def
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed || self.get(&def.name).is_some() {
            return Err(PipelineError::TemplateName(def.name));
        }
        params::resolve(&def.params, &BTreeMap::new(), "template")
            .map_err(PipelineError::Invalid)?;
        if let Some(source) = document {
            let name = format!("custom/{}", def.name);
            Arc::make_mut(&mut self.renderer)
                .register(&name, source)
                .map_err(PipelineError::Template)?;
            def.document = name;
        } else if !self.renderer.has(&def.document) {
            return Err(PipelineError::Template(render::DocumentError::Syntax(
                format!("no document named `{}`", def.document),
            )));
        }
        self.names.push(def.name.clone());
        self.templates.push(def);
        Ok(())
    }

    /// Every problem with `reference`, with paths under `path`.
    #[must_use]
    pub fn validate_ref(&self, reference: &PipelineRef, path: &str) -> Vec<FieldError> {
        match self.resolve(reference, path) {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    fn resolve(
        &self,
        reference: &PipelineRef,
        path: &str,
    ) -> Result<(&templates::TemplateDef, params::Params), Vec<FieldError>> {
        let Some(def) = self.get(&reference.template) else {
            let shown: String = reference.template.chars().take(64).collect();
            return Err(vec![FieldError::new(
                format!("{path}.template"),
                format!(
                    "unknown template `{}` (available: {})",
                    shown.escape_debug(),
                    self.names.join(", ")
                ),
            )]);
        };
        let params = params::resolve(&def.params, &reference.params, path)?;
        let has_process = def.params.iter().any(|p| p.name == "process_metrics");
        if has_process
            && !params.bool("process_metrics")
            && params.list("prometheus_targets").is_empty()
        {
            return Err(vec![FieldError::new(
                format!("{path}.params.process_metrics"),
                "nothing to collect: enable process_metrics or give prometheus_targets",
            )]);
        }
        Ok((def, params))
    }

    /// Resolves, builds and checks the spec of `reference`.
    fn build(
        &self,
        reference: &PipelineRef,
        context: &RenderContext,
        path: &str,
    ) -> Result<(&templates::TemplateDef, params::Params, PipelineSpec), Vec<FieldError>> {
        let (def, params) = self.resolve(reference, path)?;
        let spec = (def.build)(&params, context);
        let mut errors = spec.validate(&format!("{path}.spec"));
        for port in prometheus_ports(&spec) {
            if let Some((_, owner)) = RESERVED_PORTS.iter().find(|(p, _)| *p == port) {
                errors.push(FieldError::new(
                    format!("{path}.params.prometheus_port"),
                    format!("port {port} is taken by the Collector's {owner}: the Collector would fail to start"),
                ));
            }
        }
        if errors.is_empty() {
            Ok((def, params, spec))
        } else {
            Err(errors)
        }
    }

    /// Renders `reference`: parameters validated against the schema with defaults applied,
    /// the context's critical processes and metrics injected as a `keep_critical` stage, the
    /// Collector YAML rendered and validated, and the config hash taken over spec and YAML.
    ///
    /// # Errors
    /// [`PipelineError::Invalid`] for bad input; the other variants mean a template bug.
    pub fn render(
        &self,
        reference: &PipelineRef,
        context: &RenderContext,
    ) -> Result<RenderedPipeline, PipelineError> {
        let (def, params, spec) = self
            .build(reference, context, "pipeline")
            .map_err(PipelineError::Invalid)?;
        let mut model = render::collector::CollectorModel::new(&def.name);
        // One pipeline cannot conflict with itself.
        let _ = model.add_pipeline(&spec, context.variant);
        let yaml = self.finish_yaml(&def.document, &model)?;
        let config_hash = config_hash(&[&spec], &yaml);
        Ok(RenderedPipeline {
            template: def.name.clone(),
            params: params.values().clone(),
            spec,
            collector_yaml: yaml,
            config_hash,
        })
    }

    /// Renders both variants of an experiment into one Collector config with the pipelines
    /// `metrics/baseline` and `metrics/candidate` sharing the receivers. The document of the
    /// candidate's template renders the combined config.
    ///
    /// # Errors
    /// [`PipelineError::Invalid`] with paths under `baseline` / `candidate`, including a
    /// receiver the two variants configure differently (they must see the same input).
    pub fn render_experiment(
        &self,
        baseline: &PipelineRef,
        candidate: &PipelineRef,
        critical_processes: &[String],
        critical_metrics: &[String],
    ) -> Result<ExperimentRender, PipelineError> {
        let context = |variant| RenderContext {
            variant: Some(variant),
            critical_processes: critical_processes.to_vec(),
            critical_metrics: critical_metrics.to_vec(),
        };
        let (b_ctx, c_ctx) = (context(Variant::Baseline), context(Variant::Candidate));
        let b = self.build(baseline, &b_ctx, "baseline");
        let c = self.build(candidate, &c_ctx, "candidate");
        let ((b_def, b_params, b_spec), (c_def, c_params, c_spec)) = match (b, c) {
            (Ok(b), Ok(c)) => (b, c),
            (b, c) => {
                let mut errors = b.err().unwrap_or_default();
                errors.extend(c.err().unwrap_or_default());
                return Err(PipelineError::Invalid(errors));
            }
        };
        let baseline_ports = prometheus_ports(&b_spec);
        if let Some(port) = prometheus_ports(&c_spec)
            .into_iter()
            .find(|p| baseline_ports.contains(p))
        {
            return Err(PipelineError::Invalid(vec![FieldError::new(
                "candidate.params.prometheus_port",
                format!(
                    "the baseline's Prometheus exporter already listens on port {port}: each variant needs its own port"
                ),
            )]));
        }
        let single = |def: &templates::TemplateDef,
                      params: params::Params,
                      spec: PipelineSpec,
                      variant: Variant|
         -> Result<RenderedPipeline, PipelineError> {
            let mut model = render::collector::CollectorModel::new(&def.name);
            let _ = model.add_pipeline(&spec, Some(variant));
            let yaml = self.finish_yaml(&def.document, &model)?;
            Ok(RenderedPipeline {
                template: def.name.clone(),
                params: params.values().clone(),
                config_hash: config_hash(&[&spec], &yaml),
                spec,
                collector_yaml: yaml,
            })
        };
        let mut model =
            render::collector::CollectorModel::new(&format!("{} vs {}", b_def.name, c_def.name));
        let _ = model.add_pipeline(&b_spec, Some(Variant::Baseline));
        if let Err(conflict) = model.add_pipeline(&c_spec, Some(Variant::Candidate)) {
            return Err(PipelineError::Invalid(vec![FieldError::new(
                "candidate.params",
                format!(
                    "receiver `{}` must be configured as in the baseline (same collection interval, CPU utilisation and targets) so both variants see the same input",
                    conflict.id
                ),
            )]));
        }
        let yaml = self.finish_yaml(&c_def.document, &model)?;
        let hash = config_hash(&[&b_spec, &c_spec], &yaml);
        Ok(ExperimentRender {
            baseline: single(b_def, b_params, b_spec, Variant::Baseline)?,
            candidate: single(c_def, c_params, c_spec, Variant::Candidate)?,
            collector_yaml: yaml,
            config_hash: hash,
        })
    }

    fn finish_yaml(
        &self,
        document: &str,
        model: &render::collector::CollectorModel,
    ) -> Result<String, PipelineError> {
        let yaml = self
            .renderer
            .render(document, model)
            .map_err(PipelineError::Render)?;
        validate::validate_collector_yaml(&yaml).map_err(PipelineError::InvalidConfig)?;
        Ok(yaml)
    }
}

/// Ports the rendered Collector itself listens on, with what listens there: a Prometheus
/// exporter on one of them fails the Collector's start.
pub const RESERVED_PORTS: [(u16, &str); 2] =
    [(13133, "health_check extension"), (8888, "own telemetry")];

/// The ports of a spec's Prometheus exporters.
fn prometheus_ports(spec: &PipelineSpec) -> Vec<u16> {
    spec.exporters
        .iter()
        .filter_map(|e| match e {
            spec::ExporterSpec::Prometheus { endpoint } => endpoint
                .rsplit_once(':')
                .and_then(|(_, port)| port.parse().ok()),
            spec::ExporterSpec::OtlpHttp { .. } => None,
        })
        .collect()
}

fn config_hash(specs: &[&PipelineSpec], yaml: &str) -> String {
    let mut hasher = Sha256::new();
    for spec in specs {
        // Serialising a spec cannot fail: it has string keys and finite-or-not floats only.
        hasher.update(serde_json::to_vec(spec).unwrap_or_default());
        hasher.update(b"\n");
    }
    hasher.update(yaml.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests;
