//! The metric data model the native engine evaluates.
//!
//! A [`Sample`] is everything one host produced in one interval: a table of resources (one
//! per process for the hostmetrics process scraper, one per scrape target for a Prometheus
//! receiver) and a flat list of [`Series`], each pointing at its resource. Strings are
//! interned once per sample in a [`SymbolTable`], and label sets are small sorted slices of
//! symbol pairs, so a host with thousands of processes costs a few hundred kilobytes and no
//! per-series hash map.
//!
//! Process samples follow the Collector's `hostmetrics` process scraper: the same metric
//! names, attribute names and resource attributes, so a pipeline means the same thing on the
//! native runtime and on a real collector. [`SampleBuilder::add_process`] turns a plain
//! [`ProcessRecord`] (what an agent reads from the OS) into those series.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::measure::SnapshotSeries;

/// Metric and attribute names of the Collector's hostmetrics process scraper.
pub mod names {
    /// CPU seconds, cumulative, attribute `state`.
    pub const PROCESS_CPU_TIME: &str = "process.cpu.time";
    /// CPU utilisation since the last scrape (0 to 1 of all cores), attribute `state`. Opt-in.
    pub const PROCESS_CPU_UTILIZATION: &str = "process.cpu.utilization";
    /// Resident memory, bytes.
    pub const PROCESS_MEMORY_USAGE: &str = "process.memory.usage";
    /// Virtual memory, bytes.
    pub const PROCESS_MEMORY_VIRTUAL: &str = "process.memory.virtual";
    /// Disk bytes, cumulative, attribute `direction`.
    pub const PROCESS_DISK_IO: &str = "process.disk.io";
    /// Threads. Opt-in.
    pub const PROCESS_THREADS: &str = "process.threads";
    /// Open file descriptors. Opt-in.
    pub const PROCESS_OPEN_FILE_DESCRIPTORS: &str = "process.open_file_descriptors";

    /// Resource attribute: process id.
    pub const PID: &str = "process.pid";
    /// Resource attribute: parent process id.
    pub const PARENT_PID: &str = "process.parent_pid";
    /// Resource attribute: executable name.
    pub const EXECUTABLE_NAME: &str = "process.executable.name";
    /// Resource attribute: executable path.
    pub const EXECUTABLE_PATH: &str = "process.executable.path";
    /// Resource attribute: command.
    pub const COMMAND: &str = "process.command";
    /// Resource attribute: full command line.
    pub const COMMAND_LINE: &str = "process.command_line";
    /// Resource attribute: owner (user name).
    pub const OWNER: &str = "process.owner";

    /// Point attribute of CPU metrics.
    pub const STATE: &str = "state";
    /// Point attribute of disk IO.
    pub const DIRECTION: &str = "direction";

    /// The executable name `aggregate_other` gives the roll-up entity by default.
    pub const OTHER: &str = "other";
}

/// An interned string. Only meaningful with the [`SymbolTable`] of its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(u32);

/// Interned strings of one sample (and of every output evaluated from it).
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, Symbol>,
}

impl SymbolTable {
    /// The symbol for `s`, interning it if needed.
    pub fn intern(&mut self, s: &str) -> Symbol {
        if let Some(sym) = self.index.get(s) {
            return *sym;
        }
        let sym = Symbol(u32::try_from(self.strings.len()).expect("fewer than 2^32 symbols"));
        let shared: Arc<str> = Arc::from(s);
        self.strings.push(Arc::clone(&shared));
        self.index.insert(shared, sym);
        sym
    }

    /// The symbol for `s` if it was interned.
    #[must_use]
    pub fn get(&self, s: &str) -> Option<Symbol> {
        self.index.get(s).copied()
    }

    /// The string of `sym`.
    ///
    /// # Panics
    /// When `sym` comes from another table.
    #[must_use]
    pub fn resolve(&self, sym: Symbol) -> &str {
        &self.strings[sym.0 as usize]
    }

