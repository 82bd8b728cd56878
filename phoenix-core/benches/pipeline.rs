//! Pipeline benchmarks: template render + validate (with a per-iteration p99), building a
//! sample from process records, native evaluation of every built-in template on a
//! 500-process host, and Prometheus exposition parsing.
//!
//! Run: `cargo bench -p phoenix-core --bench pipeline` (or `scripts/bench`); it rewrites its
//! generated block of `docs/benchmarks.md` (`PHOENIX_BENCH_REPS` latency rounds, 3 by default).
//! Data: `phoenix-core/testdata` (ci-runner-01: 500 processes, 5,000 series; node_exporter:
//! 1,092 series).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use phoenix_bench::{
    Bound, Machine, Report, Target, criterion_samples, percentile, write_generated,
};
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

/// The targets this benchmark checks (design section 6); verdicts are computed from the
/// medians, never written.
static TARGETS: [Target; 2] = [
    Target {
        id: "render-p99",
        bound: Bound::AtMost(200.0),
        text: "built-in template render + validate p99 <= 200 us, design 6",
    },
    Target {
        id: "agent-cpu",
        bound: Bound::Below(1.0),
        text: "baseline + candidate on >= 300 processes every 10 s with < 1 % of a core, design 6",
    },
];

const COMMAND: &str = "cargo bench -p phoenix-core --bench pipeline";

/// One render+validate case: its name and the call it times.
type Case = (String, Box<dyn Fn()>);

fn render_cases() -> Vec<Case> {
    let registry = TemplateRegistry::builtin();
    let ctx = context();
    TEMPLATES
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
            (
                "experiment baseline + hybrid (3 renders: both variants and the combined config)"
                    .to_owned(),
                f,
            )
        }))
        .collect()
}

/// Per-call latency distribution of render + validate (criterion reports means), in
/// rounds: each round times `iterations` calls of every case after `warm_up` calls. Returns
/// per case its p50, p99 and max of every round, in microseconds.
fn render_latency(
    rounds: usize,
    warm_up: usize,
    iterations: usize,
) -> Vec<(String, [Vec<f64>; 3])> {
    let cases = render_cases();
    let mut out: Vec<(String, [Vec<f64>; 3])> = cases
        .iter()
        .map(|(name, _)| (name.clone(), [Vec::new(), Vec::new(), Vec::new()]))
        .collect();
    for _ in 0..rounds {
        for ((_, f), (_, figures)) in cases.iter().zip(out.iter_mut()) {
            for _ in 0..warm_up {
                f();
            }
            let mut times: Vec<f64> = (0..iterations)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            times.sort_by(f64::total_cmp);
            figures[0].push(percentile(&times, 50.0));
            figures[1].push(percentile(&times, 99.0));
            figures[2].push(times[times.len() - 1]);
        }
    }
    out
}

/// Sums the k-th smallest samples of several criterion benchmarks: the min, median and
/// max of the result are the sums of theirs.
fn quantile_sum(parts: &[Vec<f64>]) -> Vec<f64> {
    let mut sorted: Vec<Vec<f64>> = parts.to_vec();
    for p in &mut sorted {
        p.sort_by(f64::total_cmp);
    }
    let n = sorted.iter().map(Vec::len).min().unwrap_or(0);
    (0..n).map(|k| sorted.iter().map(|p| p[k]).sum()).collect()
}

fn report(
    mut machine: Machine,
    latency: Vec<(String, [Vec<f64>; 3])>,
    rounds: usize,
    iterations: usize,
) {
    machine.finish();
    let mut report = Report::new();
    for (name, [p50, p99, max]) in latency {
        report.row(format!("render + validate p50, {name} (us)"), p50, 1, &[]);
        report.row(
            format!("render + validate p99, {name} (us)"),
            p99,
            1,
            &[Target::find(&TARGETS, "render-p99")],
        );
        report.row(format!("render + validate max, {name} (us)"), max, 1, &[]);
    }
    report.row(
        "validate only, hybrid YAML of about 4 KB (us)",
        criterion_samples("render+validate/validate only (hybrid yaml)")
            .iter()
            .map(|n| n / 1e3)
            .collect(),
        1,
        &[],
    );
    let ms = |id: &str| -> Vec<f64> {
        criterion_samples(&format!("evaluate 500 processes/{id}"))
            .iter()
            .map(|n| n / 1e6)
            .collect()
    };
    let build = ms("build sample from ProcessRecords");
    report.row(
        "build the sample from 500 `ProcessRecord`s (ms)",
        build.clone(),
        2,
        &[],
    );
    let baseline = ms("baseline");
    for name in TEMPLATES {
        let eval = ms(name);
        report.row(
            format!("evaluate `{name}` on 500 processes / 5,000 series (ms)"),
            eval.clone(),
            2,
            &[],
        );
        if name != "baseline" {
            // CPU share of one 10 s interval: build the sample once, evaluate both variants.
            let pct: Vec<f64> = quantile_sum(&[build.clone(), baseline.clone(), eval])
                .iter()
                .map(|ms| ms / 10_000.0 * 100.0)
                .collect();
            report.row(
                format!(
                    "agent work per 10 s interval, sample + `baseline` + `{name}` (% of one core)"
                ),
                pct,
                3,
                &[Target::find(&TARGETS, "agent-cpu")],
            );
        }
    }
    report.row(
        "parse the node_exporter exposition, 1,092 series, 104 KB (ms)",
        criterion_samples("exposition/parse node_exporter (1,092 series)")
            .iter()
            .map(|n| n / 1e6)
            .collect(),
        2,
        &[],
    );
    let body = format!(
        "{}\n\nConfiguration: render + validate latency over {rounds} rounds of {iterations} \
timed calls per case (after warm-up calls), min/median/max over the rounds of each round's \
p50, p99 and max; every other figure from criterion (1 s warm-up, 3 s measurement, 50 \
samples: min/median/max over the samples, each the mean of its iterations). The agent's \
share of a core per interval adds the k-th smallest samples of building the sample, \
evaluating `baseline` and evaluating the candidate.\n\n{}",
        machine.describe(),
        report.render()
    );
    println!("{body}");
    write_generated("pipeline", COMMAND, &body);
}

fn main() {
    let machine = Machine::read();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    render_and_validate(&mut c);
    evaluation(&mut c);
    c.final_summary();
    // `cargo bench` passes `--bench` and measures; `cargo test` runs this target without
    // it, as a smoke test whose (unoptimised) figures mean nothing and touch no document.
    if phoenix_bench::measuring() {
        let rounds = phoenix_bench::env_or("PHOENIX_BENCH_REPS", 3);
        let iterations = 20_000;
        let latency = render_latency(rounds, 2_000, iterations);
        report(machine, latency, rounds, iterations);
    } else {
        render_latency(1, 2, 20);
    }
}
