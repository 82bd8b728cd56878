//! Reading the queries out of a source: a Prometheus rule file, a Grafana dashboard
//! export or a PromQL list.

use std::fmt;

use serde_json::Value;

use super::needs::{VARIABLE_MARKER, compile};
use super::{InventoryQuery, MAX_QUERIES_PER_SOURCE, MAX_QUERY_CHARS, MAX_SOURCE_BYTES};
use super::{QueryRole, SourceKind};
use crate::pipeline::yaml::{self, Node, YamlLimits};

/// A source, or one query in it, that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The source's name (usually its file name).
    pub source: String,
    /// The rule or panel (`group "node", alert "NodeDown"`), empty for the whole source.
    pub location: String,
    /// Line in the source, from 1, when known.
    pub line: Option<u32>,
    /// Column in the source, from 1, when known.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.location.is_empty() {
            write!(f, ": {}", self.location)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ParseError {}

struct Reader<'a> {
    source: &'a str,
    queries: Vec<InventoryQuery>,
    errors: Vec<ParseError>,
}

impl<'a> Reader<'a> {
    fn new(source: &'a str) -> Self {
        Self {
            source,
            queries: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, location: &str, at: Option<(u32, u32)>, message: impl Into<String>) {
        self.errors.push(ParseError {
            source: self.source.to_owned(),
            location: location.to_owned(),
            line: at.map(|(l, _)| l),
            column: at.map(|(_, c)| c),
            message: message.into(),
        });
    }

    fn query(
        &mut self,
        name: String,
        role: QueryRole,
        location: String,
        expr: &str,
        at: Option<(u32, u32)>,
    ) {
        if expr.chars().count() > MAX_QUERY_CHARS {
            self.error(
                &location,
                at,
                format!("query is longer than {MAX_QUERY_CHARS} characters"),
            );
            return;
        }
        let promql = substitute_variables(expr);
        match compile(&promql) {
            Ok(compiled) => self.queries.push(InventoryQuery {
                name,
                role,
                location,
                expr: expr.to_owned(),
                promql,
                needs: compiled.needs(),
            }),
            Err(e) => self.error(&location, at, format!("PromQL does not parse: {e}")),
        }
    }

    fn finish(mut self) -> Result<Vec<InventoryQuery>, Vec<ParseError>> {
        if self.errors.is_empty() && self.queries.len() > MAX_QUERIES_PER_SOURCE {
            self.error(
                "",
                None,
                format!(
                    "{} queries; a source may hold at most {MAX_QUERIES_PER_SOURCE}",
                    self.queries.len()
                ),
            );
        }
        if self.errors.is_empty() && self.queries.is_empty() {
            self.error("", None, "no query found");
        }
        if self.errors.is_empty() {
            Ok(self.queries)
        } else {
            Err(self.errors)
        }
    }
}

/// Every query of `content`, a source of `kind` named `name`; every error otherwise.
pub fn parse_source(
    name: &str,
    kind: SourceKind,
    content: &str,
) -> Result<Vec<InventoryQuery>, Vec<ParseError>> {
    let mut reader = Reader::new(name);
    if content.len() > MAX_SOURCE_BYTES {
        reader.error(
            "",
            None,
            format!("source is larger than {MAX_SOURCE_BYTES} bytes"),
        );
        return Err(reader.errors);
    }
    match kind {
        SourceKind::RuleFile => rule_file(&mut reader, content),
        SourceKind::GrafanaDashboard => dashboard(&mut reader, content),
        SourceKind::PromqlList => promql_list(&mut reader, content),
    }
    reader.finish()
}

fn at(node: &Node) -> Option<(u32, u32)> {
    Some((node.line, node.column))
}

fn rule_file(reader: &mut Reader<'_>, content: &str) {
    let limits = YamlLimits {
        max_bytes: MAX_SOURCE_BYTES,
        max_nodes: 200_000,
        ..YamlLimits::default()
    };
    let doc = match yaml::parse(content, &limits) {
        Ok(doc) => doc,
        Err(e) => {
            reader.error(
                "",
                (e.line > 0).then_some((e.line, e.column)),
                format!("not a YAML rule file: {}", e.kind),
            );
            return;
        }
    };
    // A Prometheus rule file, or a Kubernetes PrometheusRule whose `spec` is one.
    let groups = doc
        .get("groups")
        .or_else(|| doc.get("spec").and_then(|s| s.get("groups")));
    let Some(groups) = groups.and_then(Node::as_sequence) else {
        reader.error(
            "",
            at(&doc),
            "a rule file is a mapping with `groups`, a list of rule groups",
        );
        return;
    };
    for (gi, group) in groups.iter().enumerate() {
        let group_name = group
            .get("name")
            .and_then(Node::as_str)
            .map_or_else(|| format!("groups[{gi}]"), |n| format!("group {n:?}"));
        let Some(rules) = group.get("rules").and_then(Node::as_sequence) else {
            reader.error(&group_name, at(group), "a group needs `rules`, a list");
            continue;
        };
        for (ri, rule) in rules.iter().enumerate() {
            let (role, rule_name) = match (
                rule.get("alert").and_then(Node::as_str),
                rule.get("record").and_then(Node::as_str),
            ) {
                (Some(alert), None) => (QueryRole::Alert, alert.to_owned()),
                (None, Some(record)) => (QueryRole::Record, record.to_owned()),
                _ => {
                    reader.error(
                        &format!("{group_name}, rules[{ri}]"),
                        at(rule),
                        "a rule has exactly one of `alert` and `record`",
                    );
                    continue;
                }
            };
            let what = if role == QueryRole::Alert {
                "alert"
            } else {
                "record"
            };
            let location = format!("{group_name}, {what} {rule_name:?}");
            match rule.get("expr") {
                Some(expr) if expr.as_str().is_some_and(|e| !e.trim().is_empty()) => {
                    let text = expr.as_str().unwrap_or_default().trim().to_owned();
                    reader.query(rule_name, role, location, &text, at(expr));
                }
                _ => reader.error(&location, at(rule), "a rule needs `expr`"),
            }
        }
    }
}

fn dashboard(reader: &mut Reader<'_>, content: &str) {
    let doc: Value = match serde_json::from_str(content) {
        Ok(doc) => doc,
        Err(e) => {
            let line = u32::try_from(e.line()).unwrap_or(u32::MAX);
            let column = u32::try_from(e.column()).unwrap_or(u32::MAX);
            reader.error(
                "",
                Some((line, column)),
                format!("not a JSON dashboard: {e}"),
            );
            return;
        }
    };
    // A dashboard export, or the API's `{ "dashboard": ... }` envelope.
    let doc = doc.get("dashboard").unwrap_or(&doc);
    if !doc.is_object() {
        reader.error("", None, "a Grafana dashboard is a JSON object");
        return;
    }
    let title = doc.get("title").and_then(Value::as_str).unwrap_or("");
    let mut ctx = DashboardWalk {
        reader,
        dashboard: title,
    };
    if let Some(panels) = doc.get("panels").and_then(Value::as_array) {
        ctx.panels(panels, "panels", None);
    }
    // Dashboards from before Grafana 5 keep panels in rows.
    if let Some(rows) = doc.get("rows").and_then(Value::as_array) {
        for (i, row) in rows.iter().enumerate() {
            if let Some(panels) = row.get("panels").and_then(Value::as_array) {
                ctx.panels(panels, &format!("rows[{i}].panels"), None);
            }
        }
    }
}

struct DashboardWalk<'r, 'a, 'd> {
    reader: &'r mut Reader<'a>,
    dashboard: &'d str,
}

