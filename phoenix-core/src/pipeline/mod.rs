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
pub mod pattern;
pub mod sample;
pub mod spec;
pub mod syntax;

use std::collections::BTreeMap;

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
    /// The reference is invalid (unknown template, bad parameters).
    #[error("invalid pipeline reference")]
    Invalid(Vec<FieldError>),
}

/// The templates Phoenix can render.
#[derive(Debug, Clone)]
pub struct TemplateRegistry {
    names: Vec<String>,
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
        Self {
            names: ["baseline", "topk", "adaptive", "hybrid", "aggregate"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Template names.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every problem with `reference`, with paths under `path`.
    #[must_use]
    pub fn validate_ref(&self, reference: &PipelineRef, path: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if !self.names.contains(&reference.template) {
            errors.push(FieldError::new(
                format!("{path}.template"),
                format!(
                    "unknown template `{}` (available: {})",
                    reference.template,
                    self.names.join(", ")
                ),
            ));
        }
        errors
    }

    /// Renders `reference`.
    pub fn render(
        &self,
        reference: &PipelineRef,
        _context: &RenderContext,
    ) -> Result<RenderedPipeline, PipelineError> {
        let errors = self.validate_ref(reference, "pipeline");
        if !errors.is_empty() {
            return Err(PipelineError::Invalid(errors));
        }
        let spec = PipelineSpec::default();
        let collector_yaml = String::new();
        let mut hasher = Sha256::new();
        hasher.update(collector_yaml.as_bytes());
        hasher.update(reference.template.as_bytes());
        Ok(RenderedPipeline {
            template: reference.template.clone(),
            params: reference.params.clone(),
            spec,
            collector_yaml,
            config_hash: hex::encode(hasher.finalize()),
        })
    }
}
