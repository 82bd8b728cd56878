//! Template parameter schemas: name, type, default, bounds, description; validation of a
//! request's parameters against them, every problem reported at once.
//!
//! Strings never contain control characters (newline, NUL, ...) and are length-capped, so a
//! parameter cannot smuggle structure into a rendered config even before escaping.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ParamValue;
use super::spec::is_label_key;
use super::syntax::{check_host_port, check_http_url, parse_duration_secs};
use crate::validation::FieldError;

/// One parameter of a template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Name.
    pub name: String,
    /// Type and bounds.
    #[serde(flatten)]
    pub kind: ParamKind,
    /// Value when the request omits it.
    pub default: ParamValue,
    /// What it does.
    pub description: String,
}

/// A parameter's type and bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParamKind {
    /// `true` or `false`.
    Bool,
    /// An integer in `[min, max]`.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// A number in `[min, max]` (integers accepted).
    Float {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
    },
    /// Printable text of at most `max_len` bytes.
    String {
        /// Longest value, bytes.
        max_len: usize,
    },
    /// One of `values`.
    Enum {
        /// Allowed values.
        values: Vec<String>,
    },
    /// A Go duration (`10s`, `1m30s`) in `[min_secs, max_secs]`.
    Duration {
        /// Shortest, seconds.
        min_secs: u64,
        /// Longest, seconds.
        max_secs: u64,
    },
    /// A list of attribute keys.
    LabelKeys {
        /// Fewest items.
        min_items: usize,
        /// Most items.
        max_items: usize,
    },
    /// A list of `host:port` targets.
    Targets {
        /// Most items.
        max_items: usize,
    },
    /// An `http(s)://` URL.
    Url,
}

/// Longest string accepted anywhere in parameters, bytes.
pub const MAX_STRING: usize = 1024;

impl ParamSpec {
    /// A parameter.
    pub fn new(name: &str, kind: ParamKind, default: ParamValue, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            default,
            description: description.to_owned(),
        }
    }

    /// Checks `value`; returns the normalised value (integers given for floats become floats).
    ///
    /// # Errors
    /// What is wrong, for a human.
    pub fn check(&self, value: &ParamValue) -> Result<ParamValue, String> {
        match (&self.kind, value) {
            (ParamKind::Bool, ParamValue::Bool(_)) => Ok(value.clone()),
            (ParamKind::Int { min, max }, ParamValue::Int(v)) => {
                if (min..=max).contains(&v) {
                    Ok(value.clone())
                } else {
                    Err(format!("must be {min} to {max}"))
                }
            }
            (ParamKind::Float { min, max }, ParamValue::Int(_) | ParamValue::Float(_)) => {
                #[allow(clippy::cast_precision_loss, reason = "parameter-sized integers")]
                let v = match value {
                    ParamValue::Int(i) => *i as f64,
                    ParamValue::Float(f) => *f,
                    _ => unreachable!("matched above"),
                };
                if v.is_finite() && v >= *min && v <= *max {
                    Ok(ParamValue::Float(v))
                } else {
                    Err(format!("must be a number from {min} to {max}"))
                }
            }
            (ParamKind::String { max_len }, ParamValue::String(s)) => {
                check_text(s, *max_len)?;
                Ok(value.clone())
            }
            (ParamKind::Enum { values }, ParamValue::String(s)) => {
                if values.iter().any(|v| v == s) {
                    Ok(value.clone())
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
            (ParamKind::Duration { min_secs, max_secs }, ParamValue::String(s)) => {
                check_text(s, 32)?;
                match parse_duration_secs(s) {
                    Some(secs) if (*min_secs..=*max_secs).contains(&secs) => Ok(value.clone()),
                    Some(_) => Err(format!("must be between {min_secs}s and {max_secs}s")),
                    None => Err("must be a duration such as `10s` or `1m30s`".to_owned()),
                }
            }
            (
                ParamKind::LabelKeys {
                    min_items,
                    max_items,
                },
                ParamValue::List(items),
            ) => {
                if items.len() < *min_items {
                    return Err(format!("must have at least {min_items} item(s)"));
                }
                check_list(items, *max_items, |item| {
                    if is_label_key(item) {
                        Ok(())
                    } else {
                        Err("must be 1 to 128 letters, digits, `.`, `_` or `-`".to_owned())
                    }
                })?;
                Ok(value.clone())
            }
            (ParamKind::Targets { max_items }, ParamValue::List(items)) => {
                check_list(items, *max_items, |item| {
                    check_text(item, 256)?;
                    check_host_port(item).map_err(str::to_owned)
                })?;
                Ok(value.clone())
            }
            (ParamKind::Url, ParamValue::String(s)) => {
                check_text(s, MAX_STRING)?;
                check_http_url(s).map_err(str::to_owned)?;
                Ok(value.clone())
            }
            (kind, _) => Err(format!("must be {}", kind.expected())),
        }
    }
}

impl ParamKind {
    fn expected(&self) -> &'static str {
        match self {
            Self::Bool => "a boolean",
            Self::Int { .. } => "an integer",
            Self::Float { .. } => "a number",
            Self::String { .. } | Self::Enum { .. } | Self::Url => "a string",
            Self::Duration { .. } => "a duration string",
            Self::LabelKeys { .. } | Self::Targets { .. } => "a list of strings",
        }
    }
}

