//! A parser for the Prometheus text exposition format (0.0.4) into the [`Sample`] model:
//! what the native `prometheus` receiver scrapes (node_exporter and friends).
//!
//! Every exposition line becomes one series of the given resource (the scrape target).
//! Kinds come from `# TYPE`: counters, and the `_bucket`/`_count`/`_sum` lines of histograms
//! and summaries, are [`MetricKind::Counter`]; gauges, untyped lines and summary quantiles are
//! [`MetricKind::Gauge`]. Names are kept as exposed, except for process series: a line
//! with a `process_pid` or `process_executable_name` label is what a hostmetrics process
//! scraper's output looks like once exported as Prometheus text (by Phoenix's agent or the
//! Collector's `prometheus` exporter). Such a line becomes a series of its own process
//! resource (the scrape target's attributes plus the `process.*` attributes, named as the
//! scraper names them) and its metric gets its OpenTelemetry name back
//! (`process_cpu_time_total` and `process_cpu_time_seconds_total` are `process.cpu.time`),
//! so that top-K, thresholds and critical processes work on recorded expositions too.

use std::collections::{HashMap, HashSet};

use super::sample::{Labels, MetricKind, ResourceId, Sample, SampleBuilder, Symbol, names};

/// Exported label names of the process scraper's resource attributes.
const PROCESS_LABELS: [(&str, &str); 7] = [
    ("process_pid", names::PID),
    ("process_parent_pid", names::PARENT_PID),
    ("process_executable_name", names::EXECUTABLE_NAME),
    ("process_executable_path", names::EXECUTABLE_PATH),
    ("process_command", names::COMMAND),
    ("process_command_line", names::COMMAND_LINE),
    ("process_owner", names::OWNER),
];

/// Exported names of the process scraper's metrics (Phoenix's encoding, then the
/// Collector's with unit suffixes), with their OpenTelemetry name and kind.
const PROCESS_METRICS: [(&str, &str, MetricKind); 14] = [
    (
        "process_cpu_time_total",
        names::PROCESS_CPU_TIME,
        MetricKind::Counter,
    ),
    (
        "process_cpu_time_seconds_total",
        names::PROCESS_CPU_TIME,
        MetricKind::Counter,
    ),
    (
        "process_cpu_utilization",
        names::PROCESS_CPU_UTILIZATION,
        MetricKind::Gauge,
    ),
    (
        "process_cpu_utilization_ratio",
        names::PROCESS_CPU_UTILIZATION,
        MetricKind::Gauge,
    ),
    (
        "process_memory_usage",
        names::PROCESS_MEMORY_USAGE,
        MetricKind::UpDownCounter,
    ),
    (
        "process_memory_usage_bytes",
        names::PROCESS_MEMORY_USAGE,
        MetricKind::UpDownCounter,
    ),
    (
        "process_memory_virtual",
        names::PROCESS_MEMORY_VIRTUAL,
        MetricKind::UpDownCounter,
    ),
    (
        "process_memory_virtual_bytes",
        names::PROCESS_MEMORY_VIRTUAL,
        MetricKind::UpDownCounter,
    ),
    (
        "process_disk_io_total",
        names::PROCESS_DISK_IO,
        MetricKind::Counter,
    ),
    (
        "process_disk_io_bytes_total",
        names::PROCESS_DISK_IO,
        MetricKind::Counter,
    ),
    (
        "process_threads",
        names::PROCESS_THREADS,
        MetricKind::UpDownCounter,
    ),
    (
        "process_threads_threads",
        names::PROCESS_THREADS,
        MetricKind::UpDownCounter,
    ),
    (
        "process_open_file_descriptors",
        names::PROCESS_OPEN_FILE_DESCRIPTORS,
        MetricKind::UpDownCounter,
    ),
    (
        "process_open_file_descriptors_count",
        names::PROCESS_OPEN_FILE_DESCRIPTORS,
        MetricKind::UpDownCounter,
    ),
];

