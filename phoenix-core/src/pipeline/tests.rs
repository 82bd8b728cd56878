use std::collections::BTreeMap;

use proptest::prelude::*;

use super::params::{ParamKind, ParamSpec};
use super::preview::preview;
use super::render::Renderer;
use super::templates::TemplateDef;
use super::validate::validate_collector_yaml;
use super::yaml::{self, Node, NodeValue, YamlLimits};
use super::*;

fn ctx(variant: Option<Variant>) -> RenderContext {
    RenderContext {
        variant,
        critical_processes: vec!["nginx".into(), "post*".into()],
        critical_metrics: vec!["process.memory.usage".into()],
    }
}

/// The collector's own unescaping of `$$`.
fn confmap_unescape(s: &str) -> String {
    s.replace("$$", "$")
}

/// Every key path of a document, with scalar values replaced by a placeholder: equal
/// shapes mean no value injected structure.
fn shape(node: &Node, path: &str, out: &mut Vec<String>) {
    match &node.value {
        NodeValue::Scalar { .. } => out.push(path.to_owned()),
        NodeValue::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                shape(item, &format!("{path}[{i}]"), out);
            }
        }
        NodeValue::Mapping(entries) => {
            for (k, v) in entries {
                shape(
                    v,
                    &format!("{path}.{}", k.as_str().unwrap_or_default()),
                    out,
                );
            }
        }
    }
}

fn shape_of(yaml_text: &str) -> Vec<String> {
    let node = yaml::parse(yaml_text, &YamlLimits::default()).unwrap();
    let mut out = Vec::new();
    shape(&node, "", &mut out);
    out
}

#[test]
fn every_template_renders_valid_yaml_with_defaults() {
    let registry = TemplateRegistry::builtin();
    assert_eq!(
        registry.names(),
        ["baseline", "topk", "adaptive", "hybrid", "aggregate"]
    );
    for name in registry.names() {
        for context in [
            RenderContext::default(),
            ctx(None),
            ctx(Some(Variant::Candidate)),
        ] {
            let rendered = registry
                .render(&PipelineRef::new(name.as_str()), &context)
                .unwrap();
            let summary = validate_collector_yaml(&rendered.collector_yaml).unwrap();
            assert_eq!(summary.pipelines.len(), 1);
            assert!(rendered.spec.validate("spec").is_empty());
            assert_eq!(rendered.config_hash.len(), 64);
            // Defaults are applied and reported.
            let info = registry.info(name).unwrap();
            assert_eq!(rendered.params.len(), info.params.len());
            // Critical processes from the context are injected as keep_critical.
            assert_eq!(
                rendered.spec.critical().processes.len(),
                context.critical_processes.len()
            );
        }
    }
}

#[test]
fn config_hash_follows_spec_and_yaml() {
    let registry = TemplateRegistry::builtin();
    let a = registry
        .render(&PipelineRef::new("topk"), &ctx(None))
        .unwrap();
    let b = registry
        .render(&PipelineRef::new("topk"), &ctx(None))
        .unwrap();
    let c = registry
        .render(
            &PipelineRef::new("topk").with_param("k", ParamValue::Int(11)),
            &ctx(None),
        )
        .unwrap();
    assert_eq!(a.config_hash, b.config_hash);
    assert_ne!(a.config_hash, c.config_hash);
}