fn not_prometheus(datasource: Option<&Value>) -> bool {
    // A datasource of another type (Loki, Elasticsearch...) holds no PromQL; a datasource
    // named by a variable or absent is taken as the dashboard's Prometheus.
    datasource
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "prometheus" && !t.starts_with('$') && !t.starts_with("${"))
}

impl DashboardWalk<'_, '_, '_> {
    fn panels(&mut self, panels: &[Value], path: &str, inherited: Option<&Value>) {
        for (i, panel) in panels.iter().enumerate() {
            let here = format!("{path}[{i}]");
            let datasource = panel.get("datasource").or(inherited);
            if let Some(nested) = panel.get("panels").and_then(Value::as_array) {
                self.panels(nested, &format!("{here}.panels"), datasource);
            }
            let Some(targets) = panel.get("targets").and_then(Value::as_array) else {
                continue;
            };
            let title = panel
                .get("title")
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
                .unwrap_or("untitled panel");
            for (ti, target) in targets.iter().enumerate() {
                let Some(expr) = target.get("expr").and_then(Value::as_str) else {
                    continue;
                };
                let expr = expr.trim();
                if expr.is_empty() || not_prometheus(target.get("datasource").or(datasource)) {
                    continue;
                }
                let ref_id = target.get("refId").and_then(Value::as_str).unwrap_or("");
                let name = if ref_id.is_empty() {
                    format!("{title} #{ti}")
                } else {
                    format!("{title} [{ref_id}]")
                };
                let location = if self.dashboard.is_empty() {
                    format!("panel {title:?} ({here}.targets[{ti}])")
                } else {
                    format!(
                        "dashboard {:?}, panel {title:?} ({here}.targets[{ti}])",
                        self.dashboard
                    )
                };
                self.reader
                    .query(name, QueryRole::Panel, location, expr, None);
            }
        }
    }
}

