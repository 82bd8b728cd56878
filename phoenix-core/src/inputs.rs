//! What a request may carry: the one set of rules on text and numbers, checked by the
//! facade before any store sees a value, so that every backend (memory, PostgreSQL,
//! Redis, or one of your own) accepts and refuses exactly the same inputs.
//!
//! Two kinds of text:
//! - *names* (experiment, deployment and token names, host names, label keys and values,
//!   metric and process names, pipeline names and hashes): no control character at all;
//! - *free text* (descriptions, reasons, task errors, health details): tabs and line
//!   breaks allowed, no other control character (NUL above all: PostgreSQL cannot store it
//!   in `text` or `jsonb`, the other backends could, and they must not differ).
//!
//! Numbers an agent reports are bounded by what a host can produce (the constants below,
//! documented in `docs/agent.md`), which also keeps every integer within PostgreSQL's
//! `bigint` and every count exact in the `f64` arithmetic of KPIs (below 2^53). Timestamps
//! an agent reports must lie within a window around the server's clock.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use chrono::{DateTime, Duration, Utc};

use crate::agent::{ActivePipeline, AgentRegistration, Heartbeat};
use crate::experiment::TargetSelector;
use crate::measure::{
    CardinalitySnapshot, HostStats, MeasurementSample, PackedSnapshot, SnapshotSeries, VariantStats,
};
use crate::queries::SampleQueries;
use crate::validation::ValidationErrors;

/// The largest integer any store holds (PostgreSQL `bigint`).
pub const MAX_STORABLE_INT: u64 = i64::MAX as u64;

/// Longest experiment, deployment or token name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest host name (DNS), in characters.
pub const MAX_HOST_CHARS: usize = 253;
/// Longest label key, in characters.
pub const MAX_LABEL_KEY_CHARS: usize = 128;
/// Longest label value, critical entry, metric or process name, in characters.
pub const MAX_TOKEN_CHARS: usize = 256;
/// Longest reason given with a command (stop, rollback, promote), in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// Longest free text an agent sends (task error, pipeline health detail), in characters.
pub const MAX_DETAIL_CHARS: usize = 4096;
/// Most labels an agent or a selector carries.
pub const MAX_LABELS: usize = 64;
/// Most hosts a selector lists.
pub const MAX_SELECTOR_HOSTS: usize = 1024;
/// Most capabilities an agent declares.
pub const MAX_CAPABILITIES: usize = 64;
/// Most pipelines an agent reports in a heartbeat.
pub const MAX_PIPELINES: usize = 64;

/// Most distinct output series one variant may report for one interval.
pub const MAX_SERIES: u64 = 100_000_000;
/// Largest churn figure (`active_series`, `hour_distinct_series`) one variant may report:
/// [`MAX_SERIES`] plus the agent's tracking cap. A sample's own figure is bounded tighter,
/// by its `series` plus the cap ([`churn_figure_limit`]).
pub const MAX_CHURN_SERIES: u64 = MAX_SERIES + crate::cost::churn::MAX_TRACKED_SERIES as u64;
/// Most data points one variant (or one snapshot series) may report for one interval.
pub const MAX_POINTS: u64 = 10_000_000_000;
/// Most encoded output bytes one variant may report for one interval (1 TiB).
pub const MAX_BYTES: u64 = 1 << 40;
/// Most CPU time one variant's evaluation may report, nanoseconds (about 11.6 days).
pub const MAX_EVAL_NANOS: u64 = 1_000_000_000_000_000;
/// Most memory a host or an agent may report, bytes (1 PiB).
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;
/// Most processes a host may report (Linux's largest `pid_max`).
pub const MAX_PROCESSES: u64 = 1 << 22;
/// Host CPU is a percentage of all cores.
pub const MAX_HOST_CPU_PCT: f64 = 100.0;
/// The agent's CPU is a percentage of one core (1024 cores at most).
pub const MAX_AGENT_CPU_PCT: f64 = 102_400.0;
/// Longest interval a sample covers, seconds (an experiment's longest sample interval).
pub const MAX_SAMPLE_INTERVAL_SECS: u32 = 3600;
/// Longest interval a cardinality snapshot covers, seconds.
pub const MAX_SNAPSHOT_INTERVAL_SECS: u32 = 86_400;
/// Most metric names in one variant's `series_by_metric`.
pub const MAX_METRICS: usize = 10_000;
/// Most entries in one variant's `top_labels` or critical lists.
pub const MAX_LIST_ENTRIES: usize = 256;
/// Largest magnitude of a snapshot series' value (a byte counter of an exabyte fits).
pub const MAX_SERIES_VALUE: f64 = 1e18;
/// Most labels on one snapshot series.
pub const MAX_SERIES_LABELS: usize = 128;
/// How far ahead of the server's clock a reported time may be, seconds.
pub const MAX_CLOCK_AHEAD_SECS: i64 = 300;
/// How old a reported measurement may be, seconds (31 days: the longest experiment plus a
/// day of agent buffering).
pub const MAX_REPORT_AGE_SECS: i64 = 31 * 24 * 3600;

