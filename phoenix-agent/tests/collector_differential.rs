//! The native engine against the real Collector on the same input, per built-in template.
//!
//! Input: the recorded corpus (`phoenix-core/testdata/processes`), encoded as OTLP in the
//! shape of the hostmetrics process scraper (one resource per process, each process with
//! its own timestamp, memory and disk points as integers) and pushed to an `otlp` receiver
//! that replaces the rendered `hostmetrics` receiver; the processors and exporters run
//! exactly as rendered. Output: the rendered Prometheus exporter, scraped and parsed with
//! `sample_from_exposition`; the native output goes through the same exposition text, so
//! both sides are compared in one form.
//!
//! Per template and host: the series set, every value, the totals of aggregated sums,
//! fidelity and critical coverage must agree with the native engine evaluating the spec's
//! `collector_semantics()` (for `topk` that is the threshold the Collector config applies,
//! for `adaptive` the thresholds without hysteresis; the other templates are their own
//! Collector semantics). Across intervals, the series of processes that ended must
//! disappear (web-01, then web-01-next with the short-lived PIDs replaced).
//!
//! A second test runs the rendered configs unchanged on the live host (the real
//! `hostmetrics` receiver) beside the agent's own process probe, and compares loosely (the
//! two read the process table at different instants): the same metric names, the same
//! executable-name groups for the most part, and full coverage of test-owned critical
//! processes on both sides.
//!
//! It prints the table of docs/templates.md and writes it to
//! `target/collector-differential.md`:
//! `cargo test -p phoenix-agent --test collector_differential -- --nocapture`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use phoenix_agent::otlp::{PROTOBUF, encode_request, to_bytes};
use phoenix_core::measure::VariantStats;
use phoenix_core::pipeline::encode::write_prometheus_text;
use phoenix_core::pipeline::exposition::sample_from_exposition;
use phoenix_core::pipeline::{
    Engine, ParamValue, PipelineRef, ProcessRecord, RenderContext, Sample, TemplateRegistry,
};
use support::collector::collector_binary;
use support::harness::{RunningCollector, free_port, with_otlp_input, with_rendered_input};
use support::processes::NamedProcesses;
use tokio::sync::Mutex;

/// The cases: a label and a reference (collection interval and port are set by the run).
fn cases() -> Vec<(&'static str, PipelineRef)> {
    let text = |v: &str| ParamValue::String(v.to_owned());
    vec![
        ("baseline", PipelineRef::new("baseline")),
        ("topk", PipelineRef::new("topk")),
        (
            "topk rank_by=memory",
            PipelineRef::new("topk").with_param("rank_by", text("memory")),
        ),
        ("adaptive", PipelineRef::new("adaptive")),
        (
            "adaptive min_memory_mib=0",
            PipelineRef::new("adaptive").with_param("min_memory_mib", ParamValue::Int(0)),
        ),
        ("hybrid", PipelineRef::new("hybrid")),
        (
            "hybrid rank_by=memory other_name=rest",
            PipelineRef::new("hybrid")
                .with_param("rank_by", text("memory"))
                .with_param("other_name", text("rest")),
        ),
        ("aggregate", PipelineRef::new("aggregate")),
        (
            "aggregate group_by=name,owner",
            PipelineRef::new("aggregate").with_param(
                "group_by",
                ParamValue::List(vec![
                    "process.executable.name".to_owned(),
                    "process.owner".to_owned(),
                ]),
            ),
        ),
    ]
}
const MARKER: &str = "phoenix.differential.push";

struct Host {
    name: &'static str,
    /// The intervals replayed in order.
    intervals: &'static [&'static str],
    critical: &'static [&'static str],
}

const HOSTS: [Host; 3] = [
    Host {
        name: "web-01",
        intervals: &[
            include_str!("../../phoenix-core/testdata/processes/web-01.json"),
            include_str!("../../phoenix-core/testdata/processes/web-01-next.json"),
        ],
        critical: &["nginx", "sshd", "kubelet", "otelcol-contrib"],
    },
    Host {
        name: "db-01",
        intervals: &[include_str!(
            "../../phoenix-core/testdata/processes/db-01.json"
        )],
        critical: &["patroni", "pgbouncer", "sshd"],
    },
    Host {
        name: "ci-runner-01",
        intervals: &[include_str!(
            "../../phoenix-core/testdata/processes/ci-runner-01.json"
        )],
        critical: &["gitlab-runner", "dockerd", "sshd"],
    },
];

