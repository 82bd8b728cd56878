//! The built-in templates: each is a parameter schema, a [`PipelineSpec`] builder and the
//! collector document it renders with.

use serde::Serialize;

use super::params::{ParamKind, ParamSpec, Params};
use super::render::COLLECTOR_DOCUMENT;
use super::spec::{
    AggregateByStage, AggregateOtherStage, AutoTune, BatchStage, ExporterSpec,
    HostmetricsProcessReceiver, KeepCriticalStage, MAX_TOPK, MemoryLimitStage, PipelineSpec,
    PrometheusReceiver, RankBy, ReceiverSpec, Stage, ThresholdStage, TopKStage,
};
use super::{ParamValue, Pattern, RenderContext};
use crate::measure::Variant;
use crate::pipeline::sample::names;

/// Builds a spec from validated parameters and the render context.
pub type SpecBuilder = fn(&Params, &RenderContext) -> PipelineSpec;

/// A template: what it is, its parameters, how it builds a spec and which document renders it.
#[derive(Debug, Clone)]
pub struct TemplateDef {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// How the Collector config relates to the native semantics.
    pub collector_notes: String,
    /// Parameters.
    pub params: Vec<ParamSpec>,
    /// The spec builder.
    pub build: SpecBuilder,
    /// Name of the registered handlebars document that renders it.
    pub document: String,
}

/// What an API lists about a template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateInfo {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// How the Collector config relates to the native semantics.
    pub collector_notes: String,
    /// Parameters.
    pub params: Vec<ParamSpec>,
}

impl TemplateDef {
    /// The public description.
    #[must_use]
    pub fn info(&self) -> TemplateInfo {
        TemplateInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            collector_notes: self.collector_notes.clone(),
            params: self.params.clone(),
        }
    }
}

const MIB: u64 = 1024 * 1024;
/// Prometheus exporter port for the baseline (and for a pipeline outside an experiment).
pub const BASELINE_PROMETHEUS_PORT: i64 = 9464;
/// Prometheus exporter port for the candidate.
pub const CANDIDATE_PROMETHEUS_PORT: i64 = 9465;

fn s(v: &str) -> ParamValue {
    ParamValue::String(v.to_owned())
}

fn common_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new(
            "collection_interval",
            ParamKind::Duration {
                min_secs: 1,
                max_secs: 3600,
            },
            s("10s"),
            "How often processes are scraped (and Prometheus targets, if any).",
        ),
        ParamSpec::new(
            "protect_critical",
            ParamKind::Bool,
            ParamValue::Bool(true),
            "Protect the experiment's critical processes and metrics in this pipeline (keep_critical). Turn off only to measure what the pipeline alone would hide: critical coverage is measured either way.",
        ),
        ParamSpec::new(
            "process_metrics",
            ParamKind::Bool,
            ParamValue::Bool(true),
            "Scrape per-process metrics (hostmetrics `process` scraper).",
        ),
        ParamSpec::new(
            "prometheus_targets",
            ParamKind::Targets { max_items: 32 },
            ParamValue::List(vec![]),
            "`host:port` Prometheus endpoints to scrape too (job `node`), such as node_exporter on `localhost:9100`.",
        ),
        ParamSpec::new(
            "exporter",
            ParamKind::Enum {
                values: vec!["prometheus".to_owned(), "otlphttp".to_owned()],
            },
            s("prometheus"),
            "Where the output goes: a Prometheus endpoint to be scraped, or OTLP/HTTP.",
        ),
        ParamSpec::new(
            "prometheus_port",
            ParamKind::Int { min: 0, max: 65535 },
            ParamValue::Int(0),
            "Port of the Prometheus exporter on 0.0.0.0; 0 picks 9464 for a baseline and 9465 for a candidate.",
        ),
        ParamSpec::new(
            "otlp_endpoint",
            ParamKind::Url,
            s("http://localhost:4318"),
            "OTLP/HTTP base URL when `exporter` is `otlphttp`.",
        ),
        ParamSpec::new(
            "memory_limit_mib",
            ParamKind::Int {
                min: 32,
                max: 65536,
            },
            ParamValue::Int(512),
            "Collector memory limit (memory_limiter), MiB; the spike allowance is a quarter of it.",
        ),
        ParamSpec::new(
            "batch_size",
            ParamKind::Int {
                min: 1,
                max: 1_000_000,
            },
            ParamValue::Int(8192),
            "Data points per exported batch.",
        ),
    ]
}

