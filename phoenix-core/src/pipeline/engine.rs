//! The native evaluation engine: runs a [`PipelineSpec`]'s stages on a [`Sample`] exactly as
//! documented on each stage, and measures what the output carries ([`VariantStats`]).
//!
//! Evaluation works on a copy of the sample's series with two flags each: `protected`
//! (set by `keep_critical`; no later stage drops or demotes it) and `demoted` (set by `topk`
//! and `threshold` on whole process entities; `aggregate_other` rolls demoted series up,
//! and whatever is still demoted at the end is dropped). Stages that rewrite labels
//! (`drop_labels`, `aggregate_by`, `aggregate_other`) sum the series that coincide, so sums
//! are preserved.
//!
//! The engine is pure and deterministic: the same spec, state and sample give the same
//! output. `threshold` with hysteresis or auto-tuning keeps state between intervals in the
//! [`Engine`]; [`evaluate`] runs one interval from a fresh state.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::encode::encoded_len;
use super::pattern::{Pattern, any_match};
use super::sample::{Labels, MetricKind, ResourceId, Sample, Series, Symbol, SymbolTable, names};
use super::spec::{
    AggregateByStage, DropLabelsStage, FilterAction, FilterStage, KeepCriticalStage, PipelineSpec,
    RankBy, Stage, ThresholdStage, TopKStage,
};
use crate::measure::{CriticalCoverage, Fidelity, LabelCardinality, VariantStats};

/// How many label keys [`VariantStats::top_labels`] lists.
pub const TOP_LABELS: usize = 10;

/// The result of evaluating one sample.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// What the pipeline emits.
    pub output: Sample,
    /// Statistics of the output (`eval_nanos` is left 0: the pure engine does not read clocks).
    pub stats: VariantStats,
    /// Series in the input.
    pub input_series: u64,
    /// Series in the input that belong to process entities.
    pub input_process_series: u64,
    /// Series in the output that belong to process entities (the `other` roll-up included).
    pub output_process_series: u64,
}

impl Evaluation {
    /// Reduction of process-entity series, percent (0 when the input has none).
    #[must_use]
    pub fn process_series_reduction_pct(&self) -> f64 {
        reduction_pct(self.input_process_series, self.output_process_series)
    }
}

/// `100 * (1 - after / before)`, 0 when `before` is 0.
#[must_use]
#[allow(
    clippy::cast_precision_loss,
    reason = "series counts are far below 2^53"
)]
pub fn reduction_pct(before: u64, after: u64) -> f64 {
    if before == 0 {
        0.0
    } else {
        100.0 * (1.0 - after as f64 / before as f64)
    }
}

/// Evaluates `spec` on `sample` from a fresh state.
#[must_use]
pub fn evaluate(spec: &PipelineSpec, sample: &Sample) -> Evaluation {
    Engine::new(spec.clone()).evaluate(sample)
}

/// A pipeline with its state across intervals.
#[derive(Debug, Clone)]
pub struct Engine {
    spec: PipelineSpec,
    critical: KeepCriticalStage,
    thresholds: HashMap<usize, ThresholdState>,
}

#[derive(Debug, Clone)]
struct ThresholdState {
    cpu: f64,
    memory: f64,
    kept: HashSet<u64>,
    /// Current auto-tune step factor and direction of the last move (+1 up, -1 down).
    step: f64,
    last_move: i8,
}

impl Engine {
    /// An engine for `spec`; critical coverage is measured against the spec's
    /// `keep_critical` stages.
    #[must_use]
    pub fn new(spec: PipelineSpec) -> Self {
        let critical = spec.critical();
        Self {
            spec,
            critical,
            thresholds: HashMap::new(),
        }
    }

    /// An engine that measures critical coverage against the given lists (an experiment's
    /// critical processes and metrics), whatever the spec protects.
    #[must_use]
    pub fn with_critical(spec: PipelineSpec, processes: &[String], metrics: &[String]) -> Self {
        let mut engine = Self::new(spec);
        engine.critical = KeepCriticalStage {
            processes: processes.iter().map(|p| Pattern::new(p.as_str())).collect(),
            metrics: metrics.iter().map(|p| Pattern::new(p.as_str())).collect(),
        };
        engine
    }

