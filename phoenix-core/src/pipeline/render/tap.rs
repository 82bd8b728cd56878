//! The measurement tap: how the otelcol runtime sees what each variant of an experiment
//! really produces, without changing the config it deploys.
//!
//! The tap is an **overlay**: a second, small Collector config the agent passes after the
//! deployed one (`--config deployed.yaml --config tap.yaml`). The Collector merges its
//! config sources in order (mappings merged key by key, anything else, lists included,
//! replaced by the later source), so the overlay:
//! - adds one `otlphttp` exporter per stream (`otlphttp/phoenix_tap_input`,
//!   `otlphttp/phoenix_tap_baseline`, `otlphttp/phoenix_tap_candidate`), each posting
//!   protobuf, uncompressed, without retries or queue, to its own path under `endpoint`
//!   with an `authorization` header;
//! - restates the exporter list of `metrics/baseline` and `metrics/candidate` with the
//!   variant's tap appended (lists are replaced, not appended, so every deployed exporter is
//!   repeated);
//! - adds the pipeline `metrics/phoenix_input`: every receiver of the two variants, no
//!   processor, the input tap. The Collector fans each receiver's data out to every
//!   pipeline that uses it, so the input tap sees exactly what both variants receive.
//!
//! Nothing else of the deployed config changes: its receivers, processors, exporters and
//! their order are the judged ones, and the config a promotion deploys is the deployed file
//! itself, without the overlay.

use std::fmt::Write as _;

use super::escape::yaml_scalar;
use crate::measure::Variant;
use crate::pipeline::yaml::{self, Node, YamlLimits};

/// What a tap stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TapStream {
    /// What the shared receivers produce (the variants' common input).
    Input,
    /// What a variant's pipeline exports.
    Variant(Variant),
}

impl TapStream {
    /// The three streams, input first.
    pub const ALL: [TapStream; 3] = [
        TapStream::Input,
        TapStream::Variant(Variant::Baseline),
        TapStream::Variant(Variant::Candidate),
    ];

    /// The stream's name: `input`, `baseline` or `candidate` (its path segment).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Variant(v) => v.as_str(),
        }
    }

    /// The stream named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The id of the stream's exporter in the overlay.
    #[must_use]
    pub fn exporter_id(self) -> String {
        format!("otlphttp/phoenix_tap_{}", self.as_str())
    }
}

/// The pipeline the overlay adds for the input stream.
pub const INPUT_PIPELINE: &str = "metrics/phoenix_input";

/// The URL path a stream's exporter posts to, under the tap endpoint: `/tap/<generation>/<stream>/v1/metrics`.
/// The generation lets the receiving side ignore data from a Collector it already replaced.
#[must_use]
pub fn tap_path(generation: u64, stream: TapStream) -> String {
    format!("/tap/{generation}/{}/v1/metrics", stream.as_str())
}

/// Why a config cannot be tapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    /// The deployed config is not YAML the loader accepts.
    #[error("the deployed config cannot be read: {0}")]
    Unreadable(String),
    /// The deployed config has no `metrics/<variant>` pipeline (a document that names its
    /// pipelines otherwise).
    #[error("the deployed config has no `{0}` pipeline")]
    MissingPipeline(String),
    /// A pipeline's receivers or exporters are not a list of names.
    #[error("`service.pipelines.{0}` does not list its receivers and exporters by name")]
    Malformed(String),
}

/// Where the tap posts and how it proves it is the tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapTarget {
    /// Base URL of the receiving side, e.g. `http://127.0.0.1:40123` (loopback).
    pub endpoint: String,
    /// Sent as `authorization: Bearer <token>`.
    pub token: String,
    /// Which Collector start this overlay belongs to (see [`tap_path`]).
    pub generation: u64,
}

fn names(pipeline: &Node, key: &str, name: &str) -> Result<Vec<String>, TapError> {
    match pipeline.get(key) {
        None => Ok(Vec::new()),
        Some(n) if n.is_null() => Ok(Vec::new()),
        Some(n) => n
            .as_sequence()
            .ok_or_else(|| TapError::Malformed(name.to_owned()))?
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| TapError::Malformed(name.to_owned()))
            })
            .collect(),
    }
}

fn flow_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| yaml_scalar(i)).collect();
    format!("[{}]", quoted.join(", "))
}