fn topk_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::new(
            "k",
            ParamKind::Int {
                min: 1,
                max: i64::from(MAX_TOPK),
            },
            ParamValue::Int(10),
            "Native runtime: how many processes to keep per interval. The Collector form cannot rank and ignores it: it applies `collector_min_cpu` (or `collector_min_memory_mib`) instead.",
        ),
        ParamSpec::new(
            "rank_by",
            ParamKind::Enum {
                values: vec!["cpu".to_owned(), "memory".to_owned()],
            },
            s("cpu"),
            "Rank processes by CPU utilisation or by resident memory.",
        ),
        ParamSpec::new(
            "collector_min_cpu",
            ParamKind::Float { min: 0.0, max: 1.0 },
            ParamValue::Float(0.01),
            "Collector form when ranking by CPU: keep every process whose utilisation summed over states is at or above this (0 to 1 of all cores); this, not `k`, decides what the Collector keeps.",
        ),
        ParamSpec::new(
            "collector_min_memory_mib",
            ParamKind::Int {
                min: 0,
                max: 1_048_576,
            },
            ParamValue::Int(256),
            "Collector form when ranking by memory: keep every process at or above this resident size, MiB; this, not `k`, decides what the Collector keeps.",
        ),
    ]
}

fn with_common(mut specific: Vec<ParamSpec>) -> Vec<ParamSpec> {
    let mut all = common_params();
    all.append(&mut specific);
    all
}

#[allow(
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation,
    reason = "bounded by the schema"
)]
fn u32_param(p: &Params, name: &str) -> u32 {
    p.int(name).clamp(0, i64::from(u32::MAX)) as u32
}

/// Receivers, memory limiter and critical processes: the front every template shares.
/// Every template enables `process.cpu.utilization`, so that the baseline and the candidate
/// of an experiment can share one receiver (and so that the collector's baseline carries the
/// same series as the native one, whose samples include it).
fn front(p: &Params, ctx: &RenderContext) -> (Vec<ReceiverSpec>, Vec<Stage>) {
    let interval = u32::try_from(p.duration_secs("collection_interval")).unwrap_or(10);
    let mut receivers = Vec::new();
    if p.bool("process_metrics") {
        receivers.push(ReceiverSpec::HostmetricsProcess(
            HostmetricsProcessReceiver {
                collection_interval_secs: interval,
                cpu_utilization: true,
            },
        ));
    }
    if !p.list("prometheus_targets").is_empty() {
        receivers.push(ReceiverSpec::Prometheus(PrometheusReceiver {
            job_name: "node".to_owned(),
            scrape_interval_secs: interval,
            targets: p.list("prometheus_targets").to_vec(),
        }));
    }
    let limit = u32_param(p, "memory_limit_mib");
    let mut stages = vec![Stage::MemoryLimit(MemoryLimitStage {
        limit_mib: limit,
        spike_limit_mib: limit / 4,
        check_interval_secs: 1,
    })];
    let protect = p.bool("protect_critical");
    if protect && (!ctx.critical_processes.is_empty() || !ctx.critical_metrics.is_empty()) {
        stages.push(Stage::KeepCritical(KeepCriticalStage {
            processes: ctx
                .critical_processes
                .iter()
                .map(|c| Pattern::new(c.as_str()))
                .collect(),
            metrics: ctx
                .critical_metrics
                .iter()
                .map(|c| Pattern::new(c.as_str()))
                .collect(),
        }));
    }
    (receivers, stages)
}

/// Batch and exporter: the back every template shares.
fn back(p: &Params, ctx: &RenderContext, stages: &mut Vec<Stage>) -> Vec<ExporterSpec> {
    stages.push(Stage::Batch(BatchStage {
        send_batch_size: u32_param(p, "batch_size"),
        // Flush at least every 10 s, sooner when scraping more often.
        timeout_secs: u32::try_from(p.duration_secs("collection_interval").min(10)).unwrap_or(10),
    }));
    let exporter = if p.str("exporter") == "otlphttp" {
        ExporterSpec::OtlpHttp {
            endpoint: p.str("otlp_endpoint").to_owned(),
        }
    } else {
        let port = match p.int("prometheus_port") {
            0 if ctx.variant == Some(Variant::Candidate) => CANDIDATE_PROMETHEUS_PORT,
            0 => BASELINE_PROMETHEUS_PORT,
            port => port,
        };
        ExporterSpec::Prometheus {
            endpoint: format!("0.0.0.0:{port}"),
        }
    };
    vec![exporter]
}