fn check_text(s: &str, max_len: usize) -> Result<(), String> {
    if s.len() > max_len.min(MAX_STRING) {
        return Err(format!("must be at most {} bytes", max_len.min(MAX_STRING)));
    }
    if s.chars().any(char::is_control) {
        return Err("control characters (newline, tab, NUL, ...) are not allowed".to_owned());
    }
    Ok(())
}

fn check_list(
    items: &[String],
    max_items: usize,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    if items.len() > max_items {
        return Err(format!("must have at most {max_items} items"));
    }
    for (i, item) in items.iter().enumerate() {
        if item.len() > MAX_STRING {
            return Err(format!("item {i}: must be at most {MAX_STRING} bytes"));
        }
        check(item).map_err(|m| format!("item {i}: {m}"))?;
    }
    Ok(())
}

/// Validates `given` against `schema`: unknown names, wrong types and out-of-bounds values
/// are reported under `{path}.params.{name}`. Returns every parameter, defaults applied.
///
/// # Errors
/// Every field error.
pub fn resolve(
    schema: &[ParamSpec],
    given: &BTreeMap<String, ParamValue>,
    path: &str,
) -> Result<Params, Vec<FieldError>> {
    let mut errors = Vec::new();
    for name in given.keys() {
        if !schema.iter().any(|p| &p.name == name) {
            let shown: String = name.chars().take(64).collect();
            errors.push(FieldError::new(
                format!("{path}.params"),
                format!(
                    "unknown parameter `{}` (known: {})",
                    shown.escape_debug(),
                    schema
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let mut values = BTreeMap::new();
    for p in schema {
        let value = given.get(&p.name).unwrap_or(&p.default);
        match p.check(value) {
            Ok(v) => {
                values.insert(p.name.clone(), v);
            }
            Err(m) => errors.push(FieldError::new(format!("{path}.params.{}", p.name), m)),
        }
    }
    if errors.is_empty() {
        Ok(Params(values))
    } else {
        Err(errors)
    }
}

/// Validated parameters with defaults applied. Getters fall back to a neutral value for a
/// name the schema does not have, so a builder bug cannot panic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(BTreeMap<String, ParamValue>);

impl Params {
    /// Wraps values as they are (for builders under test).
    #[must_use]
    pub fn from_values(values: BTreeMap<String, ParamValue>) -> Self {
        Self(values)
    }

    /// The values.
    #[must_use]
    pub fn values(&self) -> &BTreeMap<String, ParamValue> {
        &self.0
    }

    /// A boolean.
    #[must_use]
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(ParamValue::Bool(true)))
    }

    /// An integer.
    #[must_use]
    pub fn int(&self, name: &str) -> i64 {
        match self.0.get(name) {
            Some(ParamValue::Int(i)) => *i,
            _ => 0,
        }
    }

    /// A number.
    #[must_use]
    pub fn float(&self, name: &str) -> f64 {
        match self.0.get(name) {
            Some(ParamValue::Float(f)) => *f,
            #[allow(clippy::cast_precision_loss, reason = "parameter-sized integers")]
            Some(ParamValue::Int(i)) => *i as f64,
            _ => 0.0,
        }
    }

    /// A string.
    #[must_use]
    pub fn str(&self, name: &str) -> &str {
        match self.0.get(name) {
            Some(ParamValue::String(s)) => s,
            _ => "",
        }
    }

    /// A list.
    #[must_use]
    pub fn list(&self, name: &str) -> &[String] {
        match self.0.get(name) {
            Some(ParamValue::List(l)) => l,
            _ => &[],
        }
    }

    /// A duration parameter in seconds.
    #[must_use]
    pub fn duration_secs(&self, name: &str) -> u64 {
        parse_duration_secs(self.str(name)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<ParamSpec> {
        vec![
            ParamSpec::new(
                "k",
                ParamKind::Int { min: 1, max: 10 },
                ParamValue::Int(5),
                "K",
            ),
            ParamSpec::new(
                "f",
                ParamKind::Float { min: 0.0, max: 1.0 },
                ParamValue::Float(0.5),
                "F",
            ),
            ParamSpec::new(
                "s",
                ParamKind::String { max_len: 8 },
                ParamValue::String("x".into()),
                "S",
            ),
            ParamSpec::new(
                "e",
                ParamKind::Enum {
                    values: vec!["cpu".into(), "memory".into()],
                },
                ParamValue::String("cpu".into()),
                "E",
            ),
            ParamSpec::new(
                "d",
                ParamKind::Duration {
                    min_secs: 1,
                    max_secs: 60,
                },
                ParamValue::String("10s".into()),
                "D",
            ),
            ParamSpec::new(
                "l",
                ParamKind::LabelKeys {
                    min_items: 0,
                    max_items: 2,
                },
                ParamValue::List(vec![]),
                "L",
            ),
        ]
    }

    #[test]
    fn defaults_apply_and_integers_widen_to_floats() {
        let mut given = BTreeMap::new();
        given.insert("f".to_owned(), ParamValue::Int(1));
        let p = resolve(&schema(), &given, "x").unwrap();
        assert_eq!(p.int("k"), 5);
        assert_eq!(p.values()["f"], ParamValue::Float(1.0));
        assert_eq!(p.duration_secs("d"), 10);
        assert_eq!(p.str("missing"), "");
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        let given: BTreeMap<String, ParamValue> = [
            ("k", ParamValue::Int(11)),
            ("f", ParamValue::Float(f64::NAN)),
            ("s", ParamValue::String("a\nb".into())),
            ("e", ParamValue::String("disk".into())),
            ("d", ParamValue::String("2h".into())),
            ("l", ParamValue::List(vec!["ok".into(), "bad key".into()])),
            ("zzz", ParamValue::Bool(true)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let errors = resolve(&schema(), &given, "spec.candidate").unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.candidate.params",
                "spec.candidate.params.k",
                "spec.candidate.params.f",
                "spec.candidate.params.s",
                "spec.candidate.params.e",
                "spec.candidate.params.d",
                "spec.candidate.params.l",
            ]
        );
        let long = ParamValue::String("x".repeat(1 << 20));
        assert!(schema()[2].check(&long).is_err());
        assert!(schema()[0].check(&ParamValue::String("5".into())).is_err());
    }
}
