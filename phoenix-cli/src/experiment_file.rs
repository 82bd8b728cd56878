//! `experiment create`: the request from flags, or from a YAML or JSON file.
//!
//! YAML is read by `phoenix-core`'s bounded loader (the one the server uses for Collector
//! configs: size, depth, alias and node limits, duplicate keys refused) and resolved with
//! the YAML 1.2 core schema into JSON, keeping each field's line and column. The JSON is
//! then deserialized into the API's `NewExperiment` with the failing field's path, and
//! fields the API does not know are refused (a typo such as `duraton_secs` would otherwise
//! be silently ignored). The server's 422 field errors are pointed back at the file.

use phoenix_api::experiment::{Experiment, ExperimentSpec, NewExperiment, TargetSelector};
use phoenix_api::pipeline::PipelineRef;
use phoenix_api::strict::BodyError;
use phoenix_core::pipeline::yaml::{self, Node, NodeValue, YamlLimits};
use serde_json::Value;

use crate::args::Param;
use crate::cli::CreateArgs;
use crate::error::{CliError, Positions};

/// The request from flags; `None` fields take the API's defaults.
pub(crate) fn from_flags(args: &CreateArgs) -> NewExperiment {
    let mut spec = ExperimentSpec::new(
        pipeline_ref(
            args.baseline.as_deref().unwrap_or("baseline"),
            &args.baseline_param,
        ),
        pipeline_ref(args.candidate.as_deref().unwrap_or_default(), &args.param),
        args.duration.unwrap_or_default(),
    );
    spec.targets = TargetSelector {
        labels: args
            .label
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
        hosts: args.host.clone(),
    };
    if let Some(w) = args.warmup {
        spec.warmup_secs = w;
    }
    spec.critical_processes.clone_from(&args.critical_process);
    spec.critical_metrics.clone_from(&args.critical_metric);
    if !args.criterion.is_empty() {
        spec.criteria.clone_from(&args.criterion);
    }
    spec.auto_rollback = args.auto_rollback;
    spec.auto_promote = args.auto_promote;
    if let Some(n) = args.auto_promote_min_hosts {
        spec.auto_promote_min_hosts = n;
    }
    if let Some(m) = &args.pricing_model {
        spec.pricing_model.clone_from(m);
    }
    if let Some(n) = args.min_agents {
        spec.min_agents = n;
    }
    if let Some(s) = args.sample_interval {
        spec.sample_interval_secs = s;
    }
    NewExperiment {
        name: args.name.clone().unwrap_or_default(),
        description: args.description.clone().unwrap_or_default(),
        spec,
    }
}

/// A template reference with `KEY=VALUE` parameters (a repeated key: the last one wins).
pub(crate) fn pipeline_ref(template: &str, params: &[Param]) -> PipelineRef {
    let mut p = PipelineRef::new(template);
    for Param { key, value } in params {
        p.params.insert(key.clone(), value.clone());
    }
    p
}

/// Reads a file, or standard input for `-`.
pub(crate) fn read_input(path: &str) -> Result<String, CliError> {
    if path == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CliError::Input(format!("cannot read standard input: {e}")))?;
        Ok(text)
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("cannot read {path}: {e}")))
    }
}

/// The request in `text` (read from `name`), with the position of each field when it is
/// YAML.
pub(crate) fn from_file(name: &str, text: &str) -> Result<(NewExperiment, Positions), CliError> {
    let lower = name.to_ascii_lowercase();
    let is_json = lower.ends_with(".json")
        || (!lower.ends_with(".yaml")
            && !lower.ends_with(".yml")
            && text.trim_start().starts_with('{'));
    let mut positions = Positions::new();
    let value = if is_json {
        serde_json::from_str::<Value>(text).map_err(|e| {
            CliError::Input(format!(
                "{name}:{}:{}: not valid JSON: {e}",
                e.line(),
                e.column()
            ))
        })?
    } else {
        let root = yaml::parse(text, &YamlLimits::default()).map_err(|e| {
            CliError::Input(format!(
                "{name}:{}:{}: not valid YAML: {}",
                e.line, e.column, e.kind
            ))
        })?;
        to_json(&root, String::new(), &mut positions)
    };
    if !value.is_object() {
        return Err(CliError::Input(format!(
            "{name}: expected a mapping with `name` and `spec` (see `phoenix experiment create --help`)"
        )));
    }
    // An experiment as `experiment get --output json` prints it: clone its definition.
    let request = if value.get("phase").is_some() && value.get("id").is_some() {
        let e: Experiment = typed(name, value.clone(), &positions)?;
        NewExperiment {
            name: e.name,
            description: e.description,
            spec: e.spec,
        }
    } else {
        typed(name, value.clone(), &positions)?
    };
    Ok((request, positions))
}