#[derive(serde::Deserialize)]
struct HostFile {
    taken_at_ms: i64,
    processes: Vec<ProcessRecord>,
}

fn load(json: &str) -> Sample {
    let file: HostFile = serde_json::from_str(json).expect("corpus file parses");
    Sample::from_processes(file.taken_at_ms, &file.processes)
}

fn now_nanos() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos(),
    )
    .expect("fits u64")
}

/// Metrics the process scraper reports as integers.
fn is_int_metric(name: &str) -> bool {
    matches!(
        name,
        "process.memory.usage"
            | "process.memory.virtual"
            | "process.disk.io"
            | "process.threads"
            | "process.open_file_descriptors"
    )
}

/// `sample` as the hostmetrics process scraper would send it at `now`: each process with its
/// own timestamp (a microsecond apart), integers where the scraper writes integers; then
/// a marker resource whose gauge counts the pushes (last, so a scrape showing it shows the
/// whole push).
fn otlp_body(sample: &Sample, now: u64, push: u64) -> Vec<u8> {
    let mut request = encode_request(sample, "input", now - 3_600_000_000_000);
    for (i, rm) in request.resource_metrics.iter_mut().enumerate() {
        if let Some(resource) = &mut rm.resource {
            resource
                .attributes
                .retain(|kv| kv.key != "phoenix.pipeline");
        }
        let at = now + 1_000 * i as u64;
        for sm in &mut rm.scope_metrics {
            for m in &mut sm.metrics {
                let int = is_int_metric(&m.name);
                let points = match &mut m.data {
                    Some(metric::Data::Gauge(g)) => &mut g.data_points,
                    Some(metric::Data::Sum(s)) => &mut s.data_points,
                    _ => continue,
                };
                for p in points {
                    p.time_unix_nano = at;
                    if let (true, Some(number_data_point::Value::AsDouble(v))) = (int, p.value) {
                        #[allow(clippy::cast_possible_truncation, reason = "whole bytes")]
                        let v = v as i64;
                        p.value = Some(number_data_point::Value::AsInt(v));
                    }
                }
            }
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let marker = ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("phoenix-test".to_owned())),
                }),
            }],
            ..Resource::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: MARKER.to_owned(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsDouble(push as f64)),
                        ..NumberDataPoint::default()
                    }],
                })),
                ..Metric::default()
            }],
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    };
    request.resource_metrics.push(marker);
    to_bytes(&request)
}

/// A parsed exposition as `metric{sorted labels}` -> value, without the test's marker, the
/// exporter's `target_info` and its scope labels.
fn series_values(sample: &Sample) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in sample.series() {
        let metric = sample.resolve(s.metric);
        if metric == "target_info" || metric.starts_with("phoenix_differential") {
            continue;
        }
        let mut labels: Vec<(String, String)> = sample
            .resource(s.resource)
            .pairs()
            .iter()
            .chain(s.attributes.pairs())
            .map(|(k, v)| (sample.resolve(*k).to_owned(), sample.resolve(*v).to_owned()))
            .filter(|(k, _)| !k.starts_with("otel_scope_"))
            .collect();
        labels.sort();
        let key = format!(
            "{metric}{{{}}}",
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        out.insert(key, s.value);
    }
    out
}

fn parse(text: &str) -> Sample {
    sample_from_exposition(text, 0, std::iter::empty::<(&str, &str)>())
        .expect("the exposition parses")
}

/// The pushed marker value in a scrape, if any.
fn marker_of(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("phoenix_differential_push"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "counts"
            )]
            let v = v as u64;
            v
        })
}

/// Per metric total of the values.
fn totals(values: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, v) in values {
        let metric = k.split('{').next().unwrap_or_default().to_owned();
        *out.entry(metric).or_insert(0.0) += v;
    }
    out
}

