//! How each [`Stage`] maps onto stock `otelcol-contrib` components: the render model the
//! handlebars document is filled from.
//!
//! Entity-level decisions use resource-attribute marks (`phoenix.mark.*`): a `transform`
//! marks resources (critical processes; processes whose ranking metric passes a threshold,
//! set from the datapoint context), later `filter` conditions test the marks, and a final
//! `transform` deletes them. Re-aggregation after labels change is `groupbyattrs` (with no
//! keys it compacts resources that became identical and merges their metrics by name) then
//! `metricstransform` `aggregate_labels` with `sum`.

use serde::Serialize;

use super::escape::ottl_string;
use crate::measure::Variant;
use crate::pipeline::pattern::Pattern;
use crate::pipeline::sample::names;
use crate::pipeline::spec::{
    ExporterSpec, FilterAction, PipelineSpec, RankBy, ReceiverSpec, Stage,
};

/// Where the health check listens.
pub const HEALTH_CHECK_ENDPOINT: &str = "localhost:13133";

const MARK_PREFIX: &str = "phoenix.mark.";
const MARK_CRITICAL: &str = "phoenix.mark.critical";
const MARK_OTHER: &str = "phoenix.mark.other";

/// The data a collector document is rendered from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CollectorModel {
    template: String,
    /// Where the Collector form departs from the native semantics, written as comments at
    /// the top of the document (built from numbers and enums only).
    notes: Vec<String>,
    health_check_endpoint: String,
    hostmetrics: Vec<HostmetricsModel>,
    prometheus_receivers: Vec<PrometheusReceiverModel>,
    has_processors: bool,
    memory_limiters: Vec<MemoryLimiterModel>,
    transforms: Vec<TransformModel>,
    filters: Vec<FilterModel>,
    groupbyattrs: Vec<GroupByAttrsModel>,
    metricstransforms: Vec<MetricsTransformModel>,
    resources: Vec<ResourceModel>,
    batches: Vec<BatchModel>,
    prometheus_exporters: Vec<EndpointModel>,
    otlphttp_exporters: Vec<EndpointModel>,
    pipelines: Vec<PipelineModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct HostmetricsModel {
    id: String,
    collection_interval_secs: u32,
    cpu_utilization: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct PrometheusReceiverModel {
    id: String,
    job_name: String,
    scrape_interval_secs: u32,
    targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct MemoryLimiterModel {
    id: String,
    check_interval_secs: u32,
    limit_mib: u32,
    spike_limit_mib: u32,
}

#[derive(Debug, Clone, Serialize)]
struct TransformModel {
    id: String,
    groups: Vec<StatementGroup>,
}

#[derive(Debug, Clone, Serialize)]
struct StatementGroup {
    context: &'static str,
    statements: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct FilterModel {
    id: String,
    conditions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct GroupByAttrsModel {
    id: String,
    keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct MetricsTransformModel {
    id: String,
    include: String,
    match_type: &'static str,
    /// `update` in place, or `insert` a copy named `new_name`.
    action: &'static str,
    new_name: String,
    label_set: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct ResourceModel {
    id: String,
    key: String,
    value: String,
}

#[derive(Debug, Clone, Serialize)]
struct BatchModel {
    id: String,
    send_batch_size: u32,
    timeout_secs: u32,
}

#[derive(Debug, Clone, Serialize)]
struct EndpointModel {
    id: String,
    endpoint: String,
    /// Prometheus exporter: how long a series nobody updates stays exposed, seconds.
    metric_expiration_secs: u32,
}

#[derive(Debug, Clone, Serialize)]
struct PipelineModel {
    name: String,
    receivers: Vec<String>,
    processors: Vec<String>,
    exporters: Vec<String>,
}

/// Two pipelines need the same receiver id with different settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConflict {
    /// The receiver id.
    pub id: String,
}

/// The collection interval of `spec`'s receivers (they share one in built-in templates).
fn collection_interval_secs(spec: &PipelineSpec) -> u32 {
    spec.receivers
        .iter()
        .map(|r| match r {
            ReceiverSpec::HostmetricsProcess(h) => h.collection_interval_secs,
            ReceiverSpec::Prometheus(p) => p.scrape_interval_secs,
        })
        .max()
        .unwrap_or(10)
}

/// The Prometheus exporter exposes the last value of every series until it expires (5 minutes
/// by default), so a process that ended would stay visible long after the native runtime
/// stopped reporting it. A live series is updated at least every interval plus the batch
/// timeout (at most one interval), so three intervals never expire a live series and drop a
/// vanished one within three intervals.
#[must_use]
pub fn metric_expiration_secs(interval_secs: u32) -> u32 {
    interval_secs.saturating_mul(3)
}

/// Helper metric: a process's CPU utilisation summed over states, which ranking thresholds
/// test (the native runtime sums the states); dropped right after.
pub const RANK_CPU_METRIC: &str = "phoenix.rank.cpu";

/// The point attributes of the process scraper's metrics, which re-aggregation keeps.
const PROCESS_POINT_LABELS: [&str; 2] = [names::STATE, names::DIRECTION];

impl CollectorModel {
    /// An empty model for `template`.
    #[must_use]
    pub fn new(template: &str) -> Self {
        Self {
            template: template.to_owned(),
            health_check_endpoint: HEALTH_CHECK_ENDPOINT.to_owned(),
            ..Self::default()
        }
    }

    /// Adds the pipeline of `spec`; receivers with the same id are shared between pipelines.
    ///
    /// # Errors
    /// When a receiver id is already used with other settings.
    pub fn add_pipeline(
        &mut self,
        spec: &PipelineSpec,
        variant: Option<Variant>,
    ) -> Result<(), ReceiverConflict> {
        let prefix = variant.map_or(String::new(), |v| format!("{v}_"));
        let mut receivers = Vec::new();
        for r in &spec.receivers {
            receivers.push(self.add_receiver(r)?);
        }
        let interval_secs = collection_interval_secs(spec);
        let mut stages = StageRenderer {
            model: self,
            prefix: &prefix,
            processors: Vec::new(),
            critical_mark: false,
            critical_metrics: Vec::new(),
            pending_keep_marks: Vec::new(),
            marked: false,
        };
        let trailing_batch = matches!(spec.stages.last(), Some(Stage::Batch(_)));
        let body = if trailing_batch {
            &spec.stages[..spec.stages.len() - 1]
        } else {
            &spec.stages[..]
        };
        for (i, stage) in body.iter().enumerate() {
            let later_aggregate_other = spec.stages[i + 1..]
                .iter()
                .any(|s| matches!(s, Stage::AggregateOther(_)));
            stages.stage(i, stage, later_aggregate_other);
        }
        let mut processors = stages.finish(variant);
        if let Some(Stage::Batch(b)) = spec.stages.last().filter(|_| trailing_batch) {
            let id = format!("batch/{prefix}{}_batch", spec.stages.len() - 1);
            self.batches.push(BatchModel {
                id: id.clone(),
                send_batch_size: b.send_batch_size,
                timeout_secs: b.timeout_secs,
            });
            processors.push(id);
        }
        let suffix = variant.map_or(String::new(), |v| format!("/{v}"));
        let mut exporters = Vec::new();
        for (i, e) in spec.exporters.iter().enumerate() {
            let n = if i == 0 {
                String::new()
            } else {
                format!("_{i}")
            };
            match e {
                ExporterSpec::Prometheus { endpoint } => {
                    let id = format!("prometheus{suffix}{n}");
                    self.prometheus_exporters.push(EndpointModel {
                        id: id.clone(),
                        endpoint: endpoint.clone(),
                        metric_expiration_secs: metric_expiration_secs(interval_secs),
                    });
                    exporters.push(id);
                }
                ExporterSpec::OtlpHttp { endpoint } => {
                    let id = format!("otlphttp{suffix}{n}");
                    self.otlphttp_exporters.push(EndpointModel {
                        id: id.clone(),
                        endpoint: endpoint.clone(),
                        metric_expiration_secs: 0,
                    });
                    exporters.push(id);
                }
            }
        }
        self.has_processors |= !processors.is_empty();
        self.pipelines.push(PipelineModel {
            name: format!("metrics{suffix}"),
            receivers,
            processors,
            exporters,
        });
        Ok(())
    }

    fn add_receiver(&mut self, r: &ReceiverSpec) -> Result<String, ReceiverConflict> {
        match r {
            ReceiverSpec::HostmetricsProcess(h) => {
                let model = HostmetricsModel {
                    id: "hostmetrics".to_owned(),
                    collection_interval_secs: h.collection_interval_secs,
                    cpu_utilization: h.cpu_utilization,
                };
                match self.hostmetrics.iter().find(|m| m.id == model.id) {
                    Some(existing) if *existing != model => Err(ReceiverConflict { id: model.id }),
                    Some(_) => Ok(model.id),
                    None => {
                        let id = model.id.clone();
                        self.hostmetrics.push(model);
                        Ok(id)
                    }
                }
            }
            ReceiverSpec::Prometheus(p) => {
                let model = PrometheusReceiverModel {
                    id: format!("prometheus/{}", p.job_name),
                    job_name: p.job_name.clone(),
                    scrape_interval_secs: p.scrape_interval_secs,
                    targets: p.targets.clone(),
                };
                match self.prometheus_receivers.iter().find(|m| m.id == model.id) {
                    Some(existing) if *existing != model => Err(ReceiverConflict { id: model.id }),
                    Some(_) => Ok(model.id),
                    None => {
                        let id = model.id.clone();
                        self.prometheus_receivers.push(model);
                        Ok(id)
                    }
                }
            }
        }
    }
}

struct StageRenderer<'a> {
    model: &'a mut CollectorModel,
    prefix: &'a str,
    processors: Vec<String>,
    critical_mark: bool,
    critical_metrics: Vec<Pattern>,
    pending_keep_marks: Vec<String>,
    marked: bool,
}

/// `(is a process)` in the datapoint context.
const DP_IS_PROCESS: &str = "(resource.attributes[\"process.pid\"] != nil or resource.attributes[\"process.executable.name\"] != nil)";
/// `(is a process)` in the resource context.
const RES_IS_PROCESS: &str =
    "(attributes[\"process.pid\"] != nil or attributes[\"process.executable.name\"] != nil)";

fn regex_of(patterns: &[Pattern]) -> String {
    patterns
        .iter()
        .map(Pattern::to_regex)
        .collect::<Vec<_>>()
        .join("|")
}

fn attr(path: &str, key: &str) -> String {
    format!("{path}[{}]", ottl_string(key))
}

impl StageRenderer<'_> {
    fn id(&self, component: &str, index: usize, kind: &str) -> String {
        format!("{component}/{}{index}_{kind}", self.prefix)
    }

    /// ` and <not protected>` for datapoint-context drop conditions.
    fn guards(&self) -> String {
        let mut g = String::new();
        if self.critical_mark {
            g.push_str(&format!(
                " and {} != true",
                attr("resource.attributes", MARK_CRITICAL)
            ));
        }
        if !self.critical_metrics.is_empty() {
            g.push_str(&format!(
                " and not IsMatch(metric.name, {})",
                ottl_string(&regex_of(&self.critical_metrics))
            ));
        }
        g
    }

    fn note(&mut self, text: String) {
        let pipeline = self.prefix.trim_end_matches('_');
        self.model.notes.push(if pipeline.is_empty() {
            text
        } else {
            format!("{pipeline} {text}")
        });
    }

    fn transform(&mut self, id: String, groups: Vec<StatementGroup>) {
        self.model.transforms.push(TransformModel {
            id: id.clone(),
            groups,
        });
        self.processors.push(id);
    }

    fn filter(&mut self, id: String, conditions: Vec<String>) {
        self.model.filters.push(FilterModel {
            id: id.clone(),
            conditions,
        });
        self.processors.push(id);
    }

    /// `groupbyattrs` compaction then `metricstransform` sum over the process metrics.
    /// `metricstransform` only adds points with equal attributes *and* timestamps, and the
    /// process scraper stamps each process with its own time: the points `where_dp`
    /// (datapoint-context condition selecting the points to merge) selects get one common
    /// time first (0, which no scraped point has), so they merge whatever instants they were
    /// scraped or processed at, and the merged points are stamped with the processing time
    /// afterwards. (Aligning on a truncated clock instead splits a sum whenever a scrape or
    /// a batch straddles a boundary of the truncation.)
    fn reaggregate(&mut self, index: usize, kind: &str, dropped: &[String], where_dp: &str) {
        let id = self.id("transform", index, &format!("{kind}_align"));
        let statement = format!("set(time_unix_nano, 0) where {where_dp}");
        self.transform(
            id,
            vec![StatementGroup {
                context: "datapoint",
                statements: vec![statement],
            }],
        );
        let id = self.id("groupbyattrs", index, kind);
        self.model.groupbyattrs.push(GroupByAttrsModel {
            id: id.clone(),
            keys: Vec::new(),
        });
        self.processors.push(id);
        let id = self.id("metricstransform", index, kind);
        self.model.metricstransforms.push(MetricsTransformModel {
            id: id.clone(),
            include: "^process\\.".to_owned(),
            match_type: "regexp",
            action: "update",
            new_name: String::new(),
            label_set: PROCESS_POINT_LABELS
                .iter()
                .filter(|l| !dropped.iter().any(|d| d == *l))
                .map(|l| (*l).to_owned())
                .collect(),
        });
        self.processors.push(id);
        let id = self.id("transform", index, &format!("{kind}_stamp"));
        self.transform(
            id,
            vec![StatementGroup {
                context: "datapoint",
                statements: vec!["set(time, Now()) where time_unix_nano == 0".to_owned()],
            }],
        );
    }

    fn stage(&mut self, index: usize, stage: &Stage, later_aggregate_other: bool) {
        match stage {
            Stage::MemoryLimit(m) => {
                let id = self.id("memory_limiter", index, "memory_limit");
                self.model.memory_limiters.push(MemoryLimiterModel {
                    id: id.clone(),
                    check_interval_secs: m.check_interval_secs,
                    limit_mib: m.limit_mib,
                    spike_limit_mib: m.spike_limit_mib,
                });
                self.processors.push(id);
            }
            Stage::Batch(b) => {
                let id = self.id("batch", index, "batch");
                self.model.batches.push(BatchModel {
                    id: id.clone(),
                    send_batch_size: b.send_batch_size,
                    timeout_secs: b.timeout_secs,
                });
                self.processors.push(id);
            }
            Stage::KeepCritical(k) => {
                if !k.processes.is_empty() {
                    let statement = format!(
                        "set({}, true) where IsMatch({}, {})",
                        attr("attributes", MARK_CRITICAL),
                        attr("attributes", names::EXECUTABLE_NAME),
                        ottl_string(&regex_of(&k.processes))
                    );
                    let id = self.id("transform", index, "keep_critical");
                    self.transform(
                        id,
                        vec![StatementGroup {
                            context: "resource",
                            statements: vec![statement],
                        }],
                    );
                    self.critical_mark = true;
                    self.marked = true;
                }
                for m in &k.metrics {
                    if !self.critical_metrics.contains(m) {
                        self.critical_metrics.push(m.clone());
                    }
                }
            }
            Stage::Filter(f) => {
                let mut clauses = Vec::new();
                if !f.metrics.is_empty() {
                    clauses.push(format!(
                        "IsMatch(metric.name, {})",
                        ottl_string(&regex_of(&f.metrics))
                    ));
                }
                for l in &f.labels {
                    let re = ottl_string(&l.value.to_regex());
                    let point = attr("attributes", &l.key);
                    let resource = attr("resource.attributes", &l.key);
                    clauses.push(format!(
                        "(IsMatch({point}, {re}) or ({point} == nil and IsMatch({resource}, {re})))"
                    ));
                }
                let matched = clauses.join(" and ");
                let condition = match f.action {
                    FilterAction::Drop => format!("{matched}{}", self.guards()),
                    FilterAction::Keep => format!("not ({matched}){}", self.guards()),
                };
                let id = self.id("filter", index, "filter");
                self.filter(id, vec![condition]);
            }
            Stage::Threshold(t) => {
                if t.hysteresis_pct > 0.0 || t.auto_tune.is_some() {
                    self.note(format!(
                        "stage {index} (threshold): the Collector keeps no state between batches, so this config applies the starting thresholds without the hysteresis of the native runtime ({} %){}",
                        t.hysteresis_pct,
                        t.auto_tune.as_ref().map_or(String::new(), |a| format!(
                            " and without tuning toward {} series",
                            a.target_series
                        ))
                    ));
                }
                let mut keep = Vec::new();
                if t.min_cpu_utilization > 0.0 {
                    keep.push((RankBy::Cpu, t.min_cpu_utilization));
                }
                if t.min_memory_bytes > 0 {
                    #[allow(clippy::cast_precision_loss, reason = "byte thresholds")]
                    keep.push((RankBy::Memory, t.min_memory_bytes as f64));
                }
                self.demotion(index, "threshold", &keep, later_aggregate_other);
            }
            Stage::TopK(t) => {
                let threshold = match t.rank_by {
                    RankBy::Cpu => format!(
                        "whose CPU utilisation (summed over states) is >= {}",
                        t.collector_min_value
                    ),
                    RankBy::Memory => format!(
                        "whose resident memory is >= {} bytes",
                        t.collector_min_value
                    ),
                };
                self.note(format!(
                    "stage {index} (topk): the native runtime keeps the {} processes with the highest {}; stock Collector components cannot rank, so this config keeps every process {threshold}",
                    t.k,
                    match t.rank_by {
                        RankBy::Cpu => "CPU",
                        RankBy::Memory => "memory",
                    }
                ));
                // A zero threshold keeps everything, as a `threshold` stage's does.
                let keep: &[(RankBy, f64)] = if t.collector_min_value > 0.0 {
                    &[(t.rank_by, t.collector_min_value)]
                } else {
                    &[]
                };
                self.demotion(index, "topk", keep, later_aggregate_other);
            }
            Stage::AggregateOther(a) => {
                if self.pending_keep_marks.is_empty() {
                    // Natively a no-op when nothing was demoted before it.
                    return;
                }
                let not_kept = self
                    .pending_keep_marks
                    .iter()
                    .map(|k| format!("{} != true", attr("attributes", k)))
                    .collect::<Vec<_>>()
                    .join(" or ");
                let mut demoted = format!("{RES_IS_PROCESS} and ({not_kept})");
                if self.critical_mark {
                    demoted.push_str(&format!(
                        " and {} != true",
                        attr("attributes", MARK_CRITICAL)
                    ));
                }
                let other = attr("attributes", MARK_OTHER);
                let statements = vec![
                    format!("set({other}, true) where {demoted}"),
                    format!(
                        "keep_matching_keys(attributes, {}) where {other} == true",
                        ottl_string("^phoenix\\.mark\\.other\\z")
                    ),
                    format!(
                        "set({}, {}) where {other} == true",
                        attr("attributes", names::EXECUTABLE_NAME),
                        ottl_string(&a.other_value)
                    ),
                ];
                let id = self.id("transform", index, "aggregate_other");
                self.transform(
                    id,
                    vec![StatementGroup {
                        context: "resource",
                        statements,
                    }],
                );
                self.reaggregate(
                    index,
                    "aggregate_other",
                    &[],
                    &format!("{} == true", attr("resource.attributes", MARK_OTHER)),
                );
                self.pending_keep_marks.clear();
                self.marked = true;
            }
            Stage::DropLabels(d) => {
                let deletes = |path: &str| -> Vec<String> {
                    d.labels
                        .iter()
                        .map(|k| format!("delete_key({path}, {})", ottl_string(k)))
                        .collect()
                };
                let id = self.id("transform", index, "drop_labels");
                self.transform(
                    id,
                    vec![
                        StatementGroup {
                            context: "resource",
                            statements: deletes("attributes"),
                        },
                        StatementGroup {
                            context: "datapoint",
                            statements: deletes("attributes"),
                        },
                    ],
                );
                self.reaggregate(index, "drop_labels", &d.labels, "true");
            }
            Stage::AggregateBy(a) => {
                let mut keep: Vec<Pattern> = a
                    .resource_labels
                    .iter()
                    .map(|k| Pattern::new(k.replace(['*', '?'], "_")))
                    .collect();
                keep.push(Pattern::new(format!("{MARK_PREFIX}*")));
                let statement = format!(
                    "keep_matching_keys(attributes, {}) where {RES_IS_PROCESS}",
                    ottl_string(&regex_of(&keep))
                );
                let id = self.id("transform", index, "aggregate_by");
                self.transform(
                    id,
                    vec![StatementGroup {
                        context: "resource",
                        statements: vec![statement],
                    }],
                );
                self.reaggregate(index, "aggregate_by", &[], DP_IS_PROCESS);
            }
        }
    }

    /// `topk`/`threshold`: mark the resources whose ranking metric passes a value, then either
    /// drop the unmarked process entities or leave them to a later `aggregate_other`.
    fn demotion(
        &mut self,
        index: usize,
        kind: &str,
        keep_at_least: &[(RankBy, f64)],
        later_aggregate_other: bool,
    ) {
        if keep_at_least.is_empty() {
            return;
        }
        let mark = format!("{MARK_PREFIX}keep_{index}");
        let ranks_cpu = keep_at_least.iter().any(|(r, _)| *r == RankBy::Cpu);
        if ranks_cpu {
            // The native runtime tests a process's CPU summed over states: insert that sum
            // as a helper metric (aggregate_labels over no label, per process resource).
            let id = self.id("metricstransform", index, &format!("{kind}_rank"));
            self.model.metricstransforms.push(MetricsTransformModel {
                id: id.clone(),
                include: names::PROCESS_CPU_UTILIZATION.to_owned(),
                match_type: "strict",
                action: "insert",
                new_name: RANK_CPU_METRIC.to_owned(),
                label_set: Vec::new(),
            });
            self.processors.push(id);
        }
        let statements = keep_at_least
            .iter()
            .map(|(rank, min)| {
                let (metric, value) = match rank {
                    RankBy::Cpu => (RANK_CPU_METRIC, format!("value_double >= {min}")),
                    #[allow(
                        clippy::cast_possible_truncation,
                        reason = "byte thresholds are integers"
                    )]
                    RankBy::Memory => (rank.metric(), format!("value_int >= {}", *min as i64)),
                };
                format!(
                    "set({}, true) where metric.name == {} and {value}",
                    attr("resource.attributes", &mark),
                    ottl_string(metric)
                )
            })
            .collect();
        let id = self.id("transform", index, kind);
        self.transform(
            id,
            vec![StatementGroup {
                context: "datapoint",
                statements,
            }],
        );
        self.marked = true;
        let mut conditions = Vec::new();
        if ranks_cpu {
            conditions.push(format!("metric.name == {}", ottl_string(RANK_CPU_METRIC)));
        }
        if later_aggregate_other {
            self.pending_keep_marks.push(mark);
        } else {
            conditions.push(format!(
                "{DP_IS_PROCESS} and {} != true{}",
                attr("resource.attributes", &mark),
                self.guards()
            ));
        }
        if !conditions.is_empty() {
            let id = self.id("filter", index, kind);
            self.filter(id, conditions);
        }
    }

    fn finish(mut self, variant: Option<Variant>) -> Vec<String> {
        if self.marked {
            let statement = format!(
                "delete_matching_keys(attributes, {})",
                ottl_string("^phoenix\\.mark\\.")
            );
            let id = format!("transform/{}unmark", self.prefix);
            self.transform(
                id,
                vec![StatementGroup {
                    context: "resource",
                    statements: vec![statement],
                }],
            );
        }
        if let Some(v) = variant {
            let id = format!("resource/{v}");
            self.model.resources.push(ResourceModel {
                id: id.clone(),
                key: "phoenix.variant".to_owned(),
                value: v.to_string(),
            });
            self.processors.push(id);
        }
        self.processors
    }
}
