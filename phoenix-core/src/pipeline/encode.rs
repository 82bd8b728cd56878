//! Prometheus text exposition (format 0.0.4) of a [`Sample`]: what the native runtime's
//! `/metrics/<variant>` endpoints serve, and what [`encoded_len`] measures for the `bytes`
//! statistic.
//!
//! Translation follows the Collector's `prometheus` exporter with
//! `resource_to_telemetry_conversion` enabled: dots become underscores, monotonic counters get
//! a `_total` suffix (unless the name already ends in a Prometheus counter suffix), and
//! resource attributes become labels next to the point attributes. Unit suffixes and HELP
//! lines are not emitted. Series of one metric are written together under one `# TYPE` line.

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::sample::{MetricKind, Sample, Symbol};

/// Writes `sample` as Prometheus text.
///
/// # Errors
/// Only when `out` fails.
pub fn write_prometheus_text(sample: &Sample, out: &mut impl Write) -> fmt::Result {
    // Group series by metric, in order of first appearance, without reordering within a metric.
    let mut order: Vec<(u32, usize)> = Vec::with_capacity(sample.len());
    let mut first_seen: HashMap<Symbol, u32> = HashMap::new();
    for (i, s) in sample.series().iter().enumerate() {
        let next = u32::try_from(first_seen.len()).unwrap_or(u32::MAX);
        let rank = *first_seen.entry(s.metric).or_insert(next);
        order.push((rank, i));
    }
    order.sort_unstable();
    let mut current: Option<Symbol> = None;
    for (_, i) in order {
        let s = &sample.series()[i];
        let name = sample.resolve(s.metric);
        if current != Some(s.metric) {
            current = Some(s.metric);
            out.write_str("# TYPE ")?;
            write_metric_name(name, s.kind, out)?;
            out.write_str(match s.kind {
                MetricKind::Counter => " counter\n",
                MetricKind::Gauge | MetricKind::UpDownCounter => " gauge\n",
            })?;
        }
        write_metric_name(name, s.kind, out)?;
        let mut first = true;
        let labels = sample
            .resource(s.resource)
            .pairs()
            .iter()
            .chain(s.attributes.pairs());
        for (k, v) in labels {
            out.write_char(if first { '{' } else { ',' })?;
            first = false;
            write_sanitized(sample.resolve(*k), out)?;
            out.write_str("=\"")?;
            write_label_value(sample.resolve(*v), out)?;
            out.write_char('"')?;
        }
        if !first {
            out.write_char('}')?;
        }
        out.write_char(' ')?;
        write_value(s.value, out)?;
        out.write_char('\n')?;
    }
    Ok(())
}

/// Bytes of the Prometheus text exposition of `sample`, computed by encoding it into a
/// counter (no buffer is allocated).
#[must_use]
pub fn encoded_len(sample: &Sample) -> u64 {
    let mut counter = ByteCounter(0);
    // A counting writer never fails.
    let _ = write_prometheus_text(sample, &mut counter);
    counter.0
}

struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len() as u64;
        Ok(())
    }
}

/// A metric's name as the Prometheus exposition writes it (sanitized, `_total` on counters).
pub(crate) fn prometheus_metric_name(name: &str, kind: MetricKind) -> String {
    let mut out = String::with_capacity(name.len() + 6);
    // Writing into a String cannot fail.
    let _ = write_metric_name(name, kind, &mut out);
    out
}

/// A label's name as the Prometheus exposition writes it.
pub(crate) fn prometheus_label_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let _ = write_sanitized(name, &mut out);
    out
}

fn write_metric_name(name: &str, kind: MetricKind, out: &mut impl Write) -> fmt::Result {
    write_sanitized(name, out)?;
    if kind == MetricKind::Counter
        && !["_total", "_count", "_sum", "_bucket", "_created"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
    {
        out.write_str("_total")?;
    }
    Ok(())
}

/// Prometheus names allow `[a-zA-Z_:][a-zA-Z0-9_:]*`; anything else becomes `_`.
fn write_sanitized(name: &str, out: &mut impl Write) -> fmt::Result {
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
        out.write_char(if ok { c } else { '_' })?;
    }
    if name.is_empty() {
        out.write_char('_')?;
    }
    Ok(())
}

fn write_label_value(value: &str, out: &mut impl Write) -> fmt::Result {
    for c in value.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

fn write_value(v: f64, out: &mut impl Write) -> fmt::Result {
    if v.is_nan() {
        out.write_str("NaN")
    } else if v.is_infinite() {
        out.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
    } else {
        write!(out, "{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sample::SampleBuilder;

    #[test]
    fn encodes_families_together_with_escaped_labels() {
        let mut b = SampleBuilder::new(0);
        let r1 = b.resource([("process.pid", "1"), ("process.executable.name", "a\"b")]);
        let r2 = b.resource([("process.pid", "2")]);
        b.push(
            r1,
            "process.cpu.time",
            MetricKind::Counter,
            [("state", "user")],
            1.5,
        );
        b.push(
            r1,
            "process.memory.usage",
            MetricKind::UpDownCounter,
            [("", ""); 0],
            10.0,
        );
        b.push(
            r2,
            "process.cpu.time",
            MetricKind::Counter,
            [("state", "user")],
            f64::NAN,
        );
        b.push(
            r2,
            "node_cpu_seconds_total",
            MetricKind::Counter,
            [("cpu", "0")],
            2.0,
        );
        let sample = b.build();
        let text = sample.to_string();
        assert_eq!(
            text,
            "# TYPE process_cpu_time_total counter\n\
             process_cpu_time_total{process_pid=\"1\",process_executable_name=\"a\\\"b\",state=\"user\"} 1.5\n\
             process_cpu_time_total{process_pid=\"2\",state=\"user\"} NaN\n\
             # TYPE process_memory_usage gauge\n\
             process_memory_usage{process_pid=\"1\",process_executable_name=\"a\\\"b\"} 10\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{process_pid=\"2\",cpu=\"0\"} 2\n"
        );
        assert_eq!(encoded_len(&sample), text.len() as u64);
    }
}