/// The kind of a process scraper metric, by its OpenTelemetry name (`None` for any other
/// metric).
pub(crate) fn process_metric_kind(otel_name: &str) -> Option<MetricKind> {
    PROCESS_METRICS
        .iter()
        .find(|(_, name, _)| *name == otel_name)
        .map(|(_, _, kind)| *kind)
}

/// Attribute pairs borrowed from a parsed line.
type Attributes<'a> = Vec<(&'a str, &'a str)>;

/// Splits a process line's labels into resource attributes (OpenTelemetry names) and point
/// attributes; `None` when the line is not a process series.
fn process_split(pairs: &[(String, String)]) -> Option<(Attributes<'_>, Attributes<'_>)> {
    let attribute = |label: &str| {
        PROCESS_LABELS
            .iter()
            .find(|(exported, _)| *exported == label)
            .map(|(_, otel)| *otel)
    };
    if !pairs
        .iter()
        .any(|(k, _)| k == "process_pid" || k == "process_executable_name")
    {
        return None;
    }
    let mut resource = Vec::new();
    let mut point = Vec::new();
    for (k, v) in pairs {
        match attribute(k) {
            Some(otel) => resource.push((otel, v.as_str())),
            None => point.push((k.as_str(), v.as_str())),
        }
    }
    Some((resource, point))
}

/// Where and why an exposition could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ExpositionError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ExpositionErrorKind,
}

/// What is wrong with an exposition line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExpositionErrorKind {
    /// A metric name is missing or has characters outside `[a-zA-Z0-9_:]`.
    #[error("invalid metric name")]
    InvalidMetricName,
    /// A label name is missing or invalid, or `=`/`"`/`,`/`}` is misplaced.
    #[error("invalid label")]
    InvalidLabel,
    /// A label value has no closing quote or an unknown escape.
    #[error("invalid label value")]
    InvalidLabelValue,
    /// The value is not a float.
    #[error("invalid sample value")]
    InvalidValue,
    /// The timestamp is not an integer.
    #[error("invalid timestamp")]
    InvalidTimestamp,
    /// Characters after the timestamp.
    #[error("unexpected trailing characters")]
    TrailingCharacters,
    /// A `# TYPE` line with an unknown type.
    #[error("unknown metric type")]
    UnknownType,
    /// The same metric and labels appear twice.
    #[error("duplicate series")]
    DuplicateSeries,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// Parses `text` into a fresh sample with one resource carrying `resource_attributes`
/// (for example `service.name` = job, `service.instance.id` = instance, as the Collector's
/// prometheus receiver sets them).
///
/// # Errors
/// The first malformed line.
pub fn sample_from_exposition<K: AsRef<str>, V: AsRef<str>>(
    text: &str,
    timestamp_ms: i64,
    resource_attributes: impl IntoIterator<Item = (K, V)>,
) -> Result<Sample, ExpositionError> {
    let mut builder = SampleBuilder::new(timestamp_ms);
    let resource = builder.resource(resource_attributes);
    parse_exposition(text, &mut builder, resource, timestamp_ms)?;
    Ok(builder.build())
}