#[test]
fn bad_references_get_field_errors() {
    let registry = TemplateRegistry::builtin();
    let err = |r: PipelineRef| match registry.render(&r, &RenderContext::default()) {
        Err(PipelineError::Invalid(errors)) => {
            errors.into_iter().map(|e| e.path).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(err(PipelineRef::new("nope")), ["pipeline.template"]);
    assert_eq!(
        err(PipelineRef::new("topk").with_param("k", ParamValue::Int(0))),
        ["pipeline.params.k"]
    );
    assert_eq!(
        err(PipelineRef::new("topk").with_param("kk", ParamValue::Int(1))),
        ["pipeline.params"]
    );
    assert_eq!(
        err(PipelineRef::new("baseline").with_param("process_metrics", ParamValue::Bool(false))),
        ["pipeline.params.process_metrics"]
    );
    assert_eq!(
        err(PipelineRef::new("aggregate").with_param("group_by", ParamValue::List(vec![]))),
        ["pipeline.params.group_by"]
    );
    assert!(
        registry
            .validate_ref(&PipelineRef::new("hybrid"), "x")
            .is_empty()
    );
    // Critical patterns with control characters are refused, not rendered.
    let bad_ctx = RenderContext {
        critical_processes: vec!["a\nb".into()],
        ..RenderContext::default()
    };
    assert!(matches!(
        registry.render(&PipelineRef::new("baseline"), &bad_ctx),
        Err(PipelineError::Invalid(_))
    ));
}

#[test]
fn experiment_render_shares_the_receiver_between_two_pipelines() {
    let registry = TemplateRegistry::builtin();
    let critical = ["nginx".to_owned()];
    // The candidate may scrape a target the baseline does not: both still share hostmetrics.
    let rendered = registry
        .render_experiment(
            &PipelineRef::new("baseline"),
            &PipelineRef::new("hybrid").with_param(
                "prometheus_targets",
                ParamValue::List(vec!["localhost:9100".into()]),
            ),
            &critical,
            &[],
        )
        .unwrap();
    let summary = validate_collector_yaml(&rendered.collector_yaml).unwrap();
    assert_eq!(summary.pipelines[0].receivers, ["hostmetrics"]);
    assert_eq!(
        summary.pipelines[1].receivers,
        ["hostmetrics", "prometheus/node"]
    );
    let rendered = registry
        .render_experiment(
            &PipelineRef::new("baseline"),
            &PipelineRef::new("hybrid"),
            &critical,
            &[],
        )
        .unwrap();
    let summary = validate_collector_yaml(&rendered.collector_yaml).unwrap();
    let names: Vec<&str> = summary.pipelines.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["metrics/baseline", "metrics/candidate"]);
    assert_eq!(
        summary.pipelines[0].receivers,
        summary.pipelines[1].receivers
    );
    assert_eq!(summary.pipelines[0].exporters, ["prometheus/baseline"]);
    assert_eq!(summary.pipelines[1].exporters, ["prometheus/candidate"]);
    assert!(rendered.collector_yaml.contains("'0.0.0.0:9464'"));
    assert!(rendered.collector_yaml.contains("'0.0.0.0:9465'"));
    assert_eq!(rendered.baseline.template, "baseline");
    assert_eq!(rendered.candidate.template, "hybrid");
    assert!(rendered.candidate.spec.has_stage("aggregate_other"));
    // Different scrape intervals would mean different inputs: refused.
    let err = registry
        .render_experiment(
            &PipelineRef::new("baseline"),
            &PipelineRef::new("topk")
                .with_param("collection_interval", ParamValue::String("30s".into())),
            &critical,
            &[],
        )
        .unwrap_err();
    assert!(matches!(err, PipelineError::Invalid(ref e) if e[0].path == "candidate.params"));
}

#[test]
fn administrators_register_templates_once_and_unsafe_ones_are_refused() {
    let mut registry = TemplateRegistry::builtin();
    let def = |name: &str| TemplateDef {
        name: name.to_owned(),
        description: "custom".to_owned(),
        collector_notes: String::new(),
        params: vec![],
        build: |_, _| PipelineSpec {
            receivers: vec![spec::ReceiverSpec::HostmetricsProcess(
                spec::HostmetricsProcessReceiver {
                    collection_interval_secs: 30,
                    cpu_utilization: false,
                },
            )],
            stages: vec![],
            exporters: vec![spec::ExporterSpec::OtlpHttp {
                endpoint: "https://otlp.example.com".to_owned(),
            }],
        },
        document: render::COLLECTOR_DOCUMENT.to_owned(),
    };
    assert!(matches!(
        registry.register(def("topk"), None),
        Err(PipelineError::TemplateName(_))
    ));
    assert!(matches!(
        registry.register(def("raw"), Some("x: {{{template}}}")),
        Err(PipelineError::Template(
            render::DocumentError::Unescaped { .. }
        ))
    ));
    registry.register(def("slow-otlp"), None).unwrap();
    let rendered = registry
        .render(&PipelineRef::new("slow-otlp"), &RenderContext::default())
        .unwrap();
    assert!(
        rendered
            .collector_yaml
            .contains("'https://otlp.example.com'")
    );
    assert!(rendered.collector_yaml.contains("processors: {}"));
    // A custom document that renders an invalid config is caught by validation.
    registry
        .register(def("broken"), Some("receivers: {{template}}\n"))
        .unwrap();
    assert!(matches!(
        registry.render(&PipelineRef::new("broken"), &RenderContext::default()),
        Err(PipelineError::InvalidConfig(_))
    ));
}

const ADVERSARIAL: &[&str] = &[
    "plain",
    "a: b",
    "# comment",
    "{{template}}",
    "&anchor",
    "*alias",
    "!!python/object",
    "- item",
    "[1, 2]",
    "{a: 1}",
    "it's \"quoted\"",
    "back\\slash",
    "${env:HOME}",
    "$${file:/etc/passwd}",
    "| block",
    "> folded",
    "%YAML 1.2",
    "---",
    "...",
    "? key",
    "@at `tick`",
    "trailing space ",
    " leading",
    "café ☕ 日本",
    "\u{feff}bom",
    "rtl\u{202e}txet",
    "line\nbreak",
    "tab\there",
    "nul\0byte",
    "cr\rlf",
    "nel\u{85}x",
    "ls\u{2028}x",
];

#[test]
fn the_escape_round_trips_every_value_byte_identical_as_one_scalar() {
    let mut r = Renderer::default();
    r.register("one", "key: {{value}}\nother: {{toYaml list}}\n")
        .unwrap();
    let huge = "x: y\n".repeat(200_000);
    let mut values: Vec<String> = ADVERSARIAL.iter().map(|s| (*s).to_owned()).collect();
    values.push(huge);
    for value in values {
        let data = serde_json::json!({"value": value, "list": [value]});
        let text = r.render_value("one", &data).unwrap();
        let limits = YamlLimits {
            max_bytes: 4 << 20,
            ..YamlLimits::default()
        };
        let doc = yaml::parse(&text, &limits).unwrap();
        let entries = doc.as_mapping().unwrap();
        assert_eq!(entries.len(), 2, "{value:?} changed the structure");
        let got = confmap_unescape(doc.get("key").unwrap().as_str().unwrap());
        assert_eq!(got, value);
        let item = &doc.get("other").unwrap().as_sequence().unwrap()[0];
        assert_eq!(confmap_unescape(item.as_str().unwrap()), value);
    }
}

/// Extracts the OTTL string literal after `prefix` in `statement` and unescapes it.
fn ottl_literal_after(statement: &str, prefix: &str) -> String {
    let start = statement.find(prefix).unwrap() + prefix.len();
    let mut out = String::new();
    let mut chars = statement[start..].chars();
    assert_eq!(chars.next(), Some('"'));
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next().unwrap() {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                c => out.push(c),
            },
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

#[test]
fn adversarial_parameters_round_trip_or_are_rejected_never_inject_structure() {
    let registry = TemplateRegistry::builtin();
    let benign = registry
        .render(&PipelineRef::new("hybrid"), &ctx(None))
        .unwrap();
    let benign_shape = shape_of(&benign.collector_yaml);
    let mut values: Vec<String> = ADVERSARIAL.iter().map(|s| (*s).to_owned()).collect();
    values.push("z".repeat(1 << 20));
    for value in values {
        let reference =
            PipelineRef::new("hybrid").with_param("other_name", ParamValue::String(value.clone()));
        match registry.render(&reference, &ctx(None)) {
            Err(PipelineError::Invalid(errors)) => {
                assert_eq!(errors[0].path, "pipeline.params.other_name", "{value:?}");
                assert!(
                    value.chars().any(char::is_control) || value.len() > 64,
                    "{value:?}"
                );
            }
            Ok(rendered) => {
                assert_eq!(
                    shape_of(&rendered.collector_yaml),
                    benign_shape,
                    "{value:?}"
                );
                let doc = yaml::parse(&rendered.collector_yaml, &YamlLimits::default()).unwrap();
                let statements = doc
                    .get("processors")
                    .and_then(|p| p.get("transform/3_aggregate_other"))
                    .and_then(|t| t.get("metric_statements"))
                    .and_then(|m| m.as_sequence())
                    .and_then(|g| g[0].get("statements"))
                    .and_then(Node::as_sequence)
                    .unwrap();
                let set = confmap_unescape(statements[2].as_str().unwrap());
                let prefix = "set(attributes[\"process.executable.name\"], ";
                assert_eq!(ottl_literal_after(&set, prefix), value);
            }
            Err(other) => panic!("{value:?}: {other:?}"),
        }
        // Values that only become data in a URL or a target list are checked by their syntax.
        let endpoint = PipelineRef::new("baseline")
            .with_param("exporter", ParamValue::String("otlphttp".into()))
            .with_param("otlp_endpoint", ParamValue::String(value.clone()));
        assert!(matches!(
            registry.render(&endpoint, &RenderContext::default()),
            Err(PipelineError::Invalid(_))
        ));
    }
}

#[test]
fn adversarial_critical_patterns_never_inject_structure() {
    let registry = TemplateRegistry::builtin();
    let benign = registry
        .render(&PipelineRef::new("topk"), &ctx(None))
        .unwrap();
    let benign_shape = shape_of(&benign.collector_yaml);
    for value in ADVERSARIAL {
        let context = RenderContext {
            critical_processes: vec![(*value).to_owned(), "post*".into()],
            ..ctx(None)
        };
        match registry.render(&PipelineRef::new("topk"), &context) {
            Err(PipelineError::Invalid(_)) => assert!(value.chars().any(char::is_control)),
            Ok(rendered) => {
                assert_eq!(
                    shape_of(&rendered.collector_yaml),
                    benign_shape,
                    "{value:?}"
                );
                let doc = yaml::parse(&rendered.collector_yaml, &YamlLimits::default()).unwrap();
                let statement = doc
                    .get("processors")
                    .and_then(|p| p.get("transform/1_keep_critical"))
                    .and_then(|t| t.get("metric_statements"))
                    .and_then(Node::as_sequence)
                    .and_then(|g| g[0].get("statements"))
                    .and_then(Node::as_sequence)
                    .unwrap()[0]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let regex = ottl_literal_after(
                    &confmap_unescape(&statement),
                    "process.executable.name\"], ",
                );
                let expected = format!(
                    "{}|{}",
                    Pattern::new(*value).to_regex(),
                    Pattern::new("post*").to_regex()
                );
                assert_eq!(regex, expected);
            }
            Err(other) => panic!("{value:?}: {other:?}"),
        }
    }
}

/// The corpus figures recorded in docs/templates.md.
#[test]
fn on_the_corpus_topk_and_hybrid_cut_process_series_by_ninety_percent_with_full_coverage() {
    let registry = TemplateRegistry::builtin();
    for (host, json, critical) in corpus::HOSTS {
        let sample = corpus::host_sample(json);
        let context = RenderContext {
            variant: Some(Variant::Candidate),
            critical_processes: critical.iter().map(|c| (*c).to_owned()).collect(),
            critical_metrics: vec![],
        };
        for template in ["topk", "hybrid", "adaptive", "aggregate", "baseline"] {
            let reference = PipelineRef::new(template).with_param("k", ParamValue::Int(10));
            let reference = if matches!(template, "topk" | "hybrid") {
                reference
            } else {
                PipelineRef::new(template)
            };
            let p = preview(&registry, &reference, &context, &sample).unwrap();
            println!(
                "{host:13} {template:9} series {:5} -> {:5} process-series reduction {:5.1}% bytes {:7} -> {:7} ({:5.1}%) fidelity cpu {:5.1}% mem {:5.1}% coverage {:.0}%",
                p.input.series,
                p.output.series,
                p.process_series_reduction_pct,
                p.input.bytes,
                p.output.bytes,
                p.bytes_reduction_pct,
                p.fidelity.cpu_pct.unwrap_or(f64::NAN),
                p.fidelity.memory_pct.unwrap_or(f64::NAN),
                p.critical_coverage_pct
            );
            assert_eq!(p.critical_coverage_pct, 100.0, "{host} {template}");
            if matches!(template, "topk" | "hybrid") {
                assert!(p.process_series_reduction_pct >= 90.0, "{host} {template}");
            }
            if template == "hybrid" {
                assert_eq!(p.fidelity.cpu_pct, Some(100.0));
                assert_eq!(p.fidelity.memory_pct, Some(100.0));
            }
            if template == "baseline" {
                assert_eq!(p.output.series, p.input.series);
            }
        }
    }
}

fn arb_value(spec: &ParamSpec) -> BoxedStrategy<ParamValue> {
    match &spec.kind {
        ParamKind::Bool => any::<bool>().prop_map(ParamValue::Bool).boxed(),
        ParamKind::Int { min, max } => (*min..=*max).prop_map(ParamValue::Int).boxed(),
        ParamKind::Float { min, max } => (*min..=*max).prop_map(ParamValue::Float).boxed(),
        ParamKind::String { max_len } => {
            // Any printable text, including YAML and template syntax.
            prop::collection::vec(
                any::<char>().prop_filter("printable", |c| !c.is_control()),
                1..16,
            )
            .prop_map(|cs| cs.into_iter().collect::<String>())
            .prop_filter("length", {
                let max = *max_len;
                move |s: &String| s.len() <= max
            })
            .prop_map(ParamValue::String)
            .boxed()
        }
        ParamKind::Enum { values } => prop::sample::select(values.clone())
            .prop_map(ParamValue::String)
            .boxed(),
        ParamKind::Duration { min_secs, max_secs } => (*min_secs..=*max_secs)
            .prop_map(|s| ParamValue::String(syntax::format_duration_secs(s)))
            .boxed(),
        ParamKind::LabelKeys {
            min_items,
            max_items,
        } => prop::collection::vec("[a-z][a-z0-9_.-]{0,20}", (*min_items).max(1)..=*max_items)
            .prop_map(ParamValue::List)
            .boxed(),
        ParamKind::Targets { max_items } => {
            prop::collection::vec(("[a-z][a-z0-9-]{0,12}", 1u16..), 0..=(*max_items).min(4))
                .prop_map(|t| {
                    ParamValue::List(t.into_iter().map(|(h, p)| format!("{h}:{p}")).collect())
                })
                .boxed()
        }
        ParamKind::Url => ("[a-z][a-z0-9-]{0,12}", 1u16.., prop::bool::ANY)
            .prop_map(|(h, p, tls)| {
                ParamValue::String(format!(
                    "{}://{h}:{p}/v1",
                    if tls { "https" } else { "http" }
                ))
            })
            .boxed(),
    }
}

fn arb_reference() -> impl Strategy<Value = PipelineRef> {
    let registry = TemplateRegistry::builtin();
    let infos = registry.infos();
    prop::sample::select(infos).prop_flat_map(|info| {
        let strategies: Vec<BoxedStrategy<(String, Option<ParamValue>)>> = info
            .params
            .iter()
            .map(|p| {
                let name = p.name.clone();
                prop::option::of(arb_value(p))
                    .prop_map(move |v| (name.clone(), v))
                    .boxed()
            })
            .collect();
        let template = info.name.clone();
        strategies.prop_map(move |pairs| {
            let params: BTreeMap<String, ParamValue> = pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            PipelineRef {
                template: template.clone(),
                params,
            }
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_valid_parameters_render_to_valid_yaml(
        reference in arb_reference(),
        critical in prop::collection::vec("[a-z*?.$#:{}&' -]{1,12}", 0..4),
        candidate in any::<bool>(),
    ) {
        let registry = TemplateRegistry::builtin();
        let context = RenderContext {
            variant: candidate.then_some(Variant::Candidate),
            critical_processes: critical,
            critical_metrics: vec!["process.cpu.*".into()],
        };
        match registry.render(&reference, &context) {
            Ok(rendered) => {
                prop_assert!(validate_collector_yaml(&rendered.collector_yaml).is_ok());
            }
            // The only refusals a schema-valid reference may get: nothing to collect, or an
            // exporter port the Collector itself listens on.
            Err(PipelineError::Invalid(errors)) => {
                prop_assert_eq!(errors.len(), 1);
                let reserved = matches!(
                    reference.params.get("prometheus_port"),
                    Some(ParamValue::Int(p)) if RESERVED_PORTS.iter().any(|(r, _)| i64::from(*r) == *p)
                );
                prop_assert!(
                    errors[0].path == "pipeline.params.process_metrics"
                        || (reserved && errors[0].path == "pipeline.params.prometheus_port"),
                    "{:?}", errors
                );
            }
            Err(other) => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn any_string_round_trips_through_the_escape(value in any::<String>()) {
        let mut r = Renderer::default();
        r.register("one", "key: {{value}}\n").unwrap();
        let text = r.render_value("one", &serde_json::json!({"value": value})).unwrap();
        let doc = yaml::parse(&text, &YamlLimits::default()).unwrap();
        prop_assert_eq!(doc.as_mapping().unwrap().len(), 1);
        prop_assert_eq!(confmap_unescape(doc.get("key").unwrap().as_str().unwrap()), value);
    }
}

/// A recorded exposition of process series (what the agent serves at `/metrics/baseline`)
/// previews like the sample it was encoded from: the process resources, metric names and
/// kinds come back, so top-K keeps the same processes and protects the same critical ones.
#[test]
fn a_process_exposition_previews_like_the_sample_it_came_from() {
    let registry = TemplateRegistry::builtin();
    for (host, json, critical) in corpus::HOSTS {
        let sample = corpus::host_sample(json);
        let mut text = String::new();
        super::encode::write_prometheus_text(&sample, &mut text).unwrap();
        let parsed =
            super::exposition::sample_from_exposition(&text, 0, [("service.name", host)]).unwrap();
        assert_eq!(
            parsed.len(),
            sample.len(),
            "{host}: every line is one series"
        );
        let context = RenderContext {
            variant: Some(Variant::Candidate),
            critical_processes: critical.iter().map(|c| (*c).to_owned()).collect(),
            critical_metrics: vec![],
        };
        let topk = PipelineRef::new("topk").with_param("k", ParamValue::Int(10));
        let from_sample = preview(&registry, &topk, &context, &sample).unwrap();
        let from_text = preview(&registry, &topk, &context, &parsed).unwrap();
        assert_eq!(from_text.output.series, from_sample.output.series, "{host}");
        assert!(from_text.process_series_reduction_pct >= 90.0, "{host}");
        assert_eq!(from_text.critical_coverage_pct, 100.0, "{host}");
    }
    // Lines without process labels stay as exposed, on the scrape target's resource.
    let parsed = super::exposition::sample_from_exposition(
        "# TYPE node_load1 gauge\nnode_load1 0.5\nprocess_cpu_time_total{process_pid=\"7\",state=\"user\"} 1\n",
        0,
        [("service.name", "node")],
    )
    .unwrap();
    let names: Vec<&str> = parsed
        .series()
        .iter()
        .map(|s| parsed.resolve(s.metric))
        .collect();
    assert_eq!(names, ["node_load1", "process.cpu.time"]);
    assert!(!parsed.is_process_resource(parsed.series()[0].resource));
    assert!(parsed.is_process_resource(parsed.series()[1].resource));
    assert_eq!(
        parsed.resource_attr(parsed.series()[1].resource, "service.name"),
        Some("node")
    );
}

#[test]
fn the_collector_form_of_topk_is_a_threshold_and_the_config_says_so() {
    let registry = TemplateRegistry::builtin();
    let render = |r: PipelineRef| registry.render(&r, &ctx(None)).unwrap();
    let k10 = render(PipelineRef::new("topk"));
    let k500 = render(PipelineRef::new("topk").with_param("k", ParamValue::Int(500)));
    // `k` cannot reach the Collector; the config states what it does instead.
    assert_ne!(k10.collector_yaml, k500.collector_yaml);
    assert!(k500.collector_yaml.contains(
        "keeps the 500 processes with the highest CPU; stock Collector components cannot rank, so this config keeps every process whose CPU utilisation (summed over states) is >= 0.01"
    ));
    let strip = |y: &str| -> String {
        y.lines()
            .filter(|l| !l.starts_with("# Note:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&k10.collector_yaml), strip(&k500.collector_yaml));
    // The parameter that drives the Collector form does change its processors.
    let hot =
        render(PipelineRef::new("topk").with_param("collector_min_cpu", ParamValue::Float(0.2)));
    assert!(
        hot.collector_yaml
            .contains("metric.name == \"phoenix.rank.cpu\" and value_double >= 0.2")
    );
    // CPU is summed over states first (as the native runtime does), and the helper dropped.
    assert!(hot.collector_yaml.contains("new_name: 'phoenix.rank.cpu'"));
    assert!(
        hot.collector_yaml
            .contains("'metric.name == \"phoenix.rank.cpu\"'")
    );
    // Natively, what the Collector does is that threshold without state.
    let semantics = hot.spec.collector_semantics();
    assert!(matches!(
        semantics.stages.iter().find(|s| s.kind() == "threshold"),
        Some(Stage::Threshold(t)) if t.min_cpu_utilization == 0.2 && t.min_memory_bytes == 0 && t.hysteresis_pct == 0.0
    ));
    assert!(!semantics.has_stage("topk"));
    let by_memory =
        render(PipelineRef::new("topk").with_param("rank_by", ParamValue::String("memory".into())));
    assert!(matches!(
        by_memory.spec.collector_semantics().stages.iter().find(|s| s.kind() == "threshold"),
        Some(Stage::Threshold(t)) if t.min_cpu_utilization == 0.0 && t.min_memory_bytes == 256 * 1024 * 1024
    ));
    assert!(!by_memory.collector_yaml.contains("phoenix.rank.cpu"));
    // A zero threshold keeps every process, as a `threshold` stage's does natively.
    let all =
        render(PipelineRef::new("topk").with_param("collector_min_cpu", ParamValue::Float(0.0)));
    assert!(!all.collector_yaml.contains("phoenix.mark.keep_"));
    // adaptive: hysteresis and tuning are native only, and the config says so.
    let adaptive =
        render(PipelineRef::new("adaptive").with_param("target_series", ParamValue::Int(300)));
    assert!(adaptive.collector_yaml.contains(
        "without the hysteresis of the native runtime (20 %) and without tuning toward 300 series"
    ));
    assert!(matches!(
        adaptive.spec.collector_semantics().stages.iter().find(|s| s.kind() == "threshold"),
        Some(Stage::Threshold(t)) if t.hysteresis_pct == 0.0 && t.auto_tune.is_none()
    ));
}

#[test]
fn roll_ups_align_timestamps_and_vanished_series_expire() {
    let registry = TemplateRegistry::builtin();
    for template in ["hybrid", "aggregate"] {
        let rendered = registry
            .render(
                &PipelineRef::new(template)
                    .with_param("collection_interval", ParamValue::String("15s".into())),
                &ctx(None),
            )
            .unwrap();
        let summary = validate_collector_yaml(&rendered.collector_yaml).unwrap();
        let processors = &summary.pipelines[0].processors;
        let align = processors
            .iter()
            .position(|p| p.ends_with("_align"))
            .expect(template);
        let group = processors
            .iter()
            .position(|p| p.starts_with("groupbyattrs/"))
            .expect(template);
        let sum = processors
            .iter()
            .position(|p| p.starts_with("metricstransform/") && !p.ends_with("_rank"))
            .expect(template);
        let stamp = processors
            .iter()
            .position(|p| p.ends_with("_stamp"))
            .expect(template);
        assert!(
            align < group && group < sum && sum < stamp,
            "{template}: {processors:?}"
        );
        assert!(
            rendered
                .collector_yaml
                .contains("set(time_unix_nano, 0) where"),
            "{template}"
        );
        assert!(
            rendered
                .collector_yaml
                .contains("set(time, Now()) where time_unix_nano == 0"),
            "{template}"
        );
        assert!(
            rendered.collector_yaml.contains("metric_expiration: '45s'"),
            "{template}"
        );
    }
}

#[test]
fn exporter_ports_the_collector_cannot_bind_are_field_errors() {
    let registry = TemplateRegistry::builtin();
    for port in [13133, 8888] {
        let err = registry
            .render(
                &PipelineRef::new("baseline").with_param("prometheus_port", ParamValue::Int(port)),
                &ctx(None),
            )
            .unwrap_err();
        assert!(
            matches!(&err, PipelineError::Invalid(e) if e.len() == 1 && e[0].path == "pipeline.params.prometheus_port"),
            "{err:?}"
        );
    }
    // Both variants on one port: the explicit baseline port is the candidate's default.
    for (baseline, candidate) in [
        (
            PipelineRef::new("baseline").with_param("prometheus_port", ParamValue::Int(9465)),
            PipelineRef::new("topk"),
        ),
        (
            PipelineRef::new("baseline").with_param("prometheus_port", ParamValue::Int(9999)),
            PipelineRef::new("hybrid").with_param("prometheus_port", ParamValue::Int(9999)),
        ),
    ] {
        let err = registry
            .render_experiment(&baseline, &candidate, &[], &[])
            .unwrap_err();
        assert!(
            matches!(&err, PipelineError::Invalid(e) if e.len() == 1 && e[0].path == "candidate.params.prometheus_port"),
            "{err:?}"
        );
    }
    // Distinct ports, or an OTLP candidate, are fine.
    registry
        .render_experiment(
            &PipelineRef::new("baseline").with_param("prometheus_port", ParamValue::Int(9465)),
            &PipelineRef::new("topk").with_param("prometheus_port", ParamValue::Int(9464)),
            &[],
            &[],
        )
        .unwrap();
}