    /// Number of interned strings.
    #[must_use]
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when nothing is interned.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// A label (attribute) set: unique keys, sorted by key symbol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Labels(Box<[(Symbol, Symbol)]>);

impl Labels {
    /// Builds a label set; a repeated key keeps its last value.
    #[must_use]
    pub fn from_symbols(mut pairs: Vec<(Symbol, Symbol)>) -> Self {
        // Stable sort keeps insertion order among equal keys, so "last wins" below is exact.
        pairs.sort_by_key(|(k, _)| *k);
        let mut out: Vec<(Symbol, Symbol)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Self(out.into_boxed_slice())
    }

    /// Interns and builds.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        symbols: &mut SymbolTable,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::from_symbols(
            pairs
                .into_iter()
                .map(|(k, v)| (symbols.intern(k.as_ref()), symbols.intern(v.as_ref())))
                .collect(),
        )
    }

    /// The value of `key`.
    #[must_use]
    pub fn get(&self, key: Symbol) -> Option<Symbol> {
        self.0
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| self.0[i].1)
    }

    /// The pairs, sorted by key symbol.
    #[must_use]
    pub fn pairs(&self) -> &[(Symbol, Symbol)] {
        &self.0
    }

    /// Number of labels.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels whose key satisfies `keep`.
    #[must_use]
    pub fn retain(&self, mut keep: impl FnMut(Symbol) -> bool) -> Self {
        Self(
            self.0
                .iter()
                .copied()
                .filter(|(k, _)| keep(*k))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }
}

/// How a series' value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A value at a point in time.
    Gauge,
    /// A cumulative monotonic sum.
    Counter,
    /// A cumulative non-monotonic sum (OpenTelemetry's UpDownCounter).
    UpDownCounter,
}

/// Index of a resource in its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(pub u32);

/// One series with its single data point of the interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Metric name.
    pub metric: Symbol,
    /// Kind.
    pub kind: MetricKind,
    /// The resource (process, scrape target) it belongs to.
    pub resource: ResourceId,
    /// Point attributes.
    pub attributes: Labels,
    /// The value.
    pub value: f64,
    /// Timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// One host's series for one interval.
#[derive(Debug, Clone)]
pub struct Sample {
    symbols: Arc<SymbolTable>,
    resources: Vec<Labels>,
    series: Vec<Series>,
}

impl Sample {
    /// Assembles a sample from parts. Every series must point at a resource of `resources`
    /// and every symbol must come from `symbols`.
    ///
    /// # Panics
    /// When a series points past `resources`.
    #[must_use]
    pub fn from_parts(
        symbols: Arc<SymbolTable>,
        resources: Vec<Labels>,
        series: Vec<Series>,
    ) -> Self {
        assert!(
            series
                .iter()
                .all(|s| (s.resource.0 as usize) < resources.len()),
            "series point at existing resources"
        );
        Self {
            symbols,
            resources,
            series,
        }
    }

    /// Builds a process sample the way the hostmetrics process scraper would report it.
    #[must_use]
    pub fn from_processes(timestamp_ms: i64, processes: &[ProcessRecord]) -> Self {
        let mut builder = SampleBuilder::new(timestamp_ms);
        for p in processes {
            builder.add_process(p);
        }
        builder.build()
    }

    /// The symbol table.
    #[must_use]
    pub fn symbols(&self) -> &Arc<SymbolTable> {
        &self.symbols
    }

    /// The string of `sym`.
    #[must_use]
    pub fn resolve(&self, sym: Symbol) -> &str {
        self.symbols.resolve(sym)
    }

    /// The resources.
    #[must_use]
    pub fn resources(&self) -> &[Labels] {
        &self.resources
    }

    /// The attributes of `id`.
    #[must_use]
    pub fn resource(&self, id: ResourceId) -> &Labels {
        &self.resources[id.0 as usize]
    }