    /// The spec.
    #[must_use]
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The thresholds the `threshold` stage at `stage_index` will apply next
    /// (CPU utilisation, memory bytes), once it has run.
    #[must_use]
    pub fn current_thresholds(&self, stage_index: usize) -> Option<(f64, f64)> {
        self.thresholds.get(&stage_index).map(|t| (t.cpu, t.memory))
    }

    /// Statistics of `sample` itself, as a pipeline that changes nothing would report them.
    #[must_use]
    pub fn input_stats(&self, sample: &Sample) -> VariantStats {
        stats_of(sample, sample, &self.critical)
    }

    /// Statistics of `output`, produced from `input` by something other than this engine
    /// (the real Collector, whose output the otelcol runtime captures), measured exactly as
    /// an evaluation's are: series, points, Prometheus text bytes, top labels, fidelity and
    /// critical coverage against this engine's critical lists.
    #[must_use]
    pub fn output_stats(&self, input: &Sample, output: &Sample) -> VariantStats {
        stats_of(input, output, &self.critical)
    }

    /// Runs every stage on `sample`.
    pub fn evaluate(&mut self, sample: &Sample) -> Evaluation {
        let mut work = Work::from_sample(sample);
        for (index, stage) in self.spec.stages.iter().enumerate() {
            match stage {
                Stage::KeepCritical(k) => work.keep_critical(k),
                Stage::Filter(f) => work.filter(f),
                Stage::Threshold(t) => {
                    let state = self
                        .thresholds
                        .entry(index)
                        .or_insert_with(|| ThresholdState {
                            cpu: t.min_cpu_utilization,
                            #[allow(clippy::cast_precision_loss, reason = "byte thresholds")]
                            memory: t.min_memory_bytes as f64,
                            kept: HashSet::new(),
                            step: t
                                .auto_tune
                                .as_ref()
                                .map_or(1.0, |a| 1.0 + a.step_pct / 100.0),
                            last_move: 0,
                        });
                    work.threshold(t, state);
                }
                Stage::TopK(t) => work.topk(t),
                Stage::AggregateOther(a) => work.aggregate_other(&a.other_value),
                Stage::DropLabels(d) => work.drop_labels(d),
                Stage::AggregateBy(a) => work.aggregate_by(a),
                Stage::Batch(_) | Stage::MemoryLimit(_) => {}
            }
        }
        let output = work.finish();
        let stats = stats_of(sample, &output, &self.critical);
        Evaluation {
            input_series: sample.len() as u64,
            input_process_series: process_series(sample),
            output_process_series: process_series(&output),
            stats,
            output,
        }
    }
}

fn process_series(sample: &Sample) -> u64 {
    let flags: Vec<bool> = (0..sample.resources().len())
        .map(|i| sample.is_process_resource(ResourceId(u32::try_from(i).unwrap_or(u32::MAX))))
        .collect();
    sample
        .series()
        .iter()
        .filter(|s| flags[s.resource.0 as usize])
        .count() as u64
}

#[derive(Debug, Clone)]
struct WorkSeries {
    metric: Symbol,
    kind: MetricKind,
    resource: u32,
    attrs: Labels,
    value: f64,
    ts: i64,
    protected: bool,
    demoted: bool,
}

struct Work {
    symbols: Arc<SymbolTable>,
    resources: Vec<Labels>,
    is_process: Vec<bool>,
    critical: Vec<bool>,
    series: Vec<WorkSeries>,
}

impl Work {
    fn from_sample(sample: &Sample) -> Self {
        let resources = sample.resources().to_vec();
        let mut work = Self {
            symbols: Arc::clone(sample.symbols()),
            is_process: Vec::new(),
            critical: vec![false; resources.len()],
            resources,
            series: sample
                .series()
                .iter()
                .map(|s| WorkSeries {
                    metric: s.metric,
                    kind: s.kind,
                    resource: s.resource.0,
                    attrs: s.attributes.clone(),
                    value: s.value,
                    ts: s.timestamp_ms,
                    protected: false,
                    demoted: false,
                })
                .collect(),
        };
        work.is_process = work
            .resources
            .iter()
            .map(|r| work.is_process_labels(r))
            .collect();
        work
    }

