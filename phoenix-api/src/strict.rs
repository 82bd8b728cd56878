//! Request bodies parsed as they are meant. Every request type (and every type nested in
//! one) is `#[serde(deny_unknown_fields)]`, so a misspelt or misplaced field is refused
//! instead of silently dropped; [`from_slice`] and [`from_value`] say which field, with
//! its path in the API's spelling (`spec.targets.label`), so the server can answer 422
//! naming it and the CLI can point at the line of a spec file.

use serde::de::DeserializeOwned;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all (or truncated): nothing to point at.
    Syntax(String),
    /// A field the type does not have, at `path` (the field's own path).
    UnknownField {
        /// `spec.targets.label`.
        path: String,
    },
    /// Well-formed JSON of the wrong shape: a wrong type, a missing field, a bad enum name.
    Shape {
        /// Where (the parent object for a missing field); empty at the top.
        path: String,
        /// serde's description.
        message: String,
    },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax(m) => write!(f, "invalid JSON body: {m}"),
            Self::UnknownField { path } => write!(f, "{path}: unknown field"),
            Self::Shape { path, message } if path.is_empty() => {
                write!(f, "invalid JSON body: {message}")
            }
            Self::Shape { path, message } => write!(f, "invalid JSON body: {path}: {message}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Parses a JSON body into `T`.
///
/// # Errors
/// [`BodyError`] saying what is wrong and where.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // The common case, a valid body, parses without tracking where it is (the path
    // tracker records every map key it passes, a cost per label on a host's snapshot);
    // a body that fails is parsed again with the tracker, to say where.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| classify(&e))?;
    // Nothing but whitespace after the value.
    de.end().map_err(|e| BodyError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Parses an already parsed JSON value into `T` (the CLI reads YAML into one first).
///
/// # Errors
/// [`BodyError`] saying what is wrong and where.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, BodyError> {
    serde_path_to_error::deserialize(value).map_err(|e| classify(&e))
}

fn classify(e: &serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let inner = e.inner();
    let path = path_string(e.path());
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return BodyError::Syntax(inner.to_string());
    }
    let message = inner.to_string();
    // serde's one wording for `de::Error::unknown_field`: "unknown field `name`, expected …".
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    {
        let path = if path.is_empty() || path.ends_with(name) {
            if path.is_empty() {
                name.to_owned()
            } else {
                path
            }
        } else {
            format!("{path}.{name}")
        };
        return BodyError::UnknownField { path };
    }
    // serde_json appends " at line L column C"; the path says more.
    let message = match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    BodyError::Shape { path, message }
}