fn rel_err(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

/// One comparison of the native engine and the Collector on one interval.
struct Row {
    template: &'static str,
    host: String,
    native_series: usize,
    collector_series: usize,
    only_native: Vec<String>,
    only_collector: Vec<String>,
    /// Largest relative difference of a value present on both sides.
    value_err: f64,
    /// Largest relative difference of a metric's total.
    sum_err: f64,
    native: VariantStats,
    collector: VariantStats,
}

impl Row {
    fn agrees(&self) -> bool {
        self.only_native.is_empty()
            && self.only_collector.is_empty()
            && self.value_err <= 1e-9
            && self.sum_err <= 1e-9
            && close(
                self.native.fidelity.cpu_pct,
                self.collector.fidelity.cpu_pct,
            )
            && close(
                self.native.fidelity.memory_pct,
                self.collector.fidelity.memory_pct,
            )
            && self.native.critical == self.collector.critical
    }
}

/// Replays `host` through `template` on a real Collector and compares every interval.
async fn run(
    binary: std::path::PathBuf,
    template: &'static str,
    reference: PipelineRef,
    host: &'static Host,
) -> Vec<Row> {
    let prometheus_port = free_port();
    let registry = TemplateRegistry::builtin();
    let critical: Vec<String> = host.critical.iter().map(|s| (*s).to_owned()).collect();
    let rendered = registry
        .render(
            &reference
                .with_param("collection_interval", ParamValue::String("1s".to_owned()))
                .with_param(
                    "prometheus_port",
                    ParamValue::Int(i64::from(prometheus_port)),
                ),
            &RenderContext {
                variant: None,
                critical_processes: critical.clone(),
                critical_metrics: Vec::new(),
            },
        )
        .expect("renders");
    let (otlp_port, health_port) = (free_port(), free_port());
    let yaml = with_otlp_input(&rendered.collector_yaml, otlp_port, health_port);
    let collector = RunningCollector::start(&binary, &yaml, health_port).await;

    let current: Arc<Mutex<Option<Sample>>> = Arc::new(Mutex::new(None));
    let pushes = Arc::new(AtomicU64::new(0));
    let pusher = {
        let current = Arc::clone(&current);
        let pushes = Arc::clone(&pushes);
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let body = current
                    .lock()
                    .await
                    .as_ref()
                    .map(|s| otlp_body(s, now_nanos(), pushes.load(Ordering::SeqCst) + 1));
                if let Some(body) = body {
                    let sent = client
                        .post(format!("http://127.0.0.1:{otlp_port}/v1/metrics"))
                        .header("content-type", PROTOBUF)
                        .body(body)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        pushes.fetch_add(1, Ordering::SeqCst);
                    }
                }
                // The collection interval of a real receiver, faster: one push per 300 ms.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    let client = reqwest::Client::new();
    let mut rows = Vec::new();
    for (i, json) in host.intervals.iter().enumerate() {
        let input = load(json);
        let mut engine = Engine::with_critical(rendered.spec.collector_semantics(), &critical, &[]);
        let evaluation = engine.evaluate(&input);
        let mut native_text = String::new();
        write_prometheus_text(&evaluation.output, &mut native_text).expect("encodes");
        let native_sample = parse(&native_text);
        let native_values = series_values(&native_sample);
        let native_stats = engine.output_stats(&input, &native_sample);

        *current.lock().await = Some(input.clone());
        let first_push = pushes.load(Ordering::SeqCst) + 1;
        // Poll the exporter until it shows this interval's series set (series of ended
        // processes expire within three intervals), or give up after 30 s and compare
        // what it shows.
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            let text = client
                .get(format!("http://127.0.0.1:{prometheus_port}/metrics"))
                .send()
                .await
                .expect("the exporter answers")
                .text()
                .await
                .expect("a body");
            let seen = marker_of(&text).is_some_and(|m| m > first_push);
            let keys: BTreeSet<String> = series_values(&parse(&text)).into_keys().collect();
            let same = keys.iter().eq(native_values.keys());
            if (seen && same) || Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let collector_sample = parse(&text);
        let collector_values = series_values(&collector_sample);
        let collector_stats = engine.output_stats(&input, &collector_sample);
        let only_native: Vec<String> = native_values
            .keys()
            .filter(|k| !collector_values.contains_key(*k))
            .cloned()
            .collect();
        let only_collector: Vec<String> = collector_values
            .keys()
            .filter(|k| !native_values.contains_key(*k))
            .cloned()
            .collect();
        let value_err = native_values
            .iter()
            .filter_map(|(k, v)| collector_values.get(k).map(|c| rel_err(*v, *c)))
            .fold(0.0, f64::max);
        let (nt, ct) = (totals(&native_values), totals(&collector_values));
        let sum_err = nt
            .iter()
            .map(|(m, v)| rel_err(*v, ct.get(m).copied().unwrap_or(0.0)))
            .fold(0.0, f64::max);
        rows.push(Row {
            template,
            host: if i == 0 {
                host.name.to_owned()
            } else {
                format!("{} (+{}0 s)", host.name, i)
            },
            native_series: native_values.len(),
            collector_series: collector_values.len(),
            only_native,
            only_collector,
            value_err,
            sum_err,
            native: native_stats,
            collector: collector_stats,
        });
    }
    pusher.abort();
    drop(collector);
    rows
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "not measured".to_owned(), |v| format!("{v:.1} %"))
}