    fn sym(&self, s: &str) -> Option<Symbol> {
        self.symbols.get(s)
    }

    fn is_process_labels(&self, labels: &Labels) -> bool {
        [names::PID, names::EXECUTABLE_NAME]
            .iter()
            .filter_map(|k| self.sym(k))
            .any(|k| labels.get(k).is_some())
    }

    fn executable(&self, resource: u32) -> Option<&str> {
        let key = self.sym(names::EXECUTABLE_NAME)?;
        self.resources[resource as usize]
            .get(key)
            .map(|v| self.symbols.resolve(v))
    }

    fn keep_critical(&mut self, k: &KeepCriticalStage) {
        if !k.processes.is_empty() {
            for r in 0..self.resources.len() {
                if self.is_process[r]
                    && let Some(exe) = self.executable(u32::try_from(r).unwrap_or(u32::MAX))
                    && any_match(&k.processes, exe)
                {
                    self.critical[r] = true;
                }
            }
        }
        let mut metric_cache: HashMap<Symbol, bool> = HashMap::new();
        for i in 0..self.series.len() {
            let s = &self.series[i];
            let by_metric = !k.metrics.is_empty()
                && *metric_cache
                    .entry(s.metric)
                    .or_insert_with(|| any_match(&k.metrics, self.symbols.resolve(s.metric)));
            let critical = self.critical[s.resource as usize];
            let s = &mut self.series[i];
            if critical || by_metric {
                s.protected = true;
                s.demoted = false;
            }
        }
    }

    fn filter(&mut self, f: &FilterStage) {
        let label_keys: Vec<(Option<Symbol>, &Pattern)> = f
            .labels
            .iter()
            .map(|l| (self.sym(&l.key), &l.value))
            .collect();
        let mut metric_cache: HashMap<Symbol, bool> = HashMap::new();
        let symbols = Arc::clone(&self.symbols);
        let resources = &self.resources;
        self.series.retain(|s| {
            if s.protected {
                return true;
            }
            let name_ok = f.metrics.is_empty()
                || *metric_cache
                    .entry(s.metric)
                    .or_insert_with(|| any_match(&f.metrics, symbols.resolve(s.metric)));
            let matched = name_ok
                && label_keys.iter().all(|(key, pattern)| {
                    key.and_then(|k| {
                        s.attrs
                            .get(k)
                            .or_else(|| resources[s.resource as usize].get(k))
                    })
                    .is_some_and(|v| pattern.matches(symbols.resolve(v)))
                });
            match f.action {
                FilterAction::Keep => matched,
                FilterAction::Drop => !matched,
            }
        });
    }

    /// Process entities that can still be demoted: not critical, with a live series.
    /// In resource order, each with the sum of `metric` over its live series.
    fn candidates(&self, metric: Option<Symbol>) -> Vec<(u32, f64)> {
        let mut value: HashMap<u32, f64> = HashMap::new();
        let mut order: Vec<u32> = Vec::new();
        for s in &self.series {
            let r = s.resource;
            if s.demoted || !self.is_process[r as usize] || self.critical[r as usize] {
                continue;
            }
            let v = value.entry(r).or_insert_with(|| {
                order.push(r);
                0.0
            });
            if Some(s.metric) == metric {
                *v += s.value;
            }
        }
        order.sort_unstable();
        order.into_iter().map(|r| (r, value[&r])).collect()
    }

    fn demote(&mut self, demoted: &HashSet<u32>) {
        for s in &mut self.series {
            if !s.protected && demoted.contains(&s.resource) {
                s.demoted = true;
            }
        }
    }

    fn topk(&mut self, t: &TopKStage) {
        let metric = self.sym(t.rank_by.metric());
        let mut entities = self.candidates(metric);
        let key = |v: f64| if v.is_nan() { f64::NEG_INFINITY } else { v };
        // Stable: ties keep resource (input) order.
        entities.sort_by(|a, b| key(b.1).total_cmp(&key(a.1)));
        let demoted: HashSet<u32> = entities
            .iter()
            .skip(t.k as usize)
            .map(|(r, _)| *r)
            .collect();
        self.demote(&demoted);
    }