/// Parses `text` and adds every line to `builder` under `resource`; lines without a
/// timestamp get `default_timestamp_ms`. Returns the number of series added.
///
/// # Errors
/// The first malformed line; series added before it stay in the builder.
pub fn parse_exposition(
    text: &str,
    builder: &mut SampleBuilder,
    resource: ResourceId,
    default_timestamp_ms: i64,
) -> Result<usize, ExpositionError> {
    let mut types: HashMap<&str, FamilyType> = HashMap::new();
    let mut seen: HashSet<(Symbol, Labels)> = HashSet::new();
    let mut added = 0;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let err = |kind| ExpositionError {
            line: line_no,
            kind,
        };
        let line = raw.trim_matches(|c| c == ' ' || c == '\t');
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_ascii_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(ty)) = (words.next(), words.next()) else {
                    return Err(err(ExpositionErrorKind::UnknownType));
                };
                let ty = match ty {
                    "counter" => FamilyType::Counter,
                    "gauge" => FamilyType::Gauge,
                    "histogram" | "gaugehistogram" => FamilyType::Histogram,
                    "summary" => FamilyType::Summary,
                    "untyped" | "unknown" => FamilyType::Untyped,
                    _ => return Err(err(ExpositionErrorKind::UnknownType)),
                };
                types.insert(name, ty);
            }
            continue;
        }
        let mut cursor = Cursor { s: line, pos: 0 };
        let name = cursor
            .name()
            .ok_or(err(ExpositionErrorKind::InvalidMetricName))?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        if cursor.peek() == Some(b'{') {
            cursor.pos += 1;
            loop {
                cursor.skip_ws();
                if cursor.peek() == Some(b'}') {
                    cursor.pos += 1;
                    break;
                }
                let label = cursor
                    .name()
                    .ok_or(err(ExpositionErrorKind::InvalidLabel))?;
                cursor.skip_ws();
                if cursor.peek() != Some(b'=') {
                    return Err(err(ExpositionErrorKind::InvalidLabel));
                }
                cursor.pos += 1;
                cursor.skip_ws();
                let value = cursor
                    .quoted()
                    .ok_or(err(ExpositionErrorKind::InvalidLabelValue))?;
                pairs.push((label.to_owned(), value));
                cursor.skip_ws();
                match cursor.peek() {
                    Some(b',') => cursor.pos += 1,
                    Some(b'}') => {}
                    _ => return Err(err(ExpositionErrorKind::InvalidLabel)),
                }
            }
        }
        let mut rest = cursor.rest().split_ascii_whitespace();
        let value = rest
            .next()
            .and_then(parse_value)
            .ok_or(err(ExpositionErrorKind::InvalidValue))?;
        let timestamp = match rest.next() {
            Some(t) => t
                .parse::<i64>()
                .map_err(|_| err(ExpositionErrorKind::InvalidTimestamp))?,
            None => default_timestamp_ms,
        };
        if rest.next().is_some() {
            return Err(err(ExpositionErrorKind::TrailingCharacters));
        }
        let mut kind = kind_of(name, &types);
        let (series_resource, metric, labels) = match process_split(&pairs) {
            None => (
                resource,
                builder.symbols_mut().intern(name),
                Labels::from_pairs(
                    builder.symbols_mut(),
                    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            ),
            Some((attributes, point)) => {
                let extra = Labels::from_pairs(builder.symbols_mut(), attributes);
                let process = builder.extend_resource(resource, extra.pairs());
                let metric = match PROCESS_METRICS.iter().find(|(n, _, _)| *n == name) {
                    Some((_, otel, otel_kind)) => {
                        kind = *otel_kind;
                        builder.symbols_mut().intern(otel)
                    }
                    None => builder.symbols_mut().intern(name),
                };
                let point = Labels::from_pairs(builder.symbols_mut(), point);
                let mut all: Vec<(Symbol, Symbol)> = extra.pairs().to_vec();
                all.extend_from_slice(point.pairs());
                if !seen.insert((metric, Labels::from_symbols(all))) {
                    return Err(err(ExpositionErrorKind::DuplicateSeries));
                }
                builder.push_symbols(process, metric, kind, point, value, timestamp);
                added += 1;
                continue;
            }
        };
        if !seen.insert((metric, labels.clone())) {
            return Err(err(ExpositionErrorKind::DuplicateSeries));
        }
        builder.push_symbols(series_resource, metric, kind, labels, value, timestamp);
        added += 1;
    }
    Ok(added)
}

