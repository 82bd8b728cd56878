//! Cardinality analysis and cost flow over 1,000,000 series with realistic label shapes.
//!
//! Run: `cargo bench -p phoenix-core --bench cardinality` (or `scripts/bench`).
//! Single-threaded throughout, so elements per second are series per second per core. It
//! rewrites its generated block of `docs/benchmarks.md` from criterion's samples.
//!
//! Shape: 200 hosts x 5,000 series. Per host, 300 processes as the OpenTelemetry
//! Collector's hostmetrics process scraper reports them (13 series each: cpu.time by
//! state, memory usage/virtual, disk.io by direction, threads, open fds, context switches
//! and paging faults by type; resource attributes host.name, process.pid,
//! process.executable.name, process.command, process.owner, service.name,
//! k8s.namespace.name, k8s.pod.name), and 1,100 HTTP request counters of
//! Prometheus-instrumented services (method x route x status, with service.name,
//! k8s.namespace.name, k8s.pod.name, instance, job).

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group};
use phoenix_bench::{Bound, Machine, Report, Target, criterion_samples, write_generated};
use phoenix_core::cardinality::{
    AnalysisOptions, RecommendOptions, SeriesTable, analyze as analyze_snapshots,
};
use phoenix_core::cost::Catalogue;
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, SnapshotSeries};

const HOSTS: usize = 200;
const PROCESSES: usize = 300;
const HTTP_SERIES: usize = 1_100;

