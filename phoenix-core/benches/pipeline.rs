//! Pipeline benchmarks: template render + validate (with a per-iteration p99), building a
//! sample from process records, native evaluation of every built-in template on a
//! 500-process host, and Prometheus exposition parsing.
//!
//! Run: `cargo bench -p phoenix-core --bench pipeline`
//! Data: `phoenix-core/testdata` (ci-runner-01: 500 processes, 5,000 series; node_exporter:
//! 1,092 series).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use phoenix_core::measure::Variant;
use phoenix_core::pipeline::exposition::sample_from_exposition;
use phoenix_core::pipeline::validate::validate_collector_yaml;
use phoenix_core::pipeline::{
    Engine, PipelineRef, ProcessRecord, RenderContext, Sample, TemplateRegistry,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct HostFile {
    taken_at_ms: i64,
    processes: Vec<ProcessRecord>,
}

const CI_RUNNER: &str = include_str!("../testdata/processes/ci-runner-01.json");
const NODE_EXPORTER: &str = include_str!("../testdata/prometheus/node_exporter.prom");
const TEMPLATES: [&str; 5] = ["baseline", "topk", "adaptive", "hybrid", "aggregate"];

fn context() -> RenderContext {
    RenderContext {
        variant: Some(Variant::Candidate),
        critical_processes: vec!["gitlab-runner".into(), "dockerd".into(), "sshd".into()],
        critical_metrics: vec![],
    }
}

fn render_and_validate(c: &mut Criterion) {
    let registry = TemplateRegistry::builtin();
    let ctx = context();
    let mut group = c.benchmark_group("render+validate");
    for name in TEMPLATES {
        let reference = PipelineRef::new(name);
        group.bench_function(name, |b| {
            b.iter(|| black_box(registry.render(black_box(&reference), &ctx).unwrap()));
        });
    }
    group.bench_function("experiment baseline+hybrid", |b| {
        b.iter(|| {
            black_box(
                registry
                    .render_experiment(
                        &PipelineRef::new("baseline"),
                        &PipelineRef::new("hybrid"),
                        &ctx.critical_processes,
                        &[],
                    )
                    .unwrap(),
            )
        });
    });
    let yaml = registry
        .render(&PipelineRef::new("hybrid"), &ctx)
        .unwrap()
        .collector_yaml;
    group.bench_function("validate only (hybrid yaml)", |b| {
        b.iter(|| black_box(validate_collector_yaml(black_box(&yaml)).unwrap()));
    });
    group.finish();
}

fn evaluation(c: &mut Criterion) {
    let host: HostFile = serde_json::from_str(CI_RUNNER).unwrap();
    let sample = Sample::from_processes(host.taken_at_ms, &host.processes);
    let registry = TemplateRegistry::builtin();
    let ctx = context();
    let mut group = c.benchmark_group("evaluate 500 processes");
    group.throughput(Throughput::Elements(sample.len() as u64));
    group.bench_function("build sample from ProcessRecords", |b| {
        b.iter(|| {
            black_box(Sample::from_processes(
                host.taken_at_ms,
                black_box(&host.processes),
            ))
        });
    });
    for name in TEMPLATES {
        let spec = registry.render(&PipelineRef::new(name), &ctx).unwrap().spec;
        group.bench_function(name, |b| {
            b.iter_batched(
                || Engine::new(spec.clone()),
                |mut engine| black_box(engine.evaluate(black_box(&sample))),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    let mut group = c.benchmark_group("exposition");
    group.throughput(Throughput::Bytes(NODE_EXPORTER.len() as u64));
    group.bench_function("parse node_exporter (1,092 series)", |b| {
        b.iter(|| {
            black_box(
                sample_from_exposition(black_box(NODE_EXPORTER), 0, [("service.name", "node")])
                    .unwrap(),
            )
        });
    });
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "index into a short vector"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Per-iteration latency distribution of render + validate (criterion reports means).
/// `cargo bench` measures 20,000 calls per case after 2,000 warm-up calls; `cargo test`
/// (unoptimised, where the figures mean nothing) runs 20 of each as a smoke test.
fn render_p99(measure: bool) {
    let registry = TemplateRegistry::builtin();
    let ctx = context();
    let (warm_up, iterations) = if measure { (2_000, 20_000) } else { (2, 20) };
    println!(
        "\nrender+validate latency per call, {iterations} calls each after {warm_up} warm-up calls:"
    );
    println!("| Template | p50 | p99 | max |");
    println!("|---|---|---|---|");
    let cases: Vec<(String, Box<dyn Fn()>)> = TEMPLATES
        .iter()
        .map(|name| {
            let reference = PipelineRef::new(*name);
            let registry = registry.clone();
            let ctx = ctx.clone();
            let f: Box<dyn Fn()> = Box::new(move || {
                black_box(registry.render(&reference, &ctx).unwrap());
            });
            ((*name).to_owned(), f)
        })
        .chain(std::iter::once({
            let registry = registry.clone();
            let critical = ctx.critical_processes.clone();
            let f: Box<dyn Fn()> = Box::new(move || {
                black_box(
                    registry
                        .render_experiment(
                            &PipelineRef::new("baseline"),
                            &PipelineRef::new("hybrid"),
                            &critical,
                            &[],
                        )
                        .unwrap(),
                );
            });
            ("experiment baseline+hybrid (3 renders)".to_owned(), f)
        }))
        .collect();
    for (name, f) in cases {
        for _ in 0..warm_up {
            f();
        }
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            f();
            times.push(start.elapsed());
        }
        times.sort_unstable();
        println!(
            "| {name} | {:.1} us | {:.1} us | {:.1} us |",
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
            times[times.len() - 1].as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    render_and_validate(&mut c);
    evaluation(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test` runs this target without it.
    render_p99(std::env::args().any(|a| a == "--bench"));
}
