//! Phoenix's Collector config validator against the real one, both ways.
//!
//! Every built-in template x a parameter corpus (defaults; both bounds of every numeric and
//! duration parameter; every enum value; both booleans; lists; with and without critical
//! processes and metrics; alone and as a variant) and every combined experiment config
//! (baseline + candidate rendered together, as the facade's start does) must pass the pinned
//! Collector's `validate --config`, as they pass Phoenix's (rendering validates). A corpus
//! of deliberately broken configs must be refused by both: by `validate` for what it
//! checks, and for listeners on one port (which `validate` does not see) by the Collector
//! failing to start.
//!
//! `cargo test -p phoenix-agent --test collector_validate -- --nocapture` prints the corpus
//! size.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use phoenix_core::measure::Variant;
use phoenix_core::pipeline::params::ParamKind;
use phoenix_core::pipeline::validate::validate_collector_yaml;
use phoenix_core::pipeline::{
    ParamValue, PipelineError, PipelineRef, RenderContext, TemplateRegistry,
};
use support::collector::collector_binary;
use support::harness::free_port;

/// Values worth rendering for one parameter.
fn corpus_values(kind: &ParamKind) -> Vec<ParamValue> {
    match kind {
        ParamKind::Bool => vec![ParamValue::Bool(true), ParamValue::Bool(false)],
        ParamKind::Int { min, max } => vec![ParamValue::Int(*min), ParamValue::Int(*max)],
        ParamKind::Float { min, max } => vec![
            ParamValue::Float(*min),
            ParamValue::Float((min + max) / 3.0),
            ParamValue::Float(*max),
        ],
        ParamKind::Enum { values } => values
            .iter()
            .map(|v| ParamValue::String(v.clone()))
            .collect(),
        ParamKind::Duration { min_secs, max_secs } => vec![
            ParamValue::String(format!("{min_secs}s")),
            ParamValue::String(format!("{max_secs}s")),
            ParamValue::String("1m30s".to_owned()),
        ],
        ParamKind::String { .. } => vec![
            ParamValue::String("rest".to_owned()),
            ParamValue::String("it's ${env:HOME} {{x}} \"q\" # c: v".to_owned()),
        ],
        ParamKind::LabelKeys { max_items, .. } => vec![
            ParamValue::List(vec!["process.owner".to_owned()]),
            ParamValue::List(
                [
                    "process.executable.name",
                    "process.owner",
                    "process.command",
                    "process.parent_pid",
                    "process.executable.path",
                    "host.name",
                    "service.name",
                    "k8s.pod.name",
                ]
                .iter()
                .take(*max_items)
                .map(|s| (*s).to_owned())
                .collect(),
            ),
        ],
        ParamKind::Targets { .. } => vec![ParamValue::List(vec![
            "localhost:9100".to_owned(),
            "10.0.0.7:9256".to_owned(),
            "[::1]:9100".to_owned(),
        ])],
        ParamKind::Url => vec![ParamValue::String(
            "https://otlp.example.com:4318/base".to_owned(),
        )],
    }
}

fn contexts(variant: Option<Variant>) -> [RenderContext; 2] {
    [
        RenderContext {
            variant,
            ..RenderContext::default()
        },
        RenderContext {
            variant,
            critical_processes: vec!["nginx".to_owned(), "post*".to_owned(), "kube?et".to_owned()],
            critical_metrics: vec!["process.memory.usage".to_owned(), "system.*".to_owned()],
        },
    ]
}