fn rank_by(p: &Params) -> RankBy {
    if p.str("rank_by") == "memory" {
        RankBy::Memory
    } else {
        RankBy::Cpu
    }
}

fn topk_stage(p: &Params) -> Stage {
    let rank_by = rank_by(p);
    #[allow(clippy::cast_precision_loss, reason = "MiB parameter")]
    let collector_min_value = match rank_by {
        RankBy::Cpu => p.float("collector_min_cpu"),
        RankBy::Memory => (p.int("collector_min_memory_mib").max(0) as u64 * MIB) as f64,
    };
    Stage::TopK(TopKStage {
        k: u32_param(p, "k"),
        rank_by,
        collector_min_value,
    })
}

fn build_baseline(p: &Params, ctx: &RenderContext) -> PipelineSpec {
    let (receivers, mut stages) = front(p, ctx);
    let exporters = back(p, ctx, &mut stages);
    PipelineSpec {
        receivers,
        stages,
        exporters,
    }
}

fn build_topk(p: &Params, ctx: &RenderContext) -> PipelineSpec {
    let (receivers, mut stages) = front(p, ctx);
    stages.push(topk_stage(p));
    let exporters = back(p, ctx, &mut stages);
    PipelineSpec {
        receivers,
        stages,
        exporters,
    }
}

fn build_hybrid(p: &Params, ctx: &RenderContext) -> PipelineSpec {
    let (receivers, mut stages) = front(p, ctx);
    stages.push(topk_stage(p));
    stages.push(Stage::AggregateOther(AggregateOtherStage {
        other_value: p.str("other_name").to_owned(),
    }));
    let exporters = back(p, ctx, &mut stages);
    PipelineSpec {
        receivers,
        stages,
        exporters,
    }
}

fn build_adaptive(p: &Params, ctx: &RenderContext) -> PipelineSpec {
    let (receivers, mut stages) = front(p, ctx);
    let target = p.int("target_series");
    stages.push(Stage::Threshold(ThresholdStage {
        min_cpu_utilization: p.float("min_cpu_utilization"),
        #[allow(clippy::cast_sign_loss, reason = "bounded by the schema")]
        min_memory_bytes: p.int("min_memory_mib").max(0) as u64 * MIB,
        hysteresis_pct: p.float("hysteresis_pct"),
        auto_tune: (target > 0).then(|| AutoTune {
            #[allow(clippy::cast_sign_loss, reason = "checked positive")]
            target_series: target as u64,
            tolerance_pct: p.float("tolerance_pct"),
            step_pct: p.float("step_pct"),
        }),
    }));
    let exporters = back(p, ctx, &mut stages);
    PipelineSpec {
        receivers,
        stages,
        exporters,
    }
}

fn build_aggregate(p: &Params, ctx: &RenderContext) -> PipelineSpec {
    let (receivers, mut stages) = front(p, ctx);
    stages.push(Stage::AggregateBy(AggregateByStage {
        resource_labels: p.list("group_by").to_vec(),
    }));
    let exporters = back(p, ctx, &mut stages);
    PipelineSpec {
        receivers,
        stages,
        exporters,
    }
}