    /// The series.
    #[must_use]
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Number of series.
    #[must_use]
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when there are no series.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The value of resource attribute `key` of `resource`, as a string.
    #[must_use]
    pub fn resource_attr(&self, resource: ResourceId, key: &str) -> Option<&str> {
        let key = self.symbols.get(key)?;
        self.resource(resource).get(key).map(|v| self.resolve(v))
    }

    /// True when the resource describes a process (it has a pid or an executable name).
    #[must_use]
    pub fn is_process_resource(&self, resource: ResourceId) -> bool {
        let attrs = self.resource(resource);
        [names::PID, names::EXECUTABLE_NAME]
            .iter()
            .filter_map(|k| self.symbols.get(k))
            .any(|k| attrs.get(k).is_some())
    }

    /// Every series with resource and point attributes merged (point attributes win on a
    /// clash), in the shape of a [`CardinalitySnapshot`](crate::measure::CardinalitySnapshot).
    #[must_use]
    pub fn snapshot_series(&self) -> Vec<SnapshotSeries> {
        self.series
            .iter()
            .map(|s| {
                let pairs = |labels: &Labels| {
                    labels
                        .pairs()
                        .iter()
                        .map(|(k, v)| (self.resolve(*k), self.resolve(*v)))
                        .collect::<Vec<_>>()
                };
                SnapshotSeries {
                    metric: self.resolve(s.metric).to_owned(),
                    labels: SnapshotSeries::labels_of(
                        pairs(self.resource(s.resource)),
                        pairs(&s.attributes),
                    ),
                    points: 1,
                    value: SnapshotSeries::value_of(s.value),
                }
            })
            .collect()
    }

    /// Series per metric name.
    #[must_use]
    pub fn series_by_metric(&self) -> BTreeMap<String, u64> {
        let mut counts: HashMap<Symbol, u64> = HashMap::new();
        for s in &self.series {
            *counts.entry(s.metric).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, n)| (self.resolve(k).to_owned(), n))
            .collect()
    }
}

/// CPU seconds (or utilisation ratios) split by state, as the process scraper reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CpuStates {
    /// User mode.
    pub user: f64,
    /// Kernel mode.
    pub system: f64,
    /// Waiting for IO (Linux only; `None` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<f64>,
}

impl CpuStates {
    /// Sum of the states.
    #[must_use]
    pub fn total(&self) -> f64 {
        self.user + self.system + self.wait.unwrap_or(0.0)
    }
}

/// One process as an agent reads it from the operating system. Fields that the platform
/// cannot provide are `None`, and the matching series are not emitted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
    /// Executable name (`nginx`).
    pub executable_name: String,
    /// Executable path (`/usr/sbin/nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable_path: Option<String>,
    /// Command (`nginx: worker process`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Full command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// Owner user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Cumulative CPU seconds by state (`process.cpu.time`).
    pub cpu_time: CpuStates,
    /// CPU utilisation since the previous scrape by state, 0 to 1 of all cores
    /// (`process.cpu.utilization`); `None` on the first scrape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_utilization: Option<CpuStates>,
    /// Resident memory in bytes (`process.memory.usage`).
    pub memory_usage_bytes: u64,
    /// Virtual memory in bytes (`process.memory.virtual`).
    pub memory_virtual_bytes: u64,
    /// Cumulative bytes read (`process.disk.io`, direction `read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes: Option<u64>,
    /// Cumulative bytes written (`process.disk.io`, direction `write`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes: Option<u64>,
    /// Thread count (`process.threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Open file descriptors (`process.open_file_descriptors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_file_descriptors: Option<u64>,
}

/// Builds a [`Sample`].
#[derive(Debug)]
pub struct SampleBuilder {
    symbols: SymbolTable,
    resources: Vec<Labels>,
    resource_index: HashMap<Labels, ResourceId>,
    series: Vec<Series>,
    timestamp_ms: i64,
    well_known: WellKnown,
}

