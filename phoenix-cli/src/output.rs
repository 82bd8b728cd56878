//! Printing: the API object as pretty JSON, or a human rendering of it; and the small
//! formatters the human renderings share.

use std::io::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Writes results to standard output in the chosen format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) format: OutputFormat,
}

impl Printer {
    /// Prints `value` as pretty JSON, or `human(value)` for tables.
    pub(crate) fn show<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        match self.format {
            OutputFormat::Json => out(&json(value)),
            OutputFormat::Table => out(&human(value)),
        }
    }

    /// Prints a line for people only (nothing in JSON mode, so the JSON stays parseable).
    pub(crate) fn note(&self, text: &str) {
        if self.format == OutputFormat::Table {
            out(&format!("{text}\n"));
        }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}

/// Pretty JSON with a trailing newline.
pub(crate) fn json<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// Writes to standard output; a closed pipe (`phoenix ... | head`) is not an error.
pub(crate) fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// `2026-11-27 09:44:44Z`.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

pub(crate) fn opt_time(t: Option<&DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_default()
}

/// `1h02m03s`, `4m05s`, `7s`; negative spans print as `0s`.
pub(crate) fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `90.0%`, or empty when absent.
pub(crate) fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}%")).unwrap_or_default()
}

/// A snake_case wire name of an enum value.
pub(crate) fn wire<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `1.5 KiB`, `12.0 MiB`.
#[allow(
    clippy::cast_precision_loss,
    reason = "a human-readable size needs no exactness"
)]
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `k=v,k2=v2`.
pub(crate) fn labels(map: &std::collections::BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `template k=v k2=v2`.
pub(crate) fn pipeline(p: &phoenix_api::pipeline::PipelineRef) -> String {
    let mut s = p.template.clone();
    for (k, v) in &p.params {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes() {
        assert_eq!(span(7), "7s");
        assert_eq!(span(245), "4m05s");
        assert_eq!(span(3723), "1h02m03s");
        assert_eq!(span(-5), "0s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(pct(Some(90.04)), "90.0%");
        assert_eq!(pct(None), "");
    }
}