/// The five built-in templates.
#[must_use]
pub fn builtin() -> Vec<TemplateDef> {
    let doc = COLLECTOR_DOCUMENT.to_owned();
    vec![
        TemplateDef {
            name: "baseline".to_owned(),
            description: "Everything the process scraper reports, unreduced: the reference a candidate is measured against.".to_owned(),
            collector_notes: "Exact: hostmetrics (process scraper) -> memory_limiter -> batch -> exporter.".to_owned(),
            params: common_params(),
            build: build_baseline,
            document: doc.clone(),
        },
        TemplateDef {
            name: "topk".to_owned(),
            description: "Native runtime: keeps the K processes with the highest CPU (or memory) each interval, plus the critical processes; drops the rest. Collector form: a threshold (`collector_min_cpu` / `collector_min_memory_mib`), not a top K.".to_owned(),
            collector_notes: "A threshold, not a top K: stock Collector components cannot rank (no top-K processor; contrib issue #39423), so `k` does not reach the Collector. The rendered config sums each process's CPU utilisation over states (metricstransform insert), marks processes at or above `collector_min_cpu` (or whose memory is at or above `collector_min_memory_mib`) and drops the unmarked ones (filter); how many it keeps varies with load. The rendered YAML says so in a comment. Measured against a real Collector, it keeps exactly what the native engine keeps with that threshold.".to_owned(),
            params: with_common(topk_params()),
            build: build_topk,
            document: doc.clone(),
        },
        TemplateDef {
            name: "adaptive".to_owned(),
            description: "Drops processes whose CPU and memory both stay under thresholds, with hysteresis; optionally tunes the thresholds toward a series budget.".to_owned(),
            collector_notes: "Without state: the rendered config applies the starting thresholds (CPU summed over states by metricstransform, transform marks, filter drops) in every interval; the Collector keeps nothing between batches, so there is no hysteresis and no auto-tuning (the rendered YAML says so in a comment). Measured against a real Collector, one interval matches the native engine from a fresh state exactly.".to_owned(),
            params: with_common(vec![
                ParamSpec::new("min_cpu_utilization", ParamKind::Float { min: 0.0, max: 1.0 }, ParamValue::Float(0.005), "Keep a process using at least this CPU (0 to 1 of all cores); 0 disables the CPU test."),
                ParamSpec::new("min_memory_mib", ParamKind::Int { min: 0, max: 1_048_576 }, ParamValue::Int(256), "Keep a process with at least this resident memory, MiB; 0 disables the memory test."),
                ParamSpec::new("hysteresis_pct", ParamKind::Float { min: 0.0, max: 100.0 }, ParamValue::Float(20.0), "A kept process stays kept until it falls this far (percent) below the thresholds."),
                ParamSpec::new("target_series", ParamKind::Int { min: 0, max: 10_000_000 }, ParamValue::Int(0), "Tune the thresholds toward this many process series per interval; 0 keeps them fixed."),
                ParamSpec::new("tolerance_pct", ParamKind::Float { min: 0.0, max: 100.0 }, ParamValue::Float(20.0), "Dead band around `target_series`, percent."),
                ParamSpec::new("step_pct", ParamKind::Float { min: 1.0, max: 100.0 }, ParamValue::Float(25.0), "Threshold change per interval while outside the band, percent."),
            ]),
            build: build_adaptive,
            document: doc.clone(),
        },
        TemplateDef {
            name: "hybrid".to_owned(),
            description: "Critical processes in full, the top K by CPU (or memory) (in the Collector form: the processes over a threshold), and everything else rolled up into one `other` process so totals are preserved.".to_owned(),
            collector_notes: "The kept set is a threshold, as in `topk` (`collector_min_cpu` / `collector_min_memory_mib`; `k` does not reach the Collector). The roll-up is exact for the process scraper's metrics: transform rewrites unkept processes to `process.executable.name: other` and aligns their timestamps to the collection interval (metricstransform only adds points with equal timestamps, and the process scraper stamps each process with its own), groupbyattrs merges them, metricstransform sums (aggregate_labels over state/direction).".to_owned(),
            params: with_common({
                let mut p = topk_params();
                p.push(ParamSpec::new("other_name", ParamKind::String { max_len: 64 }, ParamValue::String(names::OTHER.to_owned()), "Executable name of the roll-up process."));
                p
            }),
            build: build_hybrid,
            document: doc.clone(),
        },
        TemplateDef {
            name: "aggregate".to_owned(),
            description: "Drops per-process identity (pid, command line, ...) and sums processes by the listed attributes, by default by executable name.".to_owned(),
            collector_notes: "Exact for the process scraper's metrics: transform keep_matching_keys on process resources and aligns their timestamps to the collection interval (metricstransform only adds points with equal timestamps, and the process scraper stamps each process with its own), groupbyattrs merges identical resources, metricstransform sums (aggregate_labels over state/direction).".to_owned(),
            params: with_common(vec![ParamSpec::new(
                "group_by",
                ParamKind::LabelKeys {
                    min_items: 1,
                    max_items: 8,
                },
                ParamValue::List(vec![names::EXECUTABLE_NAME.to_owned()]),
                "Resource attributes that identify a group.",
            )]),
            build: build_aggregate,
            document: doc,
        },
    ]
}