fn kind_of(name: &str, types: &HashMap<&str, FamilyType>) -> MetricKind {
    if let Some(ty) = types.get(name) {
        return match ty {
            FamilyType::Counter => MetricKind::Counter,
            // A bare histogram/summary name has no sample line of its own; a summary's
            // quantile lines carry the family name.
            FamilyType::Gauge
            | FamilyType::Untyped
            | FamilyType::Summary
            | FamilyType::Histogram => MetricKind::Gauge,
        };
    }
    for suffix in ["_bucket", "_count", "_sum", "_total", "_created"] {
        if let Some(family) = name.strip_suffix(suffix) {
            match types.get(family) {
                Some(FamilyType::Histogram | FamilyType::Summary) if suffix != "_total" => {
                    return MetricKind::Counter;
                }
                Some(FamilyType::Counter) if suffix == "_total" || suffix == "_created" => {
                    return MetricKind::Counter;
                }
                _ => {}
            }
        }
    }
    MetricKind::Gauge
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            let bytes = s.as_bytes();
            // Rust also accepts "inf"/"nan" spellings that the format does not.
            if bytes
                .iter()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
            {
                s.parse().ok()
            } else {
                None
            }
        }
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    fn name(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphabetic()
                || b == b'_'
                || b == b':'
                || (self.pos > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A double-quoted label value with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Some(out);
                }
                '\\' => match chars.next() {
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, '"')) => out.push('"'),
                    Some((_, 'n')) => out.push('\n'),
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67
node_cpu_seconds_total{cpu="0",mode="user"} 89.5
# TYPE node_load1 gauge
node_load1 0.42
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1"} 3
http_request_duration_seconds_bucket{le="+Inf"} 5
http_request_duration_seconds_sum 1.2
http_request_duration_seconds_count 5
# TYPE rpc summary
rpc{quantile="0.5"} 0.01
rpc_count 7
weird{path="a\"b\\c\nd",} -Inf 1700000000000
"#;

    #[test]
    fn parses_families_kinds_labels_and_escapes() {
        let sample = sample_from_exposition(TEXT, 5, [("service.name", "node")]).unwrap();
        assert_eq!(sample.len(), 10);
        let kinds: Vec<(String, MetricKind)> = sample
            .series()
            .iter()
            .map(|s| (sample.resolve(s.metric).to_owned(), s.kind))
            .collect();
        assert_eq!(
            kinds[0],
            ("node_cpu_seconds_total".to_owned(), MetricKind::Counter)
        );
        assert_eq!(kinds[2], ("node_load1".to_owned(), MetricKind::Gauge));
        assert_eq!(kinds[3].1, MetricKind::Counter);
        assert_eq!(kinds[6].1, MetricKind::Counter);
        assert_eq!(kinds[7], ("rpc".to_owned(), MetricKind::Gauge));
        assert_eq!(kinds[8].1, MetricKind::Counter);
        let weird = &sample.series()[9];
        assert_eq!(weird.timestamp_ms, 1_700_000_000_000);
        assert!(weird.value.is_infinite() && weird.value < 0.0);
        let (_, v) = weird.attributes.pairs()[0];
        assert_eq!(sample.resolve(v), "a\"b\\c\nd");
        assert_eq!(sample.series()[0].timestamp_ms, 5);
    }

    #[test]
    fn rejects_malformed_lines_with_their_line_number() {
        let cases = [
            ("9bad 1", ExpositionErrorKind::InvalidMetricName),
            ("m{a=\"1\" 1", ExpositionErrorKind::InvalidLabel),
            ("m{a=\"1} 1", ExpositionErrorKind::InvalidLabelValue),
            ("m{a=\"\\x\"} 1", ExpositionErrorKind::InvalidLabelValue),
            ("m{=\"1\"} 1", ExpositionErrorKind::InvalidLabel),
            ("m one", ExpositionErrorKind::InvalidValue),
            ("m inf", ExpositionErrorKind::InvalidValue),
            ("m", ExpositionErrorKind::InvalidValue),
            ("m 1 x", ExpositionErrorKind::InvalidTimestamp),
            ("m 1 2 3", ExpositionErrorKind::TrailingCharacters),
            ("# TYPE m thing", ExpositionErrorKind::UnknownType),
            (
                "m{a=\"1\"} 1\nm{a=\"1\"} 2",
                ExpositionErrorKind::DuplicateSeries,
            ),
        ];
        for (text, kind) in cases {
            let text = format!("ok 1\n{text}");
            let err = sample_from_exposition(&text, 0, [("a", "b")]).unwrap_err();
            let expected_line = if kind == ExpositionErrorKind::DuplicateSeries {
                3
            } else {
                2
            };
            assert_eq!(
                err,
                ExpositionError {
                    line: expected_line,
                    kind
                },
                "{text}"
            );
        }
    }
}
