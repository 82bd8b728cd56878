//! The Prometheus exposition the native runtime serves per variant, and a strict checker
//! for it.
//!
//! The text comes from `phoenix_core::pipeline::encode` (the Collector's prometheus
//! exporter translation); this module adds a `# HELP` line to every family, which
//! `promtool check metrics` requires, and [`check`] validates a document the way
//! `promtool check metrics` does: the text-format parser's rules (names, labels, escapes,
//! values, one TYPE and HELP per family before its samples, families not split, no
//! duplicate series) and promlint's rules (help text, `_total` only and always on
//! counters, reserved suffixes and labels, camelCase, abbreviated and non-base units,
//! colons, type names in metric names).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use phoenix_core::pipeline::Sample;
use phoenix_core::pipeline::encode::write_prometheus_text;

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Help text of the process scraper's metrics (as the Collector documents them), by
/// exposed family name.
fn known_help(family: &str) -> Option<&'static str> {
    Some(match family {
        "process_cpu_time_total" => "Total CPU seconds broken down by different states.",
        "process_cpu_utilization" => {
            "Percentage of total CPU time used by the process since last scrape, expressed as a value between 0 and 1."
        }
        "process_memory_usage" => "The amount of physical memory in use, in bytes.",
        "process_memory_virtual" => "Virtual memory size, in bytes.",
        "process_disk_io_total" => "Disk bytes transferred.",
        "process_threads" => "Process threads count.",
        "process_open_file_descriptors" => "Number of file descriptors in use by the process.",
        _ => return None,
    })
}

/// The exposition of `sample` with a HELP line before every TYPE line. `origin` names the
/// pipeline in the help text of metrics without a known description.
#[must_use]
pub fn render(sample: &Sample, origin: &str) -> String {
    let mut plain = String::with_capacity(sample.len() * 160);
    // Writing into a String cannot fail.
    let _ = write_prometheus_text(sample, &mut plain);
    with_help(&plain, origin)
}