fn at(name: &str, positions: &Positions, path: &str) -> String {
    positions
        .get(path)
        .map(|(l, c)| format!(" ({name}:{l}:{c})"))
        .unwrap_or_default()
}

fn typed<T: serde::de::DeserializeOwned>(
    name: &str,
    value: Value,
    positions: &Positions,
) -> Result<T, CliError> {
    phoenix_api::strict::from_value::<T>(value).map_err(|e| match e {
        // Request types deny unknown fields: a typo such as `duraton_secs` is refused.
        BodyError::UnknownField { path } => CliError::Input(format!(
            "{name}: a field the API does not know (misspelled?):\n  {path}: unknown field{}",
            at(name, positions, &path)
        )),
        BodyError::Shape { path, message } if !path.is_empty() => {
            // A missing field is reported at its parent: point at the parent.
            let position = at(name, positions, &path);
            CliError::Input(format!("{name}: {path}: {message}{position}"))
        }
        BodyError::Shape { message, .. } | BodyError::Syntax(message) => {
            CliError::Input(format!("{name}: {message}"))
        }
    })
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A YAML node as JSON under the YAML 1.2 core schema: plain `null`/`~`/empty, booleans,
/// integers and floats are typed; everything quoted is a string.
fn to_json(node: &Node, path: String, positions: &mut Positions) -> Value {
    match &node.value {
        NodeValue::Scalar { text, quoted } => {
            if *quoted {
                Value::String(text.clone())
            } else {
                plain_scalar(text)
            }
        }
        NodeValue::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(n, item)| {
                    let p = format!("{path}[{n}]");
                    positions.insert(p.clone(), (item.line, item.column));
                    to_json(item, p, positions)
                })
                .collect(),
        ),
        NodeValue::Mapping(entries) => {
            let mut map = serde_json::Map::new();
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default().to_owned();
                // A field is located at its key (the value of a nested mapping starts
                // on the next line).
                let p = join(&path, &key);
                positions.insert(p.clone(), (k.line, k.column));
                let value = to_json(v, p, positions);
                map.insert(key, value);
            }
            Value::Object(map)
        }
    }
}

fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.trim_start_matches('+').parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.trim_start_matches('+').parse::<u64>() {
            return Value::from(n);
        }
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(n) = i64::from_str_radix(hex, 16)
    {
        return Value::from(n);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(n) = i64::from_str_radix(oct, 8)
    {
        return Value::from(n);
    }
    let looks_float = digits
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit());
    if looks_float
        && let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
name: topk on web
description: K=10 against today's pipeline
spec:
  baseline:
    template: baseline
  candidate:
    template: topk
    params:
      k: 10
      protect_critical: true
  targets:
    labels:
      role: web
  duration_secs: 600
  critical_processes: [postgres, 'nginx*']
  criteria:
    - kpi: cardinality_reduction_pct
      comparison: at_least
      threshold: 60
      critical: true