/// Symbols every process sample uses, interned once.
#[derive(Debug, Clone, Copy)]
struct WellKnown {
    cpu_time: Symbol,
    cpu_utilization: Symbol,
    memory_usage: Symbol,
    memory_virtual: Symbol,
    disk_io: Symbol,
    threads: Symbol,
    open_fds: Symbol,
    state: Symbol,
    direction: Symbol,
    user: Symbol,
    system: Symbol,
    wait: Symbol,
    read: Symbol,
    write: Symbol,
    pid: Symbol,
    parent_pid: Symbol,
    executable_name: Symbol,
    executable_path: Symbol,
    command: Symbol,
    command_line: Symbol,
    owner: Symbol,
}

impl SampleBuilder {
    /// A builder whose series default to `timestamp_ms`.
    #[must_use]
    pub fn new(timestamp_ms: i64) -> Self {
        let mut symbols = SymbolTable::default();
        let mut i = |s: &str| symbols.intern(s);
        let well_known = WellKnown {
            cpu_time: i(names::PROCESS_CPU_TIME),
            cpu_utilization: i(names::PROCESS_CPU_UTILIZATION),
            memory_usage: i(names::PROCESS_MEMORY_USAGE),
            memory_virtual: i(names::PROCESS_MEMORY_VIRTUAL),
            disk_io: i(names::PROCESS_DISK_IO),
            threads: i(names::PROCESS_THREADS),
            open_fds: i(names::PROCESS_OPEN_FILE_DESCRIPTORS),
            state: i(names::STATE),
            direction: i(names::DIRECTION),
            user: i("user"),
            system: i("system"),
            wait: i("wait"),
            read: i("read"),
            write: i("write"),
            pid: i(names::PID),
            parent_pid: i(names::PARENT_PID),
            executable_name: i(names::EXECUTABLE_NAME),
            executable_path: i(names::EXECUTABLE_PATH),
            command: i(names::COMMAND),
            command_line: i(names::COMMAND_LINE),
            owner: i(names::OWNER),
        };
        // The engine's `aggregate_other` default; interned up front so evaluating never has
        // to copy the table.
        symbols.intern(names::OTHER);
        Self {
            symbols,
            resources: Vec::new(),
            resource_index: HashMap::new(),
            series: Vec::new(),
            timestamp_ms,
            well_known,
        }
    }

    /// The symbol table being built.
    pub fn symbols_mut(&mut self) -> &mut SymbolTable {
        &mut self.symbols
    }