const EXECUTABLES: [&str; 12] = [
    "nginx",
    "postgres",
    "java",
    "python3",
    "node",
    "redis-server",
    "sshd",
    "systemd",
    "containerd",
    "kubelet",
    "otelcol",
    "envoy",
];
const NAMESPACES: [&str; 8] = [
    "checkout",
    "payments",
    "search",
    "catalog",
    "auth",
    "ingest",
    "monitoring",
    "kube-system",
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const STATUSES: [&str; 5] = ["200", "201", "404", "429", "500"];

/// A metric name and its point label with the label's values, if any.
type ProcessMetric = (
    &'static str,
    Option<(&'static str, &'static [&'static str])>,
);

fn process_series(host: &str, pid: u32, exe: &str, namespace: &str, out: &mut Vec<SnapshotSeries>) {
    let mut resource = BTreeMap::new();
    resource.insert("host.name".to_owned(), host.to_owned());
    resource.insert("process.pid".to_owned(), pid.to_string());
    resource.insert("process.executable.name".to_owned(), exe.to_owned());
    resource.insert(
        "process.command".to_owned(),
        format!("/usr/bin/{exe} --worker {}", pid % 16),
    );
    resource.insert(
        "process.owner".to_owned(),
        if pid.is_multiple_of(3) { "root" } else { "app" }.to_owned(),
    );
    resource.insert("service.name".to_owned(), exe.to_owned());
    resource.insert("k8s.namespace.name".to_owned(), namespace.to_owned());
    resource.insert(
        "k8s.pod.name".to_owned(),
        format!(
            "{exe}-{:x}-{}",
            pid.wrapping_mul(2_654_435_761) % 0x00ff_ffff,
            pid % 5
        ),
    );
    let metrics: [ProcessMetric; 8] = [
        (
            "process.cpu.time",
            Some(("state", &["user", "system", "wait"])),
        ),
        ("process.memory.usage", None),
        ("process.memory.virtual", None),
        ("process.disk.io", Some(("direction", &["read", "write"]))),
        ("process.threads", None),
        ("process.open_file_descriptors", None),
        (
            "process.context_switches",
            Some(("type", &["involuntary", "voluntary"])),
        ),
        ("process.paging.faults", Some(("type", &["major", "minor"]))),
    ];
    for (name, point_label) in metrics {
        match point_label {
            None => out.push(SnapshotSeries {
                metric: name.to_owned(),
                labels: resource.clone(),
                points: 1,
                value: None,
            }),
            Some((key, values)) => {
                for value in values {
                    let mut labels = resource.clone();
                    labels.insert(key.to_owned(), (*value).to_owned());
                    out.push(SnapshotSeries {
                        metric: name.to_owned(),
                        labels,
                        points: 1,
                        value: None,
                    });
                }
            }
        }
    }
}

fn snapshots() -> Vec<CardinalitySnapshot> {
    let taken_at = Utc.timestamp_opt(1_780_000_000, 0).unwrap();
    (0..HOSTS)
        .map(|h| {
            let host = format!("node-{h:04}.prod.example.internal");
            let mut series = Vec::with_capacity(PROCESSES * 13 + HTTP_SERIES);
            for p in 0..PROCESSES {
                let pid = 1_000 + (h * 7_919 + p * 104_729) as u32 % 4_000_000;
                let exe = EXECUTABLES[(p * 7 + h) % EXECUTABLES.len()];
                let namespace = NAMESPACES[(p + h) % NAMESPACES.len()];
                process_series(&host, pid, exe, namespace, &mut series);
            }
            for i in 0..HTTP_SERIES {
                let service = EXECUTABLES[i % 4];
                let namespace = NAMESPACES[(i / 4) % 4];
                let mut labels = BTreeMap::new();
                labels.insert("method".to_owned(), METHODS[i % 4].to_owned());
                labels.insert(
                    "route".to_owned(),
                    format!("/api/v1/{}/{{id}}", i / 20 % 55),
                );
                labels.insert("status".to_owned(), STATUSES[i / 4 % 5].to_owned());
                labels.insert("service.name".to_owned(), service.to_owned());
                labels.insert("k8s.namespace.name".to_owned(), namespace.to_owned());
                labels.insert(
                    "k8s.pod.name".to_owned(),
                    format!("{service}-{}-{}", h % 50, i % 3),
                );
                labels.insert(
                    "instance".to_owned(),
                    format!("10.{}.{}.{}:8080", h / 250, h % 250, i % 3),
                );
                labels.insert("job".to_owned(), format!("{namespace}/{service}"));
                series.push(SnapshotSeries {
                    metric: "http_server_requests_total".to_owned(),
                    labels,
                    points: 1,
                    value: None,
                });
            }
            CardinalitySnapshot {
                agent_id: AgentId::new(),
                source: phoenix_core::measure::SnapshotSource::Input,
                host,
                taken_at,
                interval_secs: 10,
                series,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let snaps = snapshots();
    let total: usize = snaps.iter().map(|s| s.series.len()).sum();
    assert_eq!(total, 1_000_000);
    let catalogue = Catalogue::builtin();
    let grafana = catalogue.get("grafana-cloud-pro").unwrap();
    let newrelic = catalogue.get("newrelic-original").unwrap();
    let options = AnalysisOptions::default();
    let table = SeriesTable::from_snapshots(&snaps).unwrap();

    let mut group = c.benchmark_group("cardinality_1m");
    group.sample_size(10);
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("analyze_cost_flow_grafana", |b| {
        b.iter(|| black_box(table.analyze(&options, Some(grafana)).unwrap()));
    });
    group.bench_function("analyze_cost_flow_newrelic_bytes", |b| {
        b.iter(|| black_box(table.analyze(&options, Some(newrelic)).unwrap()));
    });
    // The floor for any pass over this input: read every metric name, label key and value
    // once (each is its own heap allocation in `CardinalitySnapshot`).
    group.bench_function("read_every_snapshot_string", |b| {
        b.iter(|| {
            let mut bytes = 0_usize;
            for s in &snaps {
                for series in &s.series {
                    bytes += series.metric.len();
                    for (k, v) in &series.labels {
                        bytes += usize::from(k.as_bytes()[0])
                            + usize::from(v.as_bytes().first().copied().unwrap_or(0));
                    }
                }
            }
            black_box(bytes)
        });
    });
    group.bench_function("intern_snapshots", |b| {
        b.iter(|| black_box(SeriesTable::from_snapshots(&snaps).unwrap()));
    });
    group.bench_function("end_to_end_intern_analyze_cost_flow", |b| {
        b.iter(|| black_box(analyze_snapshots(&snaps, &options, Some(grafana)).unwrap()));
    });
    group.bench_function("recommend", |b| {
        b.iter(|| {
            black_box(
                table
                    .recommend(grafana, &RecommendOptions::default())
                    .unwrap(),
            )
        });
    });
    group.finish();

    // Engine-projected recommendations run below `engine_max_series`: 10 hosts, 50,000 series.
    let small = SeriesTable::from_snapshots(&snaps[..10]).unwrap();
    let mut group = c.benchmark_group("cardinality_50k");
    group.sample_size(10);
    group.throughput(Throughput::Elements(small.len() as u64));
    group.bench_function("recommend_with_engine", |b| {
        b.iter(|| {
            black_box(
                small
                    .recommend(grafana, &RecommendOptions::default())
                    .unwrap(),
            )
        });
    });
    let exact_only = RecommendOptions {
        engine_max_series: 0,
        ..RecommendOptions::default()
    };
    group.bench_function("recommend_exact_only", |b| {
        b.iter(|| black_box(small.recommend(grafana, &exact_only).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, bench);

/// The targets this benchmark checks (design sections 6 and 6.1); verdicts are computed
/// from the medians of criterion's samples, never written.
static TARGETS: [Target; 3] = [
    Target {
        id: "1m-time",
        bound: Bound::Below(150.0),
        text: "1 M series in < 150 ms, design 6",
    },
    Target {
        id: "rate",
        bound: Bound::AtLeast(10.0),
        text: ">= 10 M series/s per core, design 6",
    },
    Target {
        id: "rate-end-to-end",
        bound: Bound::AtLeast(10.0),
        text: ">= 10 M series/s per core end to end from stored snapshots, design 6.1",
    },
];

const COMMAND: &str = "cargo bench -p phoenix-core --bench cardinality";

/// Writes the generated block from criterion's samples of this run: each row's time per
/// iteration (ms) and the series per second it implies (single-threaded: per core).
fn report(mut machine: Machine) {
    machine.finish();
    let mut report = Report::new();
    let rows: [(&str, &str, f64, &[&str]); 8] = [
        (
            "cardinality_1m/analyze_cost_flow_grafana",
            "analyse + cost flow, `grafana-cloud-pro` (series driver), 1 M series",
            1e6,
            &["1m-time", "rate"],
        ),
        (
            "cardinality_1m/analyze_cost_flow_newrelic_bytes",
            "analyse + cost flow, `newrelic-original` (bytes estimated per series), 1 M series",
            1e6,
            &["1m-time", "rate"],
        ),
        (
            "cardinality_1m/read_every_snapshot_string",
            "read every label string of the snapshots once (the floor of any pass over `CardinalitySnapshot`), 1 M series",
            1e6,
            &[],
        ),
        (
            "cardinality_1m/intern_snapshots",
            "intern snapshots (`SeriesTable::from_snapshots`), 1 M series",
            1e6,
            &[],
        ),
        (
            "cardinality_1m/end_to_end_intern_analyze_cost_flow",
            "end to end from snapshots: intern + analyse + cost flow (grafana), 1 M series",
            1e6,
            &["1m-time", "rate-end-to-end"],
        ),
        (
            "cardinality_1m/recommend",
            "recommendations, exact re-grouping (the engine is not run above 200,000 series), 1 M series",
            1e6,
            &[],
        ),
        (
            "cardinality_50k/recommend_with_engine",
            "recommendations with the native engine (3 label-wide drops + `aggregate` + unchanged reference, each evaluated on every host), 50,000 series",
            5e4,
            &[],
        ),
        (
            "cardinality_50k/recommend_exact_only",
            "recommendations, exact re-grouping only (`engine_max_series: 0`), 50,000 series",
            5e4,
            &[],
        ),
    ];
    for (id, what, series, targets) in rows {
        let ns = criterion_samples(id);
        let ms: Vec<f64> = ns.iter().map(|n| n / 1e6).collect();
        let rate: Vec<f64> = ns.iter().map(|n| series / (n / 1e9) / 1e6).collect();
        let time_targets: Vec<&'static Target> = targets
            .iter()
            .filter(|t| t.ends_with("time"))
            .map(|t| Target::find(&TARGETS, t))
            .collect();
        let rate_targets: Vec<&'static Target> = targets
            .iter()
            .filter(|t| t.starts_with("rate"))
            .map(|t| Target::find(&TARGETS, t))
            .collect();
        report.row(format!("{what}: time (ms)"), ms, 1, &time_targets);
        report.row(
            format!("{what}: throughput (M series/s)"),
            rate,
            2,
            &rate_targets,
        );
    }
    let body = format!(
        "{}\n\nConfiguration: criterion, 10 samples per figure (min, median and max are over \
those samples, each the mean time of its iterations); single-threaded, so series per second \
are per core. Data as described above.\n\n{}",
        machine.describe(),
        report.render()
    );
    println!("{body}");
    write_generated("cardinality", COMMAND, &body);
}

fn main() {
    let machine = Machine::read();
    benches();
    Criterion::default().configure_from_args().final_summary();
    if phoenix_bench::measuring() {
        report(machine);
    }
}