    fn entity_key(&self, resource: u32) -> u64 {
        let mut h = DefaultHasher::new();
        let labels = &self.resources[resource as usize];
        for key in [names::PID, names::EXECUTABLE_NAME] {
            let v = self
                .sym(key)
                .and_then(|k| labels.get(k))
                .map(|v| self.symbols.resolve(v));
            v.hash(&mut h);
        }
        h.finish()
    }

    fn threshold(&mut self, t: &ThresholdStage, state: &mut ThresholdState) {
        let cpu_metric = self.sym(RankBy::Cpu.metric());
        let mem_metric = self.sym(RankBy::Memory.metric());
        let cpu = self.candidates(cpu_metric);
        let mem: HashMap<u32, f64> = self.candidates(mem_metric).into_iter().collect();
        let relief = 1.0 - t.hysteresis_pct / 100.0;
        let mut kept_now = HashSet::new();
        let mut demoted = HashSet::new();
        for (r, c) in cpu {
            let m = mem.get(&r).copied().unwrap_or(0.0);
            let key = self.entity_key(r);
            let scale = if state.kept.contains(&key) {
                relief
            } else {
                1.0
            };
            let (tc, tm) = (state.cpu * scale, state.memory * scale);
            let keep = (tc <= 0.0 && tm <= 0.0)
                || (state.cpu > 0.0 && c >= tc)
                || (state.memory > 0.0 && m >= tm);
            if keep {
                kept_now.insert(key);
            } else {
                demoted.insert(r);
            }
        }
        self.demote(&demoted);
        state.kept = kept_now;
        if let Some(a) = &t.auto_tune {
            let live = self
                .series
                .iter()
                .filter(|s| !s.demoted && self.is_process[s.resource as usize])
                .count();
            #[allow(clippy::cast_precision_loss, reason = "series counts")]
            let (live, target) = (live as f64, a.target_series as f64);
            let band = a.tolerance_pct / 100.0;
            #[allow(clippy::cast_precision_loss, reason = "byte thresholds")]
            let (cpu0, mem0) = (t.min_cpu_utilization, t.min_memory_bytes as f64);
            let clamp = |v: f64, initial: f64| v.clamp(initial / 1000.0, initial * 1000.0);
            let direction: i8 = if live > target * (1.0 + band) {
                1
            } else if live < target * (1.0 - band) {
                -1
            } else {
                0
            };
            // Overshooting the band flips the direction: halve the step (down to 1 %), so
            // the controller settles instead of oscillating around the target.
            if direction != 0 && direction == -state.last_move {
                state.step = (1.0 + (state.step - 1.0) / 2.0).max(1.01);
            }
            if direction != 0 {
                state.last_move = direction;
            }
            let adjust = match direction {
                1 => state.step,
                -1 => 1.0 / state.step,
                _ => 1.0,
            };
            if cpu0 > 0.0 {
                state.cpu = clamp(state.cpu * adjust, cpu0).min(1.0);
            }
            if mem0 > 0.0 {
                state.memory = clamp(state.memory * adjust, mem0);
            }
        }
    }

    /// Re-indexes identical resources and sums identical series.
    fn merge(&mut self) {
        let mut index: HashMap<Labels, u32> = HashMap::new();
        let mut resources = Vec::new();
        let mut is_process = Vec::new();
        let mut critical = Vec::new();
        let mut remap = Vec::with_capacity(self.resources.len());
        for (i, r) in self.resources.iter().enumerate() {
            let next = u32::try_from(resources.len()).unwrap_or(u32::MAX);
            let id = *index.entry(r.clone()).or_insert_with(|| {
                resources.push(r.clone());
                is_process.push(self.is_process[i]);
                critical.push(false);
                next
            });
            critical[id as usize] |= self.critical[i];
            remap.push(id);
        }
        self.resources = resources;
        self.is_process = is_process;
        self.critical = critical;
        type Key = (Symbol, MetricKind, u32, Labels, bool);
        let mut slots: HashMap<Key, usize> = HashMap::with_capacity(self.series.len());
        let mut merged: Vec<WorkSeries> = Vec::with_capacity(self.series.len());
        for mut s in std::mem::take(&mut self.series) {
            s.resource = remap[s.resource as usize];
            let key = (s.metric, s.kind, s.resource, s.attrs.clone(), s.demoted);
            match slots.get(&key) {
                Some(&slot) => {
                    let m = &mut merged[slot];
                    m.value += s.value;
                    m.ts = m.ts.max(s.ts);
                    m.protected |= s.protected;
                }
                None => {
                    slots.insert(key, merged.len());
                    merged.push(s);
                }
            }
        }
        self.series = merged;
    }