fn promql_list(reader: &mut Reader<'_>, content: &str) {
    for (i, line) in content.lines().enumerate() {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let column = u32::try_from(line.len() - line.trim_start().len() + 1).unwrap_or(1);
        let name = format!("{}:{n}", reader.source);
        reader.query(
            name,
            QueryRole::Query,
            format!("line {n}"),
            text,
            Some((n, column)),
        );
    }
}

/// `expr` with Grafana template variables (`$var`, `${var}`, `${var:format}`, `[[var]]`)
/// replaced by something PromQL parses: a marker the needs treat as "label present, any
/// value" inside a quoted string; a duration inside a range or after `offset`; a marker
/// name in the label list of `by`, `without`, `on`, `ignoring`, `group_left/right` (which
/// the needs ignore) or as a metric name (before `{`, a selector the needs skip); and a
/// number elsewhere (`topk($n, ...)`, `> $threshold`).
#[must_use]
pub fn substitute_variables(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut brackets = 0usize;
    // For each open parenthesis: whether it opens a list of label names.
    let mut parens: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' && i + 1 < chars.len() {
                out.push(c);
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
                out.push(c);
                i += 1;
                continue;
            }
        }
        let variable = variable_at(&chars, i);
        if let Some((_, len)) = variable {
            let before_brace = chars.get(i + len) == Some(&'{');
            let replacement = if quote.is_some() {
                VARIABLE_MARKER
            } else if brackets > 0 || after_offset(&out) {
                "5m"
            } else if before_brace || parens.last() == Some(&true) {
                VARIABLE_MARKER
            } else {
                "1"
            };
            out.push_str(replacement);
            i += len;
            continue;
        }
        if quote.is_none() {
            match c {
                '"' | '\'' | '`' => quote = Some(c),
                '[' => brackets += 1,
                ']' => brackets = brackets.saturating_sub(1),
                '(' => parens.push(opens_label_list(&out)),
                ')' => {
                    parens.pop();
                }
                _ => {}
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether a `(` written after `out` opens a list of label names.
fn opens_label_list(out: &str) -> bool {
    let word: String = out
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    matches!(
        word.to_ascii_lowercase().as_str(),
        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
    )
}

fn after_offset(out: &str) -> bool {
    let trimmed = out.trim_end();
    trimmed.len() != out.len() && trimmed.to_ascii_lowercase().ends_with("offset")
}

/// The variable starting at `chars[i]`: its name and its length in characters.
fn variable_at(chars: &[char], i: usize) -> Option<(String, usize)> {
    let ident = |from: usize| -> String {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
            .collect()
    };
    match chars.get(i)? {
        '$' if chars.get(i + 1) == Some(&'{') => {
            let end = chars[i + 2..].iter().position(|c| *c == '}')?;
            let inner: String = chars[i + 2..i + 2 + end].iter().collect();
            let name = inner.split(':').next().unwrap_or("").to_owned();
            Some((name, end + 3))
        }
        '$' => {
            let name = ident(i + 1);
            // `$1` is a regular expression group in `label_replace`, not a variable.
            let starts_well = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            starts_well.then(|| {
                let len = name.chars().count() + 1;
                (name, len)
            })
        }
        '[' if chars.get(i + 1) == Some(&'[') => {
            let name = ident(i + 2);
            let close = i + 2 + name.chars().count();
            (!name.is_empty()
                && chars.get(close) == Some(&']')
                && chars.get(close + 1) == Some(&']'))
            .then(|| {
                let len = name.chars().count() + 4;
                (name, len)
            })
        }
        _ => None,
    }
}