";

    #[test]
    fn yaml_becomes_the_api_request() {
        let (request, positions) = from_file("exp.yaml", YAML).unwrap();
        assert_eq!(request.name, "topk on web");
        assert_eq!(request.spec.candidate.params["k"], serde_json::json!(10));
        assert_eq!(
            request.spec.candidate.params["protect_critical"],
            serde_json::json!(true)
        );
        assert_eq!(request.spec.targets.labels["role"], "web");
        assert_eq!(request.spec.duration_secs, 600);
        assert_eq!(request.spec.critical_processes, ["postgres", "nginx*"]);
        assert_eq!(request.spec.criteria.len(), 1);
        assert!(request.spec.criteria[0].critical);
        assert_eq!(positions["spec.duration_secs"], (14, 3));
        assert_eq!(positions["spec.criteria[0].threshold"], (19, 7));
    }

    #[test]
    fn json_is_detected_by_content_or_extension() {
        let request = NewExperiment {
            name: "n".to_owned(),
            description: String::new(),
            spec: ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 60),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(from_file("spec", &text).unwrap().0, request);
        assert_eq!(from_file("spec.json", &text).unwrap().0, request);
        let e = from_file("spec.json", "{\"name\": ").unwrap_err();
        assert!(e.report().contains("spec.json:1:"), "{}", e.report());
    }

    #[test]
    fn wrong_types_name_the_field_and_its_line() {
        let text = YAML.replace("duration_secs: 600", "duration_secs: ten minutes");
        let e = from_file("exp.yaml", &text).unwrap_err().report();
        assert!(e.contains("spec.duration_secs"), "{e}");
        assert!(e.contains("exp.yaml:14:3"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_lines() {
        let text = YAML.replace("duration_secs: 600", "duration_secs: 600\n  duraton: 5");
        let e = from_file("exp.yaml", &text).unwrap_err().report();
        assert!(
            e.contains("spec.duraton: unknown field (exp.yaml:15:3)"),
            "{e}"
        );
    }

    #[test]
    fn missing_fields_and_bad_documents() {
        let e = from_file("exp.yaml", "name: x\n").unwrap_err().report();
        assert!(e.contains("missing field `spec`"), "{e}");
        let e = from_file("exp.yaml", "- a\n- b\n").unwrap_err().report();
        assert!(e.contains("expected a mapping"), "{e}");
        let e = from_file("exp.yaml", "a: [1\n").unwrap_err().report();
        assert!(e.contains("not valid YAML"), "{e}");
        let e = from_file("exp.yaml", "a: 1\na: 2\n").unwrap_err().report();
        assert!(e.contains("duplicate key"), "{e}");
    }

    #[test]
    fn core_schema_scalars() {
        assert_eq!(plain_scalar("10"), serde_json::json!(10));
        assert_eq!(plain_scalar("-3"), serde_json::json!(-3));
        assert_eq!(plain_scalar("2.5"), serde_json::json!(2.5));
        assert_eq!(plain_scalar("1e3"), serde_json::json!(1000.0));
        assert_eq!(plain_scalar("0x1f"), serde_json::json!(31));
        assert_eq!(plain_scalar("~"), Value::Null);
        assert_eq!(plain_scalar("TRUE"), serde_json::json!(true));
        assert_eq!(plain_scalar("10s"), serde_json::json!("10s"));
        assert_eq!(plain_scalar("1.2.3"), serde_json::json!("1.2.3"));
        assert_eq!(plain_scalar("yes"), serde_json::json!("yes"));
    }

    #[test]
    fn flags_fill_the_spec() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from([
            "phoenix",
            "experiment",
            "create",
            "--name",
            "n",
            "--candidate",
            "topk",
            "--param",
            "k=5",
            "--label",
            "role=web",
            "--host",
            "web-1",
            "--duration",
            "10m",
            "--criterion",
            "cardinality_reduction_pct>=60:critical",
            "--auto-rollback",
            "--auto-promote-min-hosts",
            "3",
        ])
        .unwrap();
        let crate::cli::Command::Experiment(crate::cli::ExperimentCommand::Create(args)) =
            cli.command
        else {
            panic!("create");
        };
        let request = from_flags(&args);
        assert_eq!(request.spec.baseline.template, "baseline");
        assert_eq!(request.spec.candidate.params["k"], serde_json::json!(5));
        assert_eq!(request.spec.duration_secs, 600);
        assert_eq!(request.spec.targets.hosts, ["web-1"]);
        assert_eq!(request.spec.criteria.len(), 1);
        assert!(request.spec.auto_rollback);
        assert!(!request.spec.auto_promote);
        assert_eq!(request.spec.auto_promote_min_hosts, 3);
    }
}