/// (name, rendered YAML) of every config of the corpus.
fn valid_corpus() -> Vec<(String, String)> {
    let registry = TemplateRegistry::builtin();
    let mut out = Vec::new();
    let mut refs = Vec::new();
    for info in registry.infos() {
        refs.push((
            format!("{} defaults", info.name),
            PipelineRef::new(&info.name),
        ));
        for p in &info.params {
            for v in corpus_values(&p.kind) {
                refs.push((
                    format!("{} {}={v:?}", info.name, p.name),
                    PipelineRef::new(&info.name).with_param(&p.name, v),
                ));
            }
        }
        // Prometheus targets only, and OTLP with targets.
        refs.push((
            format!("{} targets only", info.name),
            PipelineRef::new(&info.name)
                .with_param("process_metrics", ParamValue::Bool(false))
                .with_param(
                    "prometheus_targets",
                    ParamValue::List(vec!["localhost:9100".to_owned()]),
                ),
        ));
        refs.push((
            format!("{} otlphttp with targets", info.name),
            PipelineRef::new(&info.name)
                .with_param("exporter", ParamValue::String("otlphttp".to_owned()))
                .with_param(
                    "prometheus_targets",
                    ParamValue::List(vec!["localhost:9100".to_owned()]),
                ),
        ));
    }
    for (name, reference) in &refs {
        for variant in [None, Some(Variant::Candidate)] {
            for (c, context) in contexts(variant).iter().enumerate() {
                match registry.render(reference, context) {
                    Ok(r) => out.push((
                        format!("{name} variant={variant:?} critical={c}"),
                        r.collector_yaml,
                    )),
                    // Refused as bad input (`process_metrics=false` without targets, a
                    // reserved port): nothing to deploy.
                    Err(PipelineError::Invalid(_)) => {}
                    Err(e) => panic!("{name}: {e:?}"),
                }
            }
        }
    }
    // Combined experiments: every pair of templates, with and without critical lists, and
    // every variation of a candidate against a default baseline of each template.
    let names = registry.names().to_vec();
    for b in &names {
        for c in &names {
            for critical in [false, true] {
                let (cp, cm) = if critical {
                    (
                        vec!["sshd".to_owned(), "dock*".to_owned()],
                        vec!["process.cpu.*".to_owned()],
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                let r = registry
                    .render_experiment(&PipelineRef::new(b), &PipelineRef::new(c), &cp, &cm)
                    .expect("default pairs render");
                out.push((
                    format!("experiment {b} vs {c} critical={critical}"),
                    r.collector_yaml,
                ));
            }
        }
    }
    for (name, candidate) in &refs {
        let r = registry.render_experiment(
            &PipelineRef::new("baseline"),
            candidate,
            &["sshd".to_owned()],
            &[],
        );
        if let Ok(r) = r {
            out.push((format!("experiment baseline vs {name}"), r.collector_yaml));
        }
    }
    out
}

/// What the real Collector says about `yaml`: `Ok` or its complaint.
fn real_validate(binary: &Path, yaml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = Command::new(binary)
        .arg("validate")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("the Collector runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs `check` over `items` on a few threads; returns the results in order.
fn parallel<T: Sync, R: Send>(items: &[T], check: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("lock");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(item) = items.get(i) else { break };
                    let r = check(item);
                    results.lock().expect("lock")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("lock")
        .into_iter()
        .map(|r| r.expect("every item checked"))
        .collect()
}

#[test]
fn every_rendered_config_passes_the_real_collector_validate() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let corpus = valid_corpus();
    let results = parallel(&corpus, |(_, yaml)| {
        (
            validate_collector_yaml(yaml).is_ok(),
            real_validate(&binary, yaml),
        )
    });
    let mut failures = Vec::new();
    for ((name, yaml), (phoenix, real)) in corpus.iter().zip(&results) {
        if !phoenix || real.is_err() {
            failures.push(format!(
                "{name}: phoenix accepts={phoenix}, collector={real:?}\n{yaml}"
            ));
        }
    }
    println!(
        "validated {} rendered configs ({} templates) with the real Collector and Phoenix's validator",
        corpus.len(),
        TemplateRegistry::builtin().names().len()
    );
    assert!(
        corpus.len() > 300,
        "the corpus covers every template and parameter"
    );
    assert!(
        failures.is_empty(),
        "{} of {} configs disagree:\n{}",
        failures.len(),
        corpus.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// How the real Collector refuses a broken config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `validate --config` fails.
    Validate,
    /// `validate` passes but the Collector fails to start (listeners).
    Start,
}

fn replace(yaml: &str, from: &str, to: &str) -> String {
    assert!(yaml.contains(from), "`{from}` is in the rendered config");
    yaml.replace(from, to)
}

/// Broken configs derived from real renders: (name, YAML, how the Collector refuses it).
fn broken_corpus() -> Vec<(&'static str, String, Refusal)> {
    let registry = TemplateRegistry::builtin();
    let context = RenderContext {
        variant: None,
        critical_processes: vec!["nginx".to_owned()],
        critical_metrics: vec![],
    };
    let hybrid = registry
        .render(&PipelineRef::new("hybrid"), &context)
        .expect("renders")
        .collector_yaml;
    let experiment = registry
        .render_experiment(
            &PipelineRef::new("baseline"),
            &PipelineRef::new("aggregate"),
            &["nginx".to_owned()],
            &[],
        )
        .expect("renders")
        .collector_yaml;
    let (health, port) = (free_port(), free_port());
    let quiet = |yaml: &str| {
        replace(
            &replace(yaml, "'localhost:13133'", &format!("'127.0.0.1:{health}'")),
            "\nservice:\n",
            "\nservice:\n  telemetry:\n    metrics:\n      level: none\n",
        )
    };
    vec![
        (
            "unknown processor type",
            replace(&hybrid, "batch/4_batch", "topk/4_batch"),
            Refusal::Validate,
        ),
        (
            "unknown exporter type",
            replace(&hybrid, "prometheus", "prometheus_plus"),
            Refusal::Validate,
        ),
        (
            "pipeline references an undefined processor",
            replace(
                &hybrid,
                "'batch/4_batch']",
                "'batch/4_batch', 'transform/missing']",
            ),
            Refusal::Validate,
        ),
        (
            "service references an undefined extension",
            replace(
                &hybrid,
                "extensions: [health_check]",
                "extensions: [health_check, zpages]",
            ),
            Refusal::Validate,
        ),
        (
            "bad duration",
            replace(
                &hybrid,
                "collection_interval: '10s'",
                "collection_interval: '10 seconds'",
            ),
            Refusal::Validate,
        ),
        (
            "pipeline without exporters",
            replace(&hybrid, "exporters: ['prometheus']", "exporters: []"),
            Refusal::Validate,
        ),
        (
            "unbalanced OTTL",
            replace(
                &hybrid,
                "\"^phoenix\\\\.mark\\\\.\")'",
                "\"^phoenix\\\\.mark\\\\.\"'",
            ),
            Refusal::Validate,
        ),
        (
            "memory_limiter without a limit",
            replace(&hybrid, "    limit_mib: 512\n", ""),
            Refusal::Validate,
        ),
        (
            "port out of range",
            replace(&quiet(&hybrid), "'0.0.0.0:9464'", "'0.0.0.0:99999'"),
            Refusal::Start,
        ),
        (
            "unknown setting of a processor",
            replace(
                &hybrid,
                "    send_batch_size: 8192\n",
                "    send_batch_sise: 8192\n",
            ),
            Refusal::Validate,
        ),
        (
            "unknown top-level section",
            format!("{hybrid}\nconnector:\n  x: {{}}\n"),
            Refusal::Validate,
        ),
        (
            "prometheus exporter on the health check's port",
            replace(
                &quiet(&hybrid),
                "'0.0.0.0:9464'",
                &format!("'0.0.0.0:{health}'"),
            ),
            Refusal::Start,
        ),
        (
            "both variants' exporters on one port",
            replace(
                &replace(
                    &quiet(&experiment),
                    "'0.0.0.0:9464'",
                    &format!("'127.0.0.1:{port}'"),
                ),
                "'0.0.0.0:9465'",
                &format!("'0.0.0.0:{port}'"),
            ),
            Refusal::Start,
        ),
    ]
}

/// Starts the Collector on `yaml`: `Ok` once healthy, `Err` with its log when it exits.
fn real_start(binary: &Path, yaml: &str, health: u16) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).expect("write");
    let log = dir.path().join("log");
    let file = std::fs::File::create(&log).expect("log");
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("the Collector runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Err(format!(
                "exited {status}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let healthy = std::net::TcpStream::connect(("127.0.0.1", health)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 12];
            s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
        });
        if healthy || Instant::now() > deadline {
            break Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn broken_configs_are_refused_by_phoenix_and_by_the_real_collector() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let corpus = broken_corpus();
    let results = parallel(&corpus, |(_, yaml, how)| {
        let phoenix = validate_collector_yaml(yaml).map(|_| ());
        let validate = real_validate(&binary, yaml);
        let start = match how {
            Refusal::Validate => None,
            Refusal::Start => {
                let health = yaml
                    .split("endpoint: '127.0.0.1:")
                    .nth(1)
                    .and_then(|r| r.split('\'').next())
                    .and_then(|p| p.parse().ok())
                    .expect("the health check port");
                Some(real_start(&binary, yaml, health))
            }
        };
        (phoenix, validate, start)
    });
    let mut failures = Vec::new();
    for ((name, _, how), (phoenix, validate, start)) in corpus.iter().zip(&results) {
        let collector_refuses = match how {
            Refusal::Validate => validate.is_err(),
            Refusal::Start => validate.is_ok() && start.as_ref().is_some_and(Result::is_err),
        };
        if phoenix.is_ok() || !collector_refuses {
            failures.push(format!(
                "{name}: phoenix {phoenix:?}, validate {validate:?}, start {start:?}"
            ));
        }
    }
    println!("{} broken configs refused by both validators", corpus.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