    fn intern(&mut self, s: &str) -> Symbol {
        if let Some(sym) = self.symbols.get(s) {
            return sym;
        }
        Arc::make_mut(&mut self.symbols).intern(s)
    }

    fn aggregate_other(&mut self, other_value: &str) {
        if !self.series.iter().any(|s| s.demoted) {
            return;
        }
        let key = self.intern(names::EXECUTABLE_NAME);
        let value = self.intern(other_value);
        let other = u32::try_from(self.resources.len()).unwrap_or(u32::MAX);
        self.resources
            .push(Labels::from_symbols(vec![(key, value)]));
        self.is_process.push(true);
        self.critical.push(false);
        for s in &mut self.series {
            if s.demoted {
                s.resource = other;
                s.demoted = false;
            }
        }
        self.merge();
    }

    fn drop_labels(&mut self, d: &DropLabelsStage) {
        let keys: HashSet<Symbol> = d.labels.iter().filter_map(|k| self.sym(k)).collect();
        if keys.is_empty() {
            return;
        }
        for r in &mut self.resources {
            *r = r.retain(|k| !keys.contains(&k));
        }
        for s in &mut self.series {
            s.attrs = s.attrs.retain(|k| !keys.contains(&k));
        }
        self.merge();
    }

    fn aggregate_by(&mut self, a: &AggregateByStage) {
        let keep: HashSet<Symbol> = a
            .resource_labels
            .iter()
            .filter_map(|k| self.sym(k))
            .collect();
        for (i, r) in self.resources.iter_mut().enumerate() {
            if self.is_process[i] {
                *r = r.retain(|k| keep.contains(&k));
            }
        }
        self.merge();
    }

    fn finish(self) -> Sample {
        let mut remap: Vec<Option<u32>> = vec![None; self.resources.len()];
        let mut resources = Vec::new();
        let mut series = Vec::with_capacity(self.series.len());
        for s in self.series {
            if s.demoted {
                continue;
            }
            let slot = &mut remap[s.resource as usize];
            let id = *slot.get_or_insert_with(|| {
                resources.push(self.resources[s.resource as usize].clone());
                u32::try_from(resources.len() - 1).unwrap_or(u32::MAX)
            });
            series.push(Series {
                metric: s.metric,
                kind: s.kind,
                resource: ResourceId(id),
                attributes: s.attrs,
                value: s.value,
                timestamp_ms: s.ts,
            });
        }
        Sample::from_parts(self.symbols, resources, series)
    }
}

/// Statistics of `output` (evaluated from `input`) against the `critical` lists.
fn stats_of(input: &Sample, output: &Sample, critical: &KeepCriticalStage) -> VariantStats {
    VariantStats {
        series: output.len() as u64,
        points: output.len() as u64,
        bytes: encoded_len(output),
        series_by_metric: output.series_by_metric(),
        top_labels: top_labels(output),
        fidelity: fidelity(input, output),
        critical: coverage(input, output, critical),
        eval_nanos: 0,
        // Churn needs the variant's history: the agent's tracker fills them.
        active_series: None,
        hour_distinct_series: None,
    }
}