/// `spec.criteria[0].threshold`.
fn path_string(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// A constraint the server enforces on one property of a request schema, stated in the
/// OpenAPI document so that schema and server agree: `(schema, property, keywords)`.
pub type StatedLimit = (&'static str, &'static str, serde_json::Value);

/// Control characters (Unicode `Cc`) excluded: optional names.
pub const NAME_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// [`NAME_PATTERN`] with at least one character that is neither a control character nor
/// white space (Unicode `White_Space`, as Rust's `str::trim` strips it): required names,
/// which the server refuses when blank.
pub const REQUIRED_NAME_PATTERN: &str = concat!(
    r"^[^\u0000-\u001F\u007F-\u009F]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"[^\u0000-\u001F\u007F-\u009F]*$"
);
/// Control characters but tab, line feed and carriage return excluded: free text.
pub const FREE_TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// Every limit of `phoenix_core::inputs` (and the experiment and deployment rules) that a
/// JSON schema can state, from the same constants the server checks. Cross-field rules
/// (warm-up shorter than the duration), reported times (a window around the server's
/// clock), template parameters and map keys (label keys, metric names: OpenAPI 3.0 has no
/// `propertyNames`) are checked but not stated.
#[must_use]
pub fn stated_limits() -> Vec<StatedLimit> {
    use phoenix_core::deployment::MAX_BATCH;
    use phoenix_core::experiment::{
        MAX_AUTO_PROMOTE_MIN_HOSTS, MAX_CRITICAL_ENTRIES, MAX_DESCRIPTION_CHARS, MAX_DURATION_SECS,
        MIN_DURATION_SECS,
    };
    use phoenix_core::inputs as i;
    use phoenix_core::phoenix::{MAX_SAMPLES_PER_REPORT, MAX_SNAPSHOT_SERIES};
    use serde_json::json;
    let name =
        |max: usize| json!({"minLength": 1, "maxLength": max, "pattern": REQUIRED_NAME_PATTERN});
    // A list of at most `max` names of at most `chars` characters each.
    let names = |max: usize, chars: usize| json!({"maxItems": max, "items": {"type": "string", "minLength": 1, "maxLength": chars, "pattern": REQUIRED_NAME_PATTERN}});
    // A map of at most `max` entries whose values are optional names of at most `chars`.
    let labels = |max: usize, chars: usize| json!({"maxProperties": max, "additionalProperties": {"type": "string", "maxLength": chars, "pattern": NAME_PATTERN}});
    let optional_name = |max: usize| json!({"maxLength": max, "pattern": NAME_PATTERN});
    let free = |max: usize| json!({"maxLength": max, "pattern": FREE_TEXT_PATTERN});
    let upto = |max: u64| json!({"minimum": 0, "maximum": max});
    let between = |min: u64, max: u64| json!({"minimum": min, "maximum": max});
    let pct = |max: f64| json!({"minimum": 0.0, "maximum": max});
    let items = |max: usize| json!({"maxItems": max});
    let entries = |max: usize| json!({"maxProperties": max});
    let reason = || free(i::MAX_REASON_CHARS);
    vec![
        // Operators.
        ("NewExperiment", "name", name(i::MAX_NAME_CHARS)),
        ("NewExperiment", "description", free(MAX_DESCRIPTION_CHARS)),
        (
            "ExperimentSpec",
            "duration_secs",
            between(MIN_DURATION_SECS, MAX_DURATION_SECS),
        ),
        (
            "ExperimentSpec",
            "sample_interval_secs",
            between(1, u64::from(i::MAX_SAMPLE_INTERVAL_SECS)),
        ),
        ("ExperimentSpec", "min_agents", json!({"minimum": 1})),
        (
            "ExperimentSpec",
            "auto_promote_min_hosts",
            between(1, u64::from(MAX_AUTO_PROMOTE_MIN_HOSTS)),
        ),
        ("ExperimentSpec", "pricing_model", name(i::MAX_TOKEN_CHARS)),
        (
            "ExperimentSpec",
            "critical_processes",
            names(MAX_CRITICAL_ENTRIES, i::MAX_TOKEN_CHARS),
        ),
        (
            "ExperimentSpec",
            "critical_metrics",
            names(MAX_CRITICAL_ENTRIES, i::MAX_TOKEN_CHARS),
        ),
        ("ExperimentSpec", "criteria", items(32)),
        ("Criterion", "threshold", json!({"minimum": -100.0})),
        ("PipelineRef", "template", json!({"minLength": 1})),
        (
            "PreviewRequest",
            "interval_secs",
            between(1, u64::from(i::MAX_SNAPSHOT_INTERVAL_SECS)),
        ),
        ("PreviewRequest", "pricing_model", name(i::MAX_TOKEN_CHARS)),
        (
            "TargetSelector",
            "labels",
            labels(i::MAX_LABELS, i::MAX_TOKEN_CHARS),
        ),
        (
            "TargetSelector",
            "hosts",
            names(i::MAX_SELECTOR_HOSTS, i::MAX_TOKEN_CHARS),
        ),
        ("NewDeployment", "name", name(i::MAX_NAME_CHARS)),
        (
            "RolloutStrategy",
            "initial_batch",
            between(1, u64::from(MAX_BATCH)),
        ),
        (
            "RolloutStrategy",
            "growth_factor",
            between(1, u64::from(MAX_BATCH)),
        ),
        (
            "RolloutStrategy",
            "max_batch",
            between(1, u64::from(MAX_BATCH)),
        ),
        ("NewToken", "name", name(i::MAX_NAME_CHARS)),
        ("NewQuerySource", "name", name(i::MAX_NAME_CHARS)),
        (
            "NewQuerySource",
            "content",
            json!({"minLength": 1, "maxLength": phoenix_core::queries::MAX_SOURCE_BYTES, "pattern": FREE_TEXT_PATTERN}),
        ),
        ("StopRequest", "reason", reason()),
        ("RollbackRequest", "reason", reason()),
        ("PromoteRequest", "reason", reason()),
        // Agents.
        ("AgentRegistration", "host", name(i::MAX_HOST_CHARS)),
        ("AgentRegistration", "version", optional_name(64)),
        ("AgentRegistration", "os", optional_name(128)),
        (
            "AgentRegistration",
            "labels",
            labels(i::MAX_LABELS, i::MAX_TOKEN_CHARS),
        ),
        (
            "AgentRegistration",
            "capabilities",
            names(i::MAX_CAPABILITIES, 64),
        ),
        ("Heartbeat", "pipelines", items(i::MAX_PIPELINES)),
        ("ActivePipeline", "name", name(i::MAX_TOKEN_CHARS)),
        (
            "ActivePipeline",
            "template",
            optional_name(i::MAX_NAME_CHARS),
        ),
        (
            "ActivePipeline",
            "config_hash",
            optional_name(i::MAX_NAME_CHARS),
        ),
        ("ActivePipeline", "detail", free(i::MAX_DETAIL_CHARS)),
        ("HostStats", "cpu_pct", pct(i::MAX_HOST_CPU_PCT)),
        ("HostStats", "agent_cpu_pct", pct(i::MAX_AGENT_CPU_PCT)),
        ("HostStats", "memory_used_bytes", upto(i::MAX_MEMORY_BYTES)),
        ("HostStats", "memory_total_bytes", upto(i::MAX_MEMORY_BYTES)),
        ("HostStats", "agent_rss_bytes", upto(i::MAX_MEMORY_BYTES)),
        ("HostStats", "process_count", upto(i::MAX_PROCESSES)),
        ("MetricsReport", "samples", items(MAX_SAMPLES_PER_REPORT)),
        ("MeasurementSample", "seq", between(1, i::MAX_STORABLE_INT)),
        (
            "MeasurementSample",
            "interval_secs",
            between(1, u64::from(i::MAX_SAMPLE_INTERVAL_SECS)),
        ),
        ("VariantStats", "series", upto(i::MAX_SERIES)),
        ("VariantStats", "points", upto(i::MAX_POINTS)),
        ("VariantStats", "bytes", upto(i::MAX_BYTES)),
        ("VariantStats", "eval_nanos", upto(i::MAX_EVAL_NANOS)),
        ("VariantStats", "active_series", upto(i::MAX_CHURN_SERIES)),
        (
            "VariantStats",
            "hour_distinct_series",
            upto(i::MAX_CHURN_SERIES),
        ),
        (
            "VariantStats",
            "series_by_metric",
            json!({"maxProperties": i::MAX_METRICS, "additionalProperties": {"type": "integer", "format": "uint64", "minimum": 0, "maximum": i::MAX_SERIES}}),
        ),
        ("VariantStats", "top_labels", items(i::MAX_LIST_ENTRIES)),
        ("LabelCardinality", "key", name(i::MAX_LABEL_KEY_CHARS)),
        ("LabelCardinality", "distinct_values", upto(i::MAX_SERIES)),
        ("Fidelity", "cpu_pct", pct(100.0)),
        ("Fidelity", "memory_pct", pct(100.0)),
        (
            "CriticalCoverage",
            "expected",
            names(i::MAX_LIST_ENTRIES, i::MAX_TOKEN_CHARS),
        ),
        (
            "CriticalCoverage",
            "present",
            names(i::MAX_LIST_ENTRIES, i::MAX_TOKEN_CHARS),
        ),
        (
            "CriticalCoverage",
            "missing",
            names(i::MAX_LIST_ENTRIES, i::MAX_TOKEN_CHARS),
        ),
        ("CardinalitySnapshot", "host", name(i::MAX_HOST_CHARS)),
        (
            "CardinalitySnapshot",
            "interval_secs",
            between(1, u64::from(i::MAX_SNAPSHOT_INTERVAL_SECS)),
        ),
        ("CardinalitySnapshot", "series", items(MAX_SNAPSHOT_SERIES)),
        ("SnapshotSeries", "metric", name(i::MAX_TOKEN_CHARS)),
        ("SnapshotSeries", "labels", entries(i::MAX_SERIES_LABELS)),
        ("SnapshotSeries", "points", upto(i::MAX_POINTS)),
        (
            "SnapshotSeries",
            "value",
            json!({"minimum": -i::MAX_SERIES_VALUE, "maximum": i::MAX_SERIES_VALUE}),
        ),
        ("TaskStatusReport", "error", free(i::MAX_DETAIL_CHARS)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::NewExperiment;
    use crate::measure::MetricsReport;

    const SPEC: &str = r#"{"name": "x", "spec": {"baseline": {"template": "baseline"},
        "candidate": {"template": "topk"}, "duration_secs": 60 TARGETS}}"#;

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let body = SPEC.replace("TARGETS", r#", "targets": {"label": {"env": "prod"}}"#);
        assert_eq!(
            from_slice::<NewExperiment>(body.as_bytes()).unwrap_err(),
            BodyError::UnknownField {
                path: "spec.targets.label".to_owned()
            }
        );
        let body = SPEC.replace("TARGETS", r#", "auto_rolback": true"#);
        assert_eq!(
            from_slice::<NewExperiment>(body.as_bytes()).unwrap_err(),
            BodyError::UnknownField {
                path: "spec.auto_rolback".to_owned()
            }
        );
        let body = SPEC.replace(
            "TARGETS",
            r#", "criteria": [{"kpi": "fidelity_pct", "comparison": "at_least", "threshold": 1, "critcal": true}]"#,
        );
        assert_eq!(
            from_slice::<NewExperiment>(body.as_bytes()).unwrap_err(),
            BodyError::UnknownField {
                path: "spec.criteria[0].critcal".to_owned()
            }
        );
        assert_eq!(
            from_slice::<MetricsReport>(br#"{"samples": [], "extra": 1}"#).unwrap_err(),
            BodyError::UnknownField {
                path: "extra".to_owned()
            }
        );
    }

    #[test]
    fn websocket_client_messages_refuse_unknown_fields_too() {
        use crate::ws::ClientMessage;
        assert_eq!(
            from_slice::<ClientMessage>(br#"{"type": "ping", "id": 7}"#).unwrap(),
            ClientMessage::Ping { id: 7 }
        );
        assert_eq!(
            from_slice::<ClientMessage>(br#"{"type": "ping", "id": 7, "idd": 8}"#).unwrap_err(),
            BodyError::UnknownField {
                path: "idd".to_owned()
            }
        );
    }

    #[test]
    fn syntax_and_shape_errors_are_told_apart() {
        assert!(matches!(
            from_slice::<NewExperiment>(b"{nope"),
            Err(BodyError::Syntax(_))
        ));
        let body = SPEC.replace("TARGETS", "").replace("60", r#""long""#);
        match from_slice::<NewExperiment>(body.as_bytes()).unwrap_err() {
            BodyError::Shape { path, .. } => assert_eq!(path, "spec.duration_secs"),
            other => panic!("{other:?}"),
        }
        let ok = SPEC.replace("TARGETS", "");
        from_slice::<NewExperiment>(ok.as_bytes()).unwrap();
        assert!(matches!(
            from_slice::<NewExperiment>(format!("{ok} trailing").as_bytes()),
            Err(BodyError::Syntax(_))
        ));
    }
}