/// Both measured and within 1e-6 percent, or both not measured.
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6,
        (a, b) => a.is_none() && b.is_none(),
    }
}

fn coverage(stats: &VariantStats) -> String {
    let c = &stats.critical;
    format!("{}/{}", c.present.len(), c.expected.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_collector_does_what_the_native_engine_does_on_the_recorded_corpus() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let mut handles = Vec::new();
    let cases = cases();
    let count = cases.len();
    for (label, reference) in cases {
        let binary = binary.clone();
        handles.push(tokio::spawn(async move {
            let mut rows = Vec::new();
            for host in &HOSTS {
                rows.extend(run(binary.clone(), label, reference.clone(), host).await);
            }
            rows
        }));
    }
    let mut rows = Vec::new();
    for h in handles {
        rows.extend(h.await.expect("a template run completes"));
    }

    let mut table = String::from(
        "| Case | Host | Series native / Collector | Only native / only Collector | Sum error | Value error | CPU fidelity native / Collector | Memory fidelity native / Collector | Critical coverage native / Collector |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {} | {} / {} | {} / {} | {:.1e} | {:.1e} | {} / {} | {} / {} | {} / {} |",
            r.template,
            r.host,
            r.native_series,
            r.collector_series,
            r.only_native.len(),
            r.only_collector.len(),
            r.sum_err,
            r.value_err,
            pct(r.native.fidelity.cpu_pct),
            pct(r.collector.fidelity.cpu_pct),
            pct(r.native.fidelity.memory_pct),
            pct(r.collector.fidelity.memory_pct),
            coverage(&r.native),
            coverage(&r.collector),
        );
    }
    println!("{table}");
    let out = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/collector-differential.md");
    let _ = std::fs::write(&out, &table);

    let mut failures = String::new();
    for r in rows.iter().filter(|r| !r.agrees()) {
        let _ = writeln!(
            failures,
            "{} on {}: only native {:?}, only Collector {:?}, value error {}, sum error {}, coverage {:?} vs {:?}",
            r.template,
            r.host,
            r.only_native.iter().take(5).collect::<Vec<_>>(),
            r.only_collector.iter().take(5).collect::<Vec<_>>(),
            r.value_err,
            r.sum_err,
            r.native.critical,
            r.collector.critical,
        );
    }
    assert!(failures.is_empty(), "disagreements:\n{failures}");
    assert_eq!(rows.len(), count * 4, "every case on every interval");
}

/// Executable names of the process series of a parsed exposition or sample, cut to the
/// first 15 bytes: the agent's probe reads the kernel's 15-byte process name, the Collector
/// the base name of the executable path.
fn executable_names(sample: &Sample) -> BTreeSet<String> {
    sample
        .series()
        .iter()
        .filter_map(|s| sample.resource_attr(s.resource, "process.executable.name"))
        .map(|n| {
            n.chars()
                .scan(0, |len, c| {
                    *len += c.len_utf8();
                    (*len <= 15).then_some(c)
                })
                .collect()
        })
        .collect()
}