fn top_labels(sample: &Sample) -> Vec<LabelCardinality> {
    let mut distinct: HashMap<Symbol, HashSet<Symbol>> = HashMap::new();
    let mut used = vec![false; sample.resources().len()];
    for s in sample.series() {
        used[s.resource.0 as usize] = true;
        for (k, v) in s.attributes.pairs() {
            distinct.entry(*k).or_default().insert(*v);
        }
    }
    for (r, labels) in sample.resources().iter().enumerate() {
        if used[r] {
            for (k, v) in labels.pairs() {
                distinct.entry(*k).or_default().insert(*v);
            }
        }
    }
    let mut out: Vec<LabelCardinality> = distinct
        .into_iter()
        .map(|(k, values)| LabelCardinality {
            key: sample.resolve(k).to_owned(),
            distinct_values: values.len() as u64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.distinct_values
            .cmp(&a.distinct_values)
            .then_with(|| a.key.cmp(&b.key))
    });
    out.truncate(TOP_LABELS);
    out
}

/// CPU is measured with `process.cpu.utilization` when the input has it, otherwise with
/// cumulative `process.cpu.time`; memory with `process.memory.usage`. A share is `None`
/// (not measured) when the input has no finite series of its metric on a process resource;
/// when it has some and they total zero, nothing could be lost and the share is 100.
fn fidelity(input: &Sample, output: &Sample) -> Fidelity {
    let has_utilization = input
        .symbols()
        .get(names::PROCESS_CPU_UTILIZATION)
        .is_some_and(|m| input.series().iter().any(|s| s.metric == m));
    let cpu_metric = if has_utilization {
        names::PROCESS_CPU_UTILIZATION
    } else {
        names::PROCESS_CPU_TIME
    };
    let share = |metric: &str| -> Option<f64> {
        // (series found, their total)
        let total = |sample: &Sample, processes_only: bool| -> (bool, f64) {
            let Some(m) = sample.symbols().get(metric) else {
                return (false, 0.0);
            };
            sample
                .series()
                .iter()
                .filter(|s| {
                    s.metric == m
                        && s.value.is_finite()
                        && (!processes_only || sample.is_process_resource(s.resource))
                })
                .fold((false, 0.0), |(_, sum), s| (true, sum + s.value))
        };
        let (measured, before) = total(input, true);
        if !measured {
            return None;
        }
        if before <= 0.0 {
            return Some(100.0);
        }
        // Rounded to 1e-6 percent so that a preserved total reads as exactly 100 despite
        // float summation order.
        Some(((100.0 * total(output, false).1 / before) * 1e6).round() / 1e6)
    };
    let share = |metric: &str| share(metric).map(|p| p.clamp(0.0, 100.0));
    Fidelity {
        cpu_pct: share(cpu_metric),
        memory_pct: share(names::PROCESS_MEMORY_USAGE),
    }
}

fn coverage(input: &Sample, output: &Sample, critical: &KeepCriticalStage) -> CriticalCoverage {
    let executables = |sample: &Sample| -> HashSet<String> {
        let mut used = vec![false; sample.resources().len()];
        for s in sample.series() {
            used[s.resource.0 as usize] = true;
        }
        (0..sample.resources().len())
            .filter(|r| used[*r])
            .filter_map(|r| {
                sample
                    .resource_attr(
                        ResourceId(u32::try_from(r).unwrap_or(u32::MAX)),
                        names::EXECUTABLE_NAME,
                    )
                    .map(str::to_owned)
            })
            .collect()
    };
    let metrics = |sample: &Sample| -> HashSet<String> {
        sample
            .series()
            .iter()
            .map(|s| sample.resolve(s.metric).to_owned())
            .collect()
    };
    let (exe_in, exe_out) = (executables(input), executables(output));
    let (met_in, met_out) = (metrics(input), metrics(output));
    let mut result = BTreeMap::new();
    for p in &critical.processes {
        if exe_in.iter().any(|e| p.matches(e)) {
            result.insert(p.to_string(), exe_out.iter().any(|e| p.matches(e)));
        }
    }
    for p in &critical.metrics {
        if met_in.iter().any(|m| p.matches(m)) {
            let present = met_out.iter().any(|m| p.matches(m));
            let entry = result.entry(p.to_string()).or_insert(present);
            *entry &= present;
        }
    }
    let mut out = CriticalCoverage::default();
    for (name, present) in result {
        out.expected.push(name.clone());
        if present {
            out.present.push(name);
        } else {
            out.missing.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests;
