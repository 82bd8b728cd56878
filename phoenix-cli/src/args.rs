//! Value parsers clap runs on flags: a value they refuse is a usage error (exit code 2)
//! that names the flag.

use phoenix_api::experiment::{Comparison, Criterion, KpiName, Phase};
use serde::de::DeserializeOwned;

/// A `KEY=VALUE` template parameter, the value already typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Parameter name.
    pub key: String,
    /// JSON value.
    pub value: serde_json::Value,
}

/// A `KEY=VALUE` label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `http(s)://host[:port][/path]`.
pub(crate) fn server_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected http://HOST[:PORT] or https://HOST[:PORT]".to_owned());
    }
    Ok(s.to_owned())
}

pub(crate) fn key_value(s: &str) -> Result<KeyValue, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))?;
    if key.is_empty() {
        return Err(format!("empty key in `{s}`"));
    }
    Ok(KeyValue {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

/// `KEY=VALUE`: VALUE is JSON when it parses as a JSON boolean, number, string or array,
/// else the text itself (so `mode=drop` and `mode="drop"` are the same).
pub(crate) fn param(s: &str) -> Result<Param, String> {
    let KeyValue { key, value } = key_value(s)?;
    let value = match serde_json::from_str::<serde_json::Value>(&value) {
        Ok(
            v @ (serde_json::Value::Bool(_)
            | serde_json::Value::Number(_)
            | serde_json::Value::String(_)
            | serde_json::Value::Array(_)),
        ) => v,
        _ => serde_json::Value::String(value),
    };
    Ok(Param { key, value })
}

/// Seconds from `600`, `90s`, `10m`, `2h`, `1d` or a sum of them (`1h30m`).
pub(crate) fn duration_secs(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a duration like 600, 90s, 10m, 1h30m; got `{s}`");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if number.is_empty() {
        Ok(total)
    } else {
        Err(bad())
    }
}

pub(crate) fn duration_secs_u32(s: &str) -> Result<u32, String> {
    u32::try_from(duration_secs(s)?).map_err(|_| format!("`{s}` is too long"))
}

/// A snake_case wire name into its enum (the API's own spelling).
pub(crate) fn wire_enum<T: DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

pub(crate) fn history_granularity(
    s: &str,
) -> Result<phoenix_api::analysis::HistoryGranularity, String> {
    wire_enum(s).ok_or_else(|| format!("unknown granularity `{s}` (hour or day)"))
}

pub(crate) fn history_breakdown(
    s: &str,
) -> Result<phoenix_api::analysis::HistoryBreakdown, String> {
    wire_enum(s).ok_or_else(|| {
        format!("unknown breakdown `{s}` (total, metric, service, namespace or host)")
    })
}

pub(crate) fn phase(s: &str) -> Result<Phase, String> {
    s.parse().map_err(|_| {
        let all: Vec<&str> = phoenix_core::experiment::Phase::ALL
            .iter()
            .map(|p| p.as_str())
            .collect();
        format!("unknown phase `{s}` (one of: {})", all.join(", "))
    })
}

/// `KPI>=N`, `KPI<=N`, optionally followed by `:critical`.
pub(crate) fn criterion(s: &str) -> Result<Criterion, String> {
    let (body, critical) = match s.strip_suffix(":critical") {
        Some(body) => (body, true),
        None => (s, false),
    };
    let (kpi, comparison, threshold) = if let Some((k, t)) = body.split_once(">=") {
        (k, Comparison::AtLeast, t)
    } else if let Some((k, t)) = body.split_once("<=") {
        (k, Comparison::AtMost, t)
    } else {
        return Err(format!(
            "expected KPI>=N or KPI<=N (optionally `:critical`), got `{s}`"
        ));
    };
    let kpi: KpiName = wire_enum(kpi.trim()).ok_or_else(|| {
        format!(
            "unknown KPI `{}` (one of: cardinality_reduction_pct, data_point_reduction_pct, \
             cost_reduction_pct, fidelity_pct, critical_coverage_pct, agent_cpu_overhead_pct, \
             queries_broken)",
            kpi.trim()
        )
    })?;
    if let Some(why) = phoenix_core::judge::KpiName::from(kpi).withdrawn() {
        return Err(why.to_owned());
    }
    let threshold: f64 = threshold
        .trim()
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|t: &f64| t.is_finite())
        .ok_or_else(|| format!("threshold `{}` is not a number", threshold.trim()))?;
    Ok(Criterion {
        kpi,
        comparison,
        threshold,
        critical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_secs("600"), Ok(600));
        assert_eq!(duration_secs("90s"), Ok(90));
        assert_eq!(duration_secs("10m"), Ok(600));
        assert_eq!(duration_secs("1h30m"), Ok(5400));
        assert_eq!(duration_secs("1d"), Ok(86_400));
        assert!(duration_secs("10").is_ok());
        assert!(duration_secs("10x").is_err());
        assert!(duration_secs("m").is_err());
        assert!(duration_secs("1h30").is_err());
        assert!(duration_secs("").is_err());
        assert!(duration_secs("99999999999999999999d").is_err());
    }

    #[test]
    fn params_are_json_when_they_parse() {
        assert_eq!(param("k=10").unwrap().value, serde_json::json!(10));
        assert_eq!(param("k=true").unwrap().value, serde_json::json!(true));
        assert_eq!(param("k=drop").unwrap().value, serde_json::json!("drop"));
        assert_eq!(param("k=\"10\"").unwrap().value, serde_json::json!("10"));
        assert_eq!(
            param(r#"k=["a","b"]"#).unwrap().value,
            serde_json::json!(["a", "b"])
        );
        assert_eq!(param("k=null").unwrap().value, serde_json::json!("null"));
        assert_eq!(param("k=a=b").unwrap().value, serde_json::json!("a=b"));
        assert!(param("novalue").is_err());
        assert!(param("=1").is_err());
    }

    #[test]
    fn criteria() {
        let c = criterion("cardinality_reduction_pct>=60").unwrap();
        assert_eq!(c.kpi, KpiName::CardinalityReductionPct);
        assert_eq!(c.comparison, Comparison::AtLeast);
        assert!((c.threshold - 60.0).abs() < f64::EPSILON);
        assert!(!c.critical);
        let c = criterion("agent_cpu_overhead_pct <= 5%:critical").unwrap();
        assert_eq!(c.comparison, Comparison::AtMost);
        assert!(c.critical);
        assert!(criterion("fidelity>=1").is_err());
        assert!(criterion("fidelity_pct=1").is_err());
        assert!(criterion("fidelity_pct>=x").is_err());
        assert!(criterion("fidelity_pct>=inf").is_err());
        let refused = criterion("agent_rss_overhead_pct<=10").unwrap_err();
        assert!(refused.contains("not measured"), "{refused}");
    }

    #[test]
    fn server_urls() {
        assert!(server_url("http://127.0.0.1:8080").is_ok());
        assert!(server_url("https://phoenix.example.com/base").is_ok());
        assert!(server_url("127.0.0.1:8080").is_err());
        assert!(server_url("ftp://x").is_err());
    }

    #[test]
    fn phases() {
        assert_eq!(phase("rolled_back"), Ok(Phase::RolledBack));
        assert!(phase("done").unwrap_err().contains("running"));
    }
}