fn metric_names(sample: &Sample) -> BTreeSet<String> {
    sample
        .series()
        .iter()
        .map(|s| sample.resolve(s.metric).to_owned())
        .filter(|m| m.starts_with("process."))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_the_live_host_the_collector_and_the_native_probe_agree_loosely() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let mut owned = NamedProcesses::new();
    let critical_name = NamedProcesses::unique_name("phxcr");
    owned.spawn(&critical_name, 3);
    let critical = vec![critical_name.clone()];
    let registry = TemplateRegistry::builtin();
    for template in ["baseline", "aggregate", "topk"] {
        let prometheus_port = free_port();
        let rendered = registry
            .render(
                &PipelineRef::new(template)
                    .with_param("collection_interval", ParamValue::String("1s".to_owned()))
                    .with_param(
                        "prometheus_port",
                        ParamValue::Int(i64::from(prometheus_port)),
                    ),
                &RenderContext {
                    variant: None,
                    critical_processes: critical.clone(),
                    critical_metrics: Vec::new(),
                },
            )
            .expect("renders");
        let health_port = free_port();
        let collector = RunningCollector::start(
            &binary,
            &with_rendered_input(&rendered.collector_yaml, health_port),
            health_port,
        )
        .await;
        // The native side: the agent's probe, twice (utilisation needs a previous read).
        let mut probe = phoenix_agent::host::HostProbe::new();
        let _ = probe.scan();
        // Wait for the Collector's second scrape (utilisation needs a previous one too).
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            let text = client
                .get(format!("http://127.0.0.1:{prometheus_port}/metrics"))
                .send()
                .await
                .expect("the exporter answers")
                .text()
                .await
                .expect("a body");
            if text.contains("process_cpu_utilization") {
                break text;
            }
            assert!(
                Instant::now() < deadline,
                "{template}: no process CPU utilisation from the Collector:\n{}",
                collector.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let scan = probe.scan();
        let input = Sample::from_processes(0, &scan.processes);
        let mut engine = Engine::with_critical(rendered.spec.collector_semantics(), &critical, &[]);
        let native = engine.evaluate(&input);
        let collector_sample = parse(&text);
        let collector_stats = engine.output_stats(&input, &collector_sample);

        // Same metrics, same critical coverage (the test's own processes, always there).
        assert_eq!(
            metric_names(&native.output),
            metric_names(&collector_sample),
            "{template}: metric names"
        );
        assert_eq!(native.stats.critical.present, critical, "{template}");
        assert_eq!(collector_stats.critical.present, critical, "{template}");
        // The executable names: mostly the same (processes come and go between reads).
        let (n, c) = (
            executable_names(&native.output),
            executable_names(&collector_sample),
        );
        // The Collector also reports kernel threads (kworker/0:1, ...), which the agent's
        // probe leaves out: compare what share of the probe's names the Collector shows.
        #[allow(clippy::cast_precision_loss, reason = "small sets")]
        let shown = n.intersection(&c).count() as f64 / n.len().max(1) as f64;
        println!(
            "{template} on the live host: native {} series / {} names, Collector {} series / {} names ({} not in the native output), native names shown by the Collector {:.0} %",
            native.output.len(),
            n.len(),
            collector_sample.len(),
            c.len(),
            c.difference(&n).count(),
            100.0 * shown
        );
        if template != "topk" {
            // A threshold on CPU over one second picks different processes at different
            // instants; the full and aggregated outputs must name nearly the same processes.
            assert!(shown >= 0.8, "{template}: names {n:?} vs {c:?}");
        }
        drop(collector);
    }
    drop(owned);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_combined_experiment_config_starts_and_serves_both_variants_from_one_input() {
    let Some(binary) = collector_binary() else {
        return;
    };
    let (b_port, c_port) = (free_port(), free_port());
    let port = |p: u16| ParamValue::Int(i64::from(p));
    let interval = ParamValue::String("1s".to_owned());
    let rendered = TemplateRegistry::builtin()
        .render_experiment(
            &PipelineRef::new("baseline")
                .with_param("collection_interval", interval.clone())
                .with_param("prometheus_port", port(b_port)),
            &PipelineRef::new("hybrid")
                .with_param("collection_interval", interval)
                .with_param("prometheus_port", port(c_port)),
            &["sshd".to_owned()],
            &[],
        )
        .expect("renders");
    let health_port = free_port();
    let collector = RunningCollector::start(
        &binary,
        &with_rendered_input(&rendered.collector_yaml, health_port),
        health_port,
    )
    .await;
    let client = reqwest::Client::new();
    for (variant, port) in [("baseline", b_port), ("candidate", c_port)] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = client
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .expect("the exporter answers")
                .text()
                .await
                .expect("a body");
            let sample = parse(&text);
            let tagged = sample.series().iter().any(|s| {
                let label = sample
                    .resource(s.resource)
                    .pairs()
                    .iter()
                    .chain(s.attributes.pairs())
                    .find(|(k, _)| sample.resolve(*k) == "phoenix_variant")
                    .map(|(_, v)| sample.resolve(*v));
                sample.resolve(s.metric).starts_with("process.") && label == Some(variant)
            });
            if tagged {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{variant}: no process series tagged with its variant:\n{}",
                collector.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