    /// The resource with these attributes (created on first use).
    pub fn resource<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        attributes: impl IntoIterator<Item = (K, V)>,
    ) -> ResourceId {
        let labels = Labels::from_pairs(&mut self.symbols, attributes);
        self.resource_from_labels(labels)
    }

    /// The resource with the attributes of `base` plus `extra` (`extra` wins on a clash),
    /// created on first use.
    pub fn extend_resource(&mut self, base: ResourceId, extra: &[(Symbol, Symbol)]) -> ResourceId {
        let mut pairs = self.resources[base.0 as usize].pairs().to_vec();
        pairs.extend_from_slice(extra);
        self.resource_from_labels(Labels::from_symbols(pairs))
    }

    fn resource_from_labels(&mut self, labels: Labels) -> ResourceId {
        if let Some(id) = self.resource_index.get(&labels) {
            return *id;
        }
        let id =
            ResourceId(u32::try_from(self.resources.len()).expect("fewer than 2^32 resources"));
        self.resources.push(labels.clone());
        self.resource_index.insert(labels, id);
        id
    }

    /// Adds one series at the builder's timestamp.
    pub fn push<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        resource: ResourceId,
        metric: &str,
        kind: MetricKind,
        attributes: impl IntoIterator<Item = (K, V)>,
        value: f64,
    ) {
        let metric = self.symbols.intern(metric);
        let attributes = Labels::from_pairs(&mut self.symbols, attributes);
        self.push_symbols(resource, metric, kind, attributes, value, self.timestamp_ms);
    }

    /// Adds one series from already interned parts.
    pub fn push_symbols(
        &mut self,
        resource: ResourceId,
        metric: Symbol,
        kind: MetricKind,
        attributes: Labels,
        value: f64,
        timestamp_ms: i64,
    ) {
        self.series.push(Series {
            metric,
            kind,
            resource,
            attributes,
            value,
            timestamp_ms,
        });
    }

    /// Adds one process: its resource and every series the process scraper reports for it.
    #[allow(
        clippy::cast_precision_loss,
        reason = "byte and count values above 2^53 lose precision in f64 exactly as they do in OTLP doubles"
    )]
    pub fn add_process(&mut self, p: &ProcessRecord) {
        let w = self.well_known;
        let mut attrs = Vec::with_capacity(7);
        let pid = self.symbols.intern(&p.pid.to_string());
        attrs.push((w.pid, pid));
        if let Some(ppid) = p.parent_pid {
            attrs.push((w.parent_pid, self.symbols.intern(&ppid.to_string())));
        }
        attrs.push((w.executable_name, self.symbols.intern(&p.executable_name)));
        for (key, value) in [
            (w.executable_path, &p.executable_path),
            (w.command, &p.command),
            (w.command_line, &p.command_line),
            (w.owner, &p.owner),
        ] {
            if let Some(v) = value {
                attrs.push((key, self.symbols.intern(v)));
            }
        }
        let resource = self.resource_from_labels(Labels::from_symbols(attrs));
        let ts = self.timestamp_ms;
        let state = |s: Symbol| Labels::from_symbols(vec![(w.state, s)]);
        let cpu = |this: &mut Self, metric: Symbol, kind: MetricKind, c: &CpuStates| {
            this.push_symbols(resource, metric, kind, state(w.user), c.user, ts);
            this.push_symbols(resource, metric, kind, state(w.system), c.system, ts);
            if let Some(wait) = c.wait {
                this.push_symbols(resource, metric, kind, state(w.wait), wait, ts);
            }
        };
        cpu(self, w.cpu_time, MetricKind::Counter, &p.cpu_time);
        if let Some(u) = &p.cpu_utilization {
            cpu(self, w.cpu_utilization, MetricKind::Gauge, u);
        }
        let none = Labels::default();
        self.push_symbols(
            resource,
            w.memory_usage,
            MetricKind::UpDownCounter,
            none.clone(),
            p.memory_usage_bytes as f64,
            ts,
        );
        self.push_symbols(
            resource,
            w.memory_virtual,
            MetricKind::UpDownCounter,
            none.clone(),
            p.memory_virtual_bytes as f64,
            ts,
        );
        for (dir, bytes) in [(w.read, p.disk_read_bytes), (w.write, p.disk_write_bytes)] {
            if let Some(b) = bytes {
                let attrs = Labels::from_symbols(vec![(w.direction, dir)]);
                self.push_symbols(
                    resource,
                    w.disk_io,
                    MetricKind::Counter,
                    attrs,
                    b as f64,
                    ts,
                );
            }
        }
        if let Some(t) = p.threads {
            self.push_symbols(
                resource,
                w.threads,
                MetricKind::UpDownCounter,
                none.clone(),
                t as f64,
                ts,
            );
        }
        if let Some(f) = p.open_file_descriptors {
            self.push_symbols(
                resource,
                w.open_fds,
                MetricKind::UpDownCounter,
                none,
                f as f64,
                ts,
            );
        }
    }

    /// Number of series so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when no series were added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The sample.
    #[must_use]
    pub fn build(self) -> Sample {
        Sample {
            symbols: Arc::new(self.symbols),
            resources: self.resources,
            series: self.series,
        }
    }
}

impl fmt::Display for Sample {
    /// Prometheus text exposition of the sample (see [`super::encode`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::encode::write_prometheus_text(self, f)
    }
}