/// The overlay tapping both variants of `deployed` (an experiment's combined config, with
/// the pipelines `metrics/baseline` and `metrics/candidate`). See the module docs.
///
/// # Errors
/// When `deployed` cannot be read or lacks either variant's pipeline.
pub fn measurement_tap(deployed: &str, target: &TapTarget) -> Result<String, TapError> {
    let doc = yaml::parse(deployed, &YamlLimits::default())
        .map_err(|e| TapError::Unreadable(e.to_string()))?;
    let pipelines = doc.get("service").and_then(|s| s.get("pipelines"));
    let mut input_receivers: Vec<String> = Vec::new();
    let mut variants = Vec::new();
    for variant in Variant::ALL {
        let name = format!("metrics/{variant}");
        let pipeline = pipelines
            .and_then(|p| p.get(&name))
            .ok_or_else(|| TapError::MissingPipeline(name.clone()))?;
        for r in names(pipeline, "receivers", &name)? {
            if !input_receivers.contains(&r) {
                input_receivers.push(r);
            }
        }
        let mut exporters = names(pipeline, "exporters", &name)?;
        exporters.push(TapStream::Variant(variant).exporter_id());
        variants.push((name, exporters));
    }
    if input_receivers.is_empty() {
        return Err(TapError::Malformed("metrics/baseline".to_owned()));
    }
    let base = target.endpoint.trim_end_matches('/');
    let mut out = String::from(
        "# Phoenix measurement tap: an overlay the agent merges after the deployed config\n\
         # (`--config deployed.yaml --config tap.yaml`); it is not part of what is deployed.\n\
         exporters:\n",
    );
    for stream in TapStream::ALL {
        let _ = write!(
            out,
            "  {}:\n    metrics_endpoint: {}\n    encoding: proto\n    compression: none\n    headers:\n      authorization: {}\n    retry_on_failure:\n      enabled: false\n    sending_queue:\n      enabled: false\n",
            stream.exporter_id(),
            yaml_scalar(&format!("{base}{}", tap_path(target.generation, stream))),
            yaml_scalar(&format!("Bearer {}", target.token)),
        );
    }
    out.push_str("service:\n  pipelines:\n");
    let _ = write!(
        out,
        "    {INPUT_PIPELINE}:\n      receivers: {}\n      exporters: {}\n",
        flow_list(&input_receivers),
        flow_list(&[TapStream::Input.exporter_id()]),
    );
    for (name, exporters) in variants {
        let _ = write!(
            out,
            "    {name}:\n      exporters: {}\n",
            flow_list(&exporters)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{PipelineRef, TemplateRegistry};

    fn target() -> TapTarget {
        TapTarget {
            endpoint: "http://127.0.0.1:4318/".to_owned(),
            token: "s3cret".to_owned(),
            generation: 7,
        }
    }

    fn list(node: &Node) -> Vec<&str> {
        node.as_sequence()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect()
    }

    #[test]
    fn the_overlay_appends_a_tap_to_each_variant_and_adds_an_input_pipeline() {
        let rendered = TemplateRegistry::builtin()
            .render_experiment(
                &PipelineRef::new("baseline"),
                &PipelineRef::new("topk"),
                &["sshd".to_owned()],
                &[],
            )
            .unwrap();
        let overlay = measurement_tap(&rendered.collector_yaml, &target()).unwrap();
        let doc = yaml::parse(&overlay, &YamlLimits::default()).unwrap();
        let deployed = yaml::parse(&rendered.collector_yaml, &YamlLimits::default()).unwrap();
        let pipelines = doc.get("service").unwrap().get("pipelines").unwrap();
        let deployed_pipelines = deployed.get("service").unwrap().get("pipelines").unwrap();
        for variant in Variant::ALL {
            let name = format!("metrics/{variant}");
            let mut expected = list(
                deployed_pipelines
                    .get(&name)
                    .unwrap()
                    .get("exporters")
                    .unwrap(),
            );
            let tap = TapStream::Variant(variant).exporter_id();
            expected.push(&tap);
            let got = pipelines.get(&name).unwrap();
            assert_eq!(list(got.get("exporters").unwrap()), expected);
            // Only the exporters are restated: receivers and processors stay the deployed ones.
            assert!(got.get("processors").is_none() && got.get("receivers").is_none());
        }
        let input = pipelines.get(INPUT_PIPELINE).unwrap();
        assert_eq!(list(input.get("receivers").unwrap()), ["hostmetrics"]);
        assert_eq!(
            list(input.get("exporters").unwrap()),
            ["otlphttp/phoenix_tap_input"]
        );
        let exporter = doc
            .get("exporters")
            .unwrap()
            .get("otlphttp/phoenix_tap_candidate")
            .unwrap();
        assert_eq!(
            exporter.get("metrics_endpoint").unwrap().as_str(),
            Some("http://127.0.0.1:4318/tap/7/candidate/v1/metrics")
        );
        assert_eq!(
            exporter
                .get("headers")
                .unwrap()
                .get("authorization")
                .unwrap()
                .as_str(),
            Some("Bearer s3cret")
        );
        // Nothing of the deployed components is redefined.
        assert!(doc.get("receivers").is_none() && doc.get("processors").is_none());
    }

    #[test]
    fn a_config_without_both_variant_pipelines_cannot_be_tapped() {
        let single = TemplateRegistry::builtin()
            .render(&PipelineRef::new("baseline"), &Default::default())
            .unwrap();
        assert_eq!(
            measurement_tap(&single.collector_yaml, &target()),
            Err(TapError::MissingPipeline("metrics/baseline".to_owned()))
        );
        assert!(matches!(
            measurement_tap("a: [", &target()),
            Err(TapError::Unreadable(_))
        ));
        let malformed = "service:\n  pipelines:\n    metrics/baseline:\n      receivers: hostmetrics\n    metrics/candidate:\n      receivers: [hostmetrics]\n";
        assert_eq!(
            measurement_tap(malformed, &target()),
            Err(TapError::Malformed("metrics/baseline".to_owned()))
        );
    }

    #[test]
    fn stream_names_round_trip() {
        for s in TapStream::ALL {
            assert_eq!(TapStream::from_name(s.as_str()), Some(s));
        }
        assert_eq!(TapStream::from_name("other"), None);
    }
}