/// Inserts a HELP line before every `# TYPE` line of `text`.
#[must_use]
pub fn with_help(text: &str, origin: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4096);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, _)) = rest.split_once(' ')
        {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            match known_help(name) {
                Some(help) => out.push_str(help),
                None => {
                    let _ = write!(out, "Series kept by the Phoenix {origin} pipeline.");
                }
            }
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A problem [`check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line (0 for a problem with a whole family).
    pub line: usize,
    /// The family or metric concerned.
    pub metric: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What [`check`] can find wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A line that is not a comment, a sample or blank, or a malformed sample.
    Syntax,
    /// A metric or label name outside `[a-zA-Z_:][a-zA-Z0-9_:]*` / `[a-zA-Z_][a-zA-Z0-9_]*`.
    InvalidName,
    /// A bad escape or an unterminated label value.
    InvalidLabelValue,
    /// A label repeated within one sample, or `__name__` used as a label.
    DuplicateLabel,
    /// A value that is not a float.
    InvalidValue,
    /// A second TYPE or HELP line for a family, or one after its samples.
    MisplacedMetadata,
    /// Samples of a family that appear after another family started.
    SplitFamily,
    /// The same series twice.
    DuplicateSeries,
    /// promlint: no HELP line.
    NoHelp,
    /// promlint: a counter without `_total`, or `_total` on something else.
    CounterSuffix,
    /// promlint: `_bucket`/`_count`/`_sum` or `le`/`quantile` outside histograms/summaries.
    ReservedSuffix,
    /// promlint: a `:` in a metric name.
    Colon,
    /// promlint: camelCase metric or label name.
    CamelCase,
    /// promlint: an abbreviated or non-base unit, or the type name in the metric name.
    Naming,
}

/// What a clean document contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Metric families.
    pub families: usize,
    /// Samples (series).
    pub samples: usize,
}

#[derive(Debug, Default)]
struct Family {
    kind: Option<String>,
    help: bool,
    has_samples: bool,
    closed: bool,
    labels: HashSet<String>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_value(s: &str) -> bool {
    matches!(s, "NaN" | "+Inf" | "-Inf" | "Inf") || s.parse::<f64>().is_ok()
}

/// The family a sample name belongs to, given the declared families.
fn family_of<'a>(name: &'a str, families: &HashMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .and_then(|f| f.kind.as_deref())
                .is_some_and(|k| k == "histogram" || k == "summary")
        {
            return base;
        }
    }
    name
}

/// Parses a sample line: name, labels (name, value) and value.
/// A parsed sample line: name, labels, value.
type ParsedSample = (String, Vec<(String, String)>, String);

fn parse_sample(line: &str) -> Result<ParsedSample, ProblemKind> {
    let name_end = line.find(['{', ' ', '\t']).ok_or(ProblemKind::Syntax)?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(ProblemKind::InvalidName);
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed = loop {
            while chars.peek().is_some_and(|(_, c)| *c == ' ') {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => break i + 1,
                None => return Err(ProblemKind::Syntax),
                _ => {}
            }
            let mut label = String::new();
            while let Some((_, c)) = chars.peek() {
                if *c == '=' || *c == ' ' {
                    break;
                }
                label.push(*c);
                chars.next();
            }
            if !is_label_name(&label) {
                return Err(ProblemKind::InvalidName);
            }
            if !matches!(chars.next(), Some((_, '='))) || !matches!(chars.next(), Some((_, '"'))) {
                return Err(ProblemKind::Syntax);
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err(ProblemKind::InvalidLabelValue),
                    },
                    Some((_, '\n')) | None => return Err(ProblemKind::InvalidLabelValue),
                    Some((_, c)) => value.push(c),
                }
            }
            labels.push((label, value));
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => break i + 1,
                _ => return Err(ProblemKind::Syntax),
            }
        };
        rest = &after[consumed..];
    }
    let mut parts = rest.split_whitespace();
    let value = parts.next().ok_or(ProblemKind::Syntax)?;
    if !is_value(value) {
        return Err(ProblemKind::InvalidValue);
    }
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(ProblemKind::Syntax);
    }
    if parts.next().is_some() {
        return Err(ProblemKind::Syntax);
    }
    Ok((name.to_owned(), labels, value.to_owned()))
}

const UNIT_ABBREVIATIONS: [&str; 14] = [
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];
const NON_BASE_UNITS: [&str; 14] = [
    "minutes",
    "hours",
    "days",
    "weeks",
    "kelvins",
    "fahrenheit",
    "rankine",
    "inches",
    "yards",
    "miles",
    "bits",
    "calories",
    "pounds",
    "ounces",
];
const UNIT_PREFIXES: [&str; 18] = [
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
    "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
];
const BASE_UNITS: [&str; 10] = [
    "amperes", "bytes", "celsius", "grams", "joules", "kelvin", "meters", "metres", "seconds",
    "volts",
];

fn lint_name(name: &str, kind: &str) -> Vec<ProblemKind> {
    let mut out = Vec::new();
    let lower = name.to_ascii_lowercase();
    let has_word = |w: &str| lower.contains(&format!("_{w}_")) || lower.ends_with(&format!("_{w}"));
    if UNIT_ABBREVIATIONS.iter().any(|u| has_word(u)) {
        out.push(ProblemKind::Naming);
    }
    for word in name.split('_') {
        let non_base = NON_BASE_UNITS.contains(&word)
            || UNIT_PREFIXES.iter().any(|p| {
                word.strip_prefix(p)
                    .is_some_and(|u| BASE_UNITS.contains(&u) || NON_BASE_UNITS.contains(&u))
            });
        if non_base {
            out.push(ProblemKind::Naming);
            break;
        }
    }
    if ["counter", "gauge", "summary", "histogram", "gaugehistogram"]
        .iter()
        .any(|t| has_word(t))
    {
        out.push(ProblemKind::Naming);
    }
    if name.contains(':') {
        out.push(ProblemKind::Colon);
    }
    if has_camel_case(name) {
        out.push(ProblemKind::CamelCase);
    }
    let total = name.ends_with("_total");
    if kind != "untyped" && ((kind == "counter") != total) {
        out.push(ProblemKind::CounterSuffix);
    }
    if kind != "untyped" {
        let reserved = (kind != "histogram" && name.ends_with("_bucket"))
            || (kind != "histogram"
                && kind != "summary"
                && (name.ends_with("_count") || name.ends_with("_sum")));
        if reserved {
            out.push(ProblemKind::ReservedSuffix);
        }
    }
    out
}

fn has_camel_case(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// Checks `text` as `promtool check metrics` would: parse errors and lint problems.
///
/// # Errors
/// Every problem found.
pub fn check(text: &str) -> Result<Summary, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    let mut seen_series: HashSet<String> = HashSet::new();
    let mut samples = 0;
    let mut problem = |line: usize, metric: &str, kind| {
        problems.push(Problem {
            line,
            metric: metric.to_owned(),
            kind,
        });
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_start();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if keyword != "TYPE" && keyword != "HELP" {
                continue;
            }
            let Some(name) = parts.next().filter(|n| !n.is_empty()) else {
                problem(n, "", ProblemKind::Syntax);
                continue;
            };
            if !is_metric_name(name) {
                problem(n, name, ProblemKind::InvalidName);
                continue;
            }
            let arg = parts.next().unwrap_or("");
            if current.as_deref() != Some(name) {
                if let Some(prev) = current.take()
                    && let Some(f) = families.get_mut(&prev)
                {
                    f.closed = true;
                }
                current = Some(name.to_owned());
            }
            let fam = families.entry(name.to_owned()).or_insert_with(|| {
                order.push(name.to_owned());
                Family::default()
            });
            if fam.has_samples || fam.closed {
                problem(n, name, ProblemKind::MisplacedMetadata);
            }
            if keyword == "TYPE" {
                if fam.kind.is_some() {
                    problem(n, name, ProblemKind::MisplacedMetadata);
                }
                if !matches!(
                    arg,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    problem(n, name, ProblemKind::Syntax);
                }
                fam.kind = Some(arg.to_owned());
            } else {
                if fam.help {
                    problem(n, name, ProblemKind::MisplacedMetadata);
                }
                let mut chars = arg.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                        problem(n, name, ProblemKind::Syntax);
                    }
                }
                fam.help = true;
            }
            continue;
        }
        let (name, labels, _value) = match parse_sample(line) {
            Ok(parsed) => parsed,
            Err(kind) => {
                problem(n, line.split(['{', ' ']).next().unwrap_or(""), kind);
                continue;
            }
        };
        let family = family_of(&name, &families).to_owned();
        if current.as_deref() != Some(family.as_str()) {
            if let Some(prev) = current.take()
                && let Some(f) = families.get_mut(&prev)
            {
                f.closed = true;
            }
            current = Some(family.clone());
        }
        let fam = families.entry(family.clone()).or_insert_with(|| {
            order.push(family.clone());
            Family::default()
        });
        if fam.closed {
            problem(n, &family, ProblemKind::SplitFamily);
        }
        fam.has_samples = true;
        let mut names = HashSet::new();
        for (label, _) in &labels {
            if label == "__name__" || !names.insert(label.as_str()) {
                problem(n, &name, ProblemKind::DuplicateLabel);
            }
            fam.labels.insert(label.clone());
        }
        let mut key_labels: Vec<&(String, String)> = labels.iter().collect();
        key_labels.sort();
        let key = format!("{name}{key_labels:?}");
        if !seen_series.insert(key) {
            problem(n, &name, ProblemKind::DuplicateSeries);
        }
        samples += 1;
    }
    for name in &order {
        let fam = &families[name];
        let kind = fam.kind.as_deref().unwrap_or("untyped");
        if !fam.help {
            problem(0, name, ProblemKind::NoHelp);
        }
        for p in lint_name(name, kind) {
            problem(0, name, p);
        }
        for label in &fam.labels {
            if has_camel_case(label) {
                problem(0, name, ProblemKind::CamelCase);
            }
            if (label == "le" && kind != "histogram") || (label == "quantile" && kind != "summary")
            {
                problem(0, name, ProblemKind::ReservedSuffix);
            }
        }
    }
    if problems.is_empty() {
        Ok(Summary {
            families: order.len(),
            samples,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