/// A field's path in an error. The checks take one so that a caller checking many
/// fields of a large input (a host's snapshot: thousands of series and their labels) can
/// pass [`LazyPath`] and build a path only when an error names it.
pub trait FieldPath {
    /// The path, as the error shows it.
    fn render(&self) -> String;
}

impl FieldPath for str {
    fn render(&self) -> String {
        self.to_owned()
    }
}

impl FieldPath for String {
    fn render(&self) -> String {
        self.clone()
    }
}

/// A path built only when an error names it.
pub struct LazyPath<F>(pub F);

impl<F> std::fmt::Debug for LazyPath<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyPath(..)")
    }
}

impl<F: Fn() -> String> FieldPath for LazyPath<F> {
    fn render(&self) -> String {
        (self.0)()
    }
}

/// Records an error unless `value` is a name: not blank, at most `max` characters, no
/// control character.
pub fn name(
    errors: &mut ValidationErrors,
    path: &(impl FieldPath + ?Sized),
    value: &str,
    max: usize,
) {
    if value.trim().is_empty() {
        errors.push(path.render(), "must not be empty");
    } else {
        optional_name(errors, path, value, max);
    }
}

/// [`name`], but empty is allowed.
pub fn optional_name(
    errors: &mut ValidationErrors,
    path: &(impl FieldPath + ?Sized),
    value: &str,
    max: usize,
) {
    if value.chars().count() > max {
        errors.push(path.render(), format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.push(path.render(), "must not contain control characters");
    }
}

/// Records the errors of a query source's name and content (before it is parsed): a name,
/// and text within [`crate::queries::MAX_SOURCE_BYTES`] without NUL or control characters
/// other than tab and line breaks.
pub fn query_source(errors: &mut ValidationErrors, name_value: &str, content: &str) {
    name(errors, "name", name_value, MAX_NAME_CHARS);
    let max = crate::queries::MAX_SOURCE_BYTES;
    if content.len() > max {
        errors.push("content", format!("must be at most {max} bytes"));
    } else if content.trim().is_empty() {
        errors.push("content", "must not be empty");
    } else if content.chars().any(not_free_text) {
        errors.push(
            "content",
            "must not contain control characters other than tab and line breaks",
        );
    }
}

/// Records an error unless `value` is free text of at most `max` characters: tabs and line
/// breaks allowed, no other control character.
pub fn free_text(
    errors: &mut ValidationErrors,
    path: &(impl FieldPath + ?Sized),
    value: &str,
    max: usize,
) {
    if value.chars().count() > max {
        errors.push(path.render(), format!("must be at most {max} characters"));
    } else if value.chars().any(not_free_text) {
        errors.push(
            path.render(),
            "must not contain control characters other than tab and line breaks",
        );
    }
}

fn not_free_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// `value` made acceptable as free text of at most `max` characters: other control
/// characters dropped, the end cut. For senders (the agent) whose messages come from
/// elsewhere (a Collector's output), so that a report is never refused for its wording.
#[must_use]
pub fn fit_free_text(value: &str, max: usize) -> String {
    value
        .chars()
        .filter(|c| !not_free_text(*c))
        .take(max)
        .collect()
}

/// `snapshot`'s label values made acceptable as free text (see [`fit_free_text`]): a
/// process's command line may be longer than [`MAX_DETAIL_CHARS`] or hold escapes.
pub fn fit_snapshot(snapshot: &mut CardinalitySnapshot) {
    for series in &mut snapshot.series {
        fit_series(series);
    }
}

/// One series' label values made acceptable as free text (see [`fit_snapshot`]).
pub fn fit_series(series: &mut SnapshotSeries) {
    for value in series.labels.values_mut() {
        if value.len() > MAX_DETAIL_CHARS || value.chars().any(not_free_text) {
            *value = fit_free_text(value, MAX_DETAIL_CHARS);
        }
    }
}

/// Records an error when a JSON document holds a string or key with a NUL character.
pub fn json(errors: &mut ValidationErrors, path: &str, value: &serde_json::Value) {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    if has_nul(value) {
        errors.push(path, "must not contain NUL characters");
    }
}

/// Records an error unless `value` lies in `range`.
pub fn int(
    errors: &mut ValidationErrors,
    path: &(impl FieldPath + ?Sized),
    value: u64,
    range: RangeInclusive<u64>,
) {
    if !range.contains(&value) {
        errors.push(
            path.render(),
            format!("must be between {} and {}", range.start(), range.end()),
        );
    }
}

/// Records an error unless `value` is finite and lies in `range`.
pub fn float(
    errors: &mut ValidationErrors,
    path: &(impl FieldPath + ?Sized),
    value: f64,
    range: RangeInclusive<f64>,
) {
    if !value.is_finite() || !range.contains(&value) {
        errors.push(
            path.render(),
            format!("must be between {} and {}", range.start(), range.end()),
        );
    }
}

/// Records an error unless `at` lies between `max_age_secs` before `now` and
/// [`MAX_CLOCK_AHEAD_SECS`] after it.
pub fn timestamp(
    errors: &mut ValidationErrors,
    path: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    max_age_secs: i64,
) {
    if at > now + Duration::seconds(MAX_CLOCK_AHEAD_SECS) {
        errors.push(
            path,
            format!(
                "is more than {MAX_CLOCK_AHEAD_SECS} s ahead of the server's clock ({now}); check the host's clock"
            ),
        );
    } else if at < now - Duration::seconds(max_age_secs) {
        errors.push(
            path,
            format!("is more than {max_age_secs} s older than the server's clock ({now})"),
        );
    }
}

/// Label keys and values (`path.<key>`).
pub fn labels(errors: &mut ValidationErrors, path: &str, labels: &BTreeMap<String, String>) {
    if labels.len() > MAX_LABELS {
        errors.push(path, format!("at most {MAX_LABELS} labels"));
    }
    for (key, value) in labels {
        let p = format!("{path}.{}", key.escape_debug());
        name(errors, &p, key, MAX_LABEL_KEY_CHARS);
        optional_name(errors, &p, value, MAX_TOKEN_CHARS);
    }
}

/// A target selector (experiments and deployments).
pub fn selector(errors: &mut ValidationErrors, path: &str, selector: &TargetSelector) {
    labels(errors, &format!("{path}.labels"), &selector.labels);
    if selector.hosts.len() > MAX_SELECTOR_HOSTS {
        errors.push(
            format!("{path}.hosts"),
            format!("at most {MAX_SELECTOR_HOSTS} hosts"),
        );
    }
    for (i, host) in selector.hosts.iter().enumerate() {
        name(errors, &format!("{path}.hosts[{i}]"), host, MAX_TOKEN_CHARS);
    }
}

/// An optional reason given with a command.
pub fn reason(errors: &mut ValidationErrors, path: &str, reason: Option<&str>) {
    if let Some(r) = reason {
        free_text(errors, path, r, MAX_REASON_CHARS);
    }
}

/// What an agent says about itself when enrolling.
pub fn registration(errors: &mut ValidationErrors, r: &AgentRegistration) {
    name(errors, "host", &r.host, MAX_HOST_CHARS);
    optional_name(errors, "version", &r.version, 64);
    optional_name(errors, "os", &r.os, 128);
    labels(errors, "labels", &r.labels);
    if r.capabilities.len() > MAX_CAPABILITIES {
        errors.push(
            "capabilities",
            format!("at most {MAX_CAPABILITIES} capabilities"),
        );
    }
    for (i, c) in r.capabilities.iter().enumerate() {
        name(errors, &format!("capabilities[{i}]"), c, 64);
    }
}

/// Host figures (heartbeats and samples).
pub fn host_stats(errors: &mut ValidationErrors, path: &str, h: &HostStats) {
    float(
        errors,
        &format!("{path}.cpu_pct"),
        h.cpu_pct,
        0.0..=MAX_HOST_CPU_PCT,
    );
    float(
        errors,
        &format!("{path}.agent_cpu_pct"),
        h.agent_cpu_pct,
        0.0..=MAX_AGENT_CPU_PCT,
    );
    int(
        errors,
        &format!("{path}.memory_total_bytes"),
        h.memory_total_bytes,
        0..=MAX_MEMORY_BYTES,
    );
    // Not `used <= total`: the two are read at different moments (and through cgroup
    // limits); a heartbeat must not be refused, and the agent marked lost, for a race.
    int(
        errors,
        &format!("{path}.memory_used_bytes"),
        h.memory_used_bytes,
        0..=MAX_MEMORY_BYTES,
    );
    int(
        errors,
        &format!("{path}.agent_rss_bytes"),
        h.agent_rss_bytes,
        0..=MAX_MEMORY_BYTES,
    );
    int(
        errors,
        &format!("{path}.process_count"),
        h.process_count,
        0..=MAX_PROCESSES,
    );
}

fn active_pipeline(errors: &mut ValidationErrors, path: &str, p: &ActivePipeline) {
    name(errors, &format!("{path}.name"), &p.name, MAX_TOKEN_CHARS);
    optional_name(
        errors,
        &format!("{path}.template"),
        &p.template,
        MAX_NAME_CHARS,
    );
    optional_name(
        errors,
        &format!("{path}.config_hash"),
        &p.config_hash,
        MAX_NAME_CHARS,
    );
    if let Some(detail) = &p.detail {
        free_text(errors, &format!("{path}.detail"), detail, MAX_DETAIL_CHARS);
    }
}

/// A heartbeat, at the server's `now`.
pub fn heartbeat(errors: &mut ValidationErrors, h: &Heartbeat, now: DateTime<Utc>) {
    host_stats(errors, "resources", &h.resources);
    if h.pipelines.len() > MAX_PIPELINES {
        errors.push("pipelines", format!("at most {MAX_PIPELINES} pipelines"));
    }
    for (i, p) in h.pipelines.iter().enumerate() {
        active_pipeline(errors, &format!("pipelines[{i}]"), p);
    }
    if let Some(started) = h.started_at {
        // A process may have run for years; it cannot have started in the future or
        // before the Unix epoch.
        let age = (now - DateTime::UNIX_EPOCH).num_seconds();
        timestamp(errors, "started_at", started, now, age);
    }
}

fn list(errors: &mut ValidationErrors, path: &str, items: &[String]) {
    if items.len() > MAX_LIST_ENTRIES {
        errors.push(path, format!("at most {MAX_LIST_ENTRIES} entries"));
    }
    for (i, item) in items.iter().enumerate() {
        name(errors, &format!("{path}[{i}]"), item, MAX_TOKEN_CHARS);
    }
}

/// Most a churn figure of a variant reporting `series` series may be: a tracker counts at
/// most its [`crate::cost::churn::MAX_TRACKED_SERIES`] remembered identities plus the
/// interval's own series.
#[must_use]
pub fn churn_figure_limit(series: u64) -> u64 {
    series
        .saturating_add(crate::cost::churn::MAX_TRACKED_SERIES as u64)
        .min(MAX_CHURN_SERIES)
}

/// One variant's statistics.
pub fn variant_stats(errors: &mut ValidationErrors, path: &str, v: &VariantStats) {
    int(errors, &format!("{path}.series"), v.series, 0..=MAX_SERIES);
    int(errors, &format!("{path}.points"), v.points, 0..=MAX_POINTS);
    int(errors, &format!("{path}.bytes"), v.bytes, 0..=MAX_BYTES);
    int(
        errors,
        &format!("{path}.eval_nanos"),
        v.eval_nanos,
        0..=MAX_EVAL_NANOS,
    );
    for (figure, value) in [
        ("active_series", v.active_series),
        ("hour_distinct_series", v.hour_distinct_series),
    ] {
        let Some(value) = value else { continue };
        let limit = churn_figure_limit(v.series);
        if value < v.series || value > limit {
            errors.push(
                format!("{path}.{figure}"),
                format!(
                    "must be between the sample's series ({}: the interval's own series are active and seen in its hour) and {limit} (its series plus the {} series identities an agent tracks), got {value}",
                    v.series,
                    crate::cost::churn::MAX_TRACKED_SERIES
                ),
            );
        }
    }
    if v.series_by_metric.len() > MAX_METRICS {
        errors.push(
            format!("{path}.series_by_metric"),
            format!("at most {MAX_METRICS} metrics"),
        );
    }
    for (metric, series) in &v.series_by_metric {
        let p = format!("{path}.series_by_metric.{}", metric.escape_debug());
        name(errors, &p, metric, MAX_TOKEN_CHARS);
        int(errors, &p, *series, 0..=MAX_SERIES);
    }
    if v.top_labels.len() > MAX_LIST_ENTRIES {
        errors.push(
            format!("{path}.top_labels"),
            format!("at most {MAX_LIST_ENTRIES} entries"),
        );
    }
    for (i, l) in v.top_labels.iter().enumerate() {
        name(
            errors,
            &format!("{path}.top_labels[{i}].key"),
            &l.key,
            MAX_LABEL_KEY_CHARS,
        );
        int(
            errors,
            &format!("{path}.top_labels[{i}].distinct_values"),
            l.distinct_values,
            0..=MAX_SERIES,
        );
    }
    for (name, share) in [
        ("cpu_pct", v.fidelity.cpu_pct),
        ("memory_pct", v.fidelity.memory_pct),
    ] {
        if let Some(share) = share {
            float(
                errors,
                &format!("{path}.fidelity.{name}"),
                share,
                0.0..=100.0,
            );
        }
    }
    list(
        errors,
        &format!("{path}.critical.expected"),
        &v.critical.expected,
    );
    list(
        errors,
        &format!("{path}.critical.present"),
        &v.critical.present,
    );
    list(
        errors,
        &format!("{path}.critical.missing"),
        &v.critical.missing,
    );
}

/// One measurement sample (under `path`, e.g. `samples[3]`), at the server's `now`.
pub fn sample(
    errors: &mut ValidationErrors,
    path: &str,
    s: &MeasurementSample,
    now: DateTime<Utc>,
) {
    int(errors, &format!("{path}.seq"), s.seq, 1..=MAX_STORABLE_INT);
    timestamp(
        errors,
        &format!("{path}.taken_at"),
        s.taken_at,
        now,
        MAX_REPORT_AGE_SECS,
    );
    int(
        errors,
        &format!("{path}.interval_secs"),
        u64::from(s.interval_secs),
        1..=u64::from(MAX_SAMPLE_INTERVAL_SECS),
    );
    variant_stats(errors, &format!("{path}.baseline"), &s.baseline);
    variant_stats(errors, &format!("{path}.candidate"), &s.candidate);
    host_stats(errors, &format!("{path}.host"), &s.host);
    if let Some(q) = &s.queries {
        sample_queries(errors, &format!("{path}.queries"), q, None);
    }
}

/// What a sample says of an experiment's queries: one known status letter per query (at
/// most [`crate::queries::MAX_EXPERIMENT_QUERIES`], exactly `expected` when the
/// experiment's count is known), and bounded reasons, each for a distinct query listed
/// broken or changed.
pub fn sample_queries(
    errors: &mut ValidationErrors,
    path: &str,
    q: &SampleQueries,
    expected: Option<usize>,
) {
    use crate::queries::frozen::{MAX_REASON_CHARS, MAX_REASONS_PER_QUERY, MAX_SAMPLE_REASONED};
    use crate::queries::{MAX_EXPERIMENT_QUERIES, QueryStatus};
    let statuses: Vec<Option<QueryStatus>> =
        q.statuses().take(MAX_EXPERIMENT_QUERIES + 1).collect();
    let p = format!("{path}.statuses");
    match expected {
        Some(n) if statuses.len() != n => errors.push(
            p,
            format!(
                "must hold one status per query of the experiment: {n}, not {}",
                q.statuses.chars().count()
            ),
        ),
        _ if statuses.len() > MAX_EXPERIMENT_QUERIES => errors.push(
            p,
            format!("at most {MAX_EXPERIMENT_QUERIES} statuses, one per query"),
        ),
        _ if statuses.iter().any(Option::is_none) => errors.push(
            p,
            "each status must be one of a (answered), c (changed), b (broken), u (unobserved)",
        ),
        _ => {}
    }
    if q.reasons.len() > MAX_SAMPLE_REASONED {
        errors.push(
            format!("{path}.reasons"),
            format!("at most {MAX_SAMPLE_REASONED} entries"),
        );
        return;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in q.reasons.iter().enumerate() {
        let rp = format!("{path}.reasons[{i}]");
        let status = usize::try_from(r.query)
            .ok()
            .and_then(|index| statuses.get(index).copied().flatten());
        if !matches!(status, Some(QueryStatus::Broken | QueryStatus::Changed)) {
            errors.push(
                format!("{rp}.query"),
                "must name a query whose status is broken or changed",
            );
        } else if !seen.insert(r.query) {
            errors.push(format!("{rp}.query"), "names a query listed before");
        }
        if r.reasons.len() > MAX_REASONS_PER_QUERY {
            errors.push(
                format!("{rp}.reasons"),
                format!("at most {MAX_REASONS_PER_QUERY} reasons"),
            );
            continue;
        }
        for (j, text) in r.reasons.iter().enumerate() {
            free_text(
                errors,
                &format!("{rp}.reasons[{j}]"),
                text,
                MAX_REASON_CHARS,
            );
        }
    }
}

/// What a snapshot says of itself (either form): host, time taken, interval.
fn snapshot_header(
    errors: &mut ValidationErrors,
    host: &str,
    taken_at: DateTime<Utc>,
    interval_secs: u32,
    now: DateTime<Utc>,
) {
    name(errors, "host", host, MAX_HOST_CHARS);
    timestamp(errors, "taken_at", taken_at, now, MAX_REPORT_AGE_SECS);
    int(
        errors,
        "interval_secs",
        u64::from(interval_secs),
        1..=u64::from(MAX_SNAPSHOT_INTERVAL_SECS),
    );
}

/// A cardinality snapshot, at the server's `now`. Stops after the first hundred errors
/// (a snapshot holds up to a million series).
pub fn snapshot(errors: &mut ValidationErrors, s: &CardinalitySnapshot, now: DateTime<Utc>) {
    snapshot_header(errors, &s.host, s.taken_at, s.interval_secs, now);
    for (i, series) in s.series.iter().enumerate() {
        if errors.errors.len() >= 100 {
            break;
        }
        snapshot_series(errors, &LazyPath(|| format!("series[{i}]")), series);
    }
}

/// Records the errors of a packed snapshot ([`PackedSnapshot`]): the rules of
/// [`snapshot`] for every series, each distinct string checked once for each role it
/// plays (metric name, label key, label value), and the packed form's own shape: one entry
/// per series in every column, indexes in range, each series' keys distinct and ascending,
/// every string used and listed once.
pub fn packed_snapshot(errors: &mut ValidationErrors, s: &PackedSnapshot, now: DateTime<Utc>) {
    const METRIC: u8 = 1;
    const KEY: u8 = 2;
    const VALUE: u8 = 4;
    snapshot_header(errors, &s.host, s.taken_at, s.interval_secs, now);
    if let Some((path, message)) = s.shape_error() {
        errors.push(path, message);
        return;
    }
    // The roles each string was checked in.
    let mut roles = vec![0_u8; s.strings.len()];
    let mut check = |errors: &mut ValidationErrors, index: u32, role: u8| {
        let i = index as usize;
        if roles[i] & role != 0 {
            return;
        }
        roles[i] |= role;
        let text = &s.strings[i];
        let path = LazyPath(|| format!("strings[{i}]"));
        match role {
            METRIC => metric_name(errors, &path, text),
            KEY => label_key(errors, &path, text),
            _ => label_value(errors, &path, text),
        }
    };
    for i in 0..s.len() {
        if errors.errors.len() >= 100 {
            return;
        }
        check(errors, s.metrics[i], METRIC);
        let pairs = &s.labels[i];
        if pairs.len() / 2 > MAX_SERIES_LABELS {
            errors.push(
                format!("labels[{i}]"),
                format!("at most {MAX_SERIES_LABELS} labels"),
            );
        }
        let mut previous: Option<&str> = None;
        for pair in pairs.chunks_exact(2) {
            check(errors, pair[0], KEY);
            check(errors, pair[1], VALUE);
            let key = s.strings[pair[0] as usize].as_str();
            if previous.is_some_and(|p| p >= key) {
                errors.push(
                    format!("labels[{i}]"),
                    format!(
                        "label keys must be distinct and in ascending order (`{}` follows `{}`)",
                        key.escape_debug(),
                        previous.unwrap_or_default().escape_debug()
                    ),
                );
                break;
            }
            previous = Some(key);
        }
        series_points(errors, &LazyPath(|| format!("points[{i}]")), s.points[i]);
        series_value(errors, &LazyPath(|| format!("values[{i}]")), s.values[i]);
    }
    let mut seen = std::collections::HashSet::with_capacity(s.strings.len());
    for (i, text) in s.strings.iter().enumerate() {
        if errors.errors.len() >= 100 {
            return;
        }
        if roles[i] == 0 {
            errors.push(format!("strings[{i}]"), "is not used by any series");
        } else if !seen.insert(text.as_str()) {
            errors.push(
                format!("strings[{i}]"),
                "repeats an earlier string (each string is listed once)",
            );
        }
    }
}

/// One series of a cardinality snapshot, its fields under `p`. Senders that take series
/// from elsewhere (the agent's OTLP receiver) ask it too, to leave out a series the server
/// would refuse rather than lose the whole snapshot.
pub fn snapshot_series(
    errors: &mut ValidationErrors,
    p: &(impl FieldPath + ?Sized),
    series: &SnapshotSeries,
) {
    // Paths are built only for an error: a valid snapshot of thousands of series costs no
    // allocation here.
    let at = |field: &'static str| LazyPath(move || format!("{}.{field}", p.render()));
    metric_name(errors, &at("metric"), &series.metric);
    if series.labels.len() > MAX_SERIES_LABELS {
        errors.push(
            at("labels").render(),
            format!("at most {MAX_SERIES_LABELS} labels"),
        );
    }
    for (key, value) in &series.labels {
        let lp = LazyPath(|| format!("{}.labels.{}", p.render(), key.escape_debug()));
        label_key(errors, &lp, key);
        label_value(errors, &lp, value);
    }
    series_points(errors, &at("points"), series.points);
    series_value(errors, &at("value"), series.value);
}

// The rules of a snapshot series' fields, for both forms of a snapshot.

fn metric_name(errors: &mut ValidationErrors, p: &(impl FieldPath + ?Sized), text: &str) {
    name(errors, p, text, MAX_TOKEN_CHARS);
}

fn label_key(errors: &mut ValidationErrors, p: &(impl FieldPath + ?Sized), text: &str) {
    name(errors, p, text, MAX_LABEL_KEY_CHARS);
}

/// Values are whatever the host's processes carry (command lines included).
fn label_value(errors: &mut ValidationErrors, p: &(impl FieldPath + ?Sized), text: &str) {
    free_text(errors, p, text, MAX_DETAIL_CHARS);
}

fn series_points(errors: &mut ValidationErrors, p: &(impl FieldPath + ?Sized), points: u64) {
    int(errors, p, points, 0..=MAX_POINTS);
}

fn series_value(errors: &mut ValidationErrors, p: &(impl FieldPath + ?Sized), value: Option<f64>) {
    if let Some(value) = value {
        float(errors, p, value, -MAX_SERIES_VALUE..=MAX_SERIES_VALUE);
    }
}

#[cfg(test)]
mod tests;
