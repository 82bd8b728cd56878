//! Validation of any OpenTelemetry Collector YAML config: bounded parsing ([`super::yaml`]),
//! then the graph and component checks a stock `otelcol-contrib` would otherwise fail on at
//! start-up, plus Phoenix's own safety rules. Every problem is reported with its path and
//! the line and column where it was found.
//!
//! Checks: known top-level sections; component ids `type[/name]` whose type is in an
//! allow-list of real otelcol-contrib components (no `file` exporter, which writes to
//! arbitrary paths); every pipeline has receivers and exporters and references defined
//! components only, each at most once; service extensions are defined; durations and
//! endpoints parse; the hostmetrics, prometheus, memory_limiter, filter and transform
//! settings Phoenix renders are well formed (OTTL quotes and parentheses balance); no
//! `${provider:...}` expansion other than `env` (the Collector's `file`/`http` providers
//! would read files or call out at start-up).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::syntax::{check_host_port, check_http_url, parse_go_duration};
use super::yaml::{self, Node, YamlLimits};

/// Receivers a rendered or submitted config may use.
pub const RECEIVERS: &[&str] = &["otlp", "hostmetrics", "prometheus"];
/// Processors a config may use.
pub const PROCESSORS: &[&str] = &[
    "memory_limiter",
    "batch",
    "filter",
    "transform",
    "attributes",
    "resource",
    "resourcedetection",
    "metricstransform",
    "groupbyattrs",
    "cumulativetodelta",
    "deltatocumulative",
    "interval",
    "probabilistic_sampler",
];
/// Exporters a config may use.
pub const EXPORTERS: &[&str] = &[
    "otlp",
    "otlphttp",
    "prometheus",
    "prometheusremotewrite",
    "debug",
];
/// Extensions a config may use.
pub const EXTENSIONS: &[&str] = &["health_check", "pprof", "zpages", "opamp"];
/// hostmetrics scrapers.
pub const SCRAPERS: &[&str] = &[
    "cpu",
    "memory",
    "load",
    "disk",
    "filesystem",
    "network",
    "paging",
    "processes",
    "process",
];

/// The settings of components whose configuration is flat, as the pinned Collector (v0.165)
/// decodes them: an unknown key is an error there (`has invalid keys`), so it is here too.
const SETTINGS: &[(&str, &str, &[&str])] = &[
    (
        "processors",
        "batch",
        &[
            "timeout",
            "send_batch_size",
            "send_batch_max_size",
            "metadata_keys",
            "metadata_cardinality_limit",
        ],
    ),
    (
        "processors",
        "memory_limiter",
        &[
            "check_interval",
            "min_gc_interval_when_soft_limited",
            "min_gc_interval_when_hard_limited",
            "max_gc_interval_when_soft_limited",
            "max_gc_interval_when_hard_limited",
            "garbage_collector",
            "limit_mib",
            "spike_limit_mib",
            "limit_percentage",
            "spike_limit_percentage",
        ],
    ),
    ("processors", "groupbyattrs", &["keys"]),
];

const SECTIONS: &[&str] = &[
    "receivers",
    "processors",
    "exporters",
    "extensions",
    "connectors",
    "service",
];

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigIssue {
    /// Dotted path (`service.pipelines.metrics.exporters[0]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// Line, from 1, when known.
    pub line: Option<u32>,
    /// Column, from 1, when known.
    pub column: Option<u32>,
}

/// A valid config's pipelines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CollectorSummary {
    /// The pipelines, in document order.
    pub pipelines: Vec<PipelineSummary>,
}

/// One pipeline of a valid config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineSummary {
    /// `metrics/candidate`.
    pub name: String,
    /// Receiver ids.
    pub receivers: Vec<String>,
    /// Processor ids, in order.
    pub processors: Vec<String>,
    /// Exporter ids.
    pub exporters: Vec<String>,
}

/// Validates `text` as a Collector config with the default [`YamlLimits`].
///
/// # Errors
/// Every problem found (parsing stops at the first syntax or limit error).
pub fn validate_collector_yaml(text: &str) -> Result<CollectorSummary, Vec<ConfigIssue>> {
    validate_with_limits(text, &YamlLimits::default())
}

/// Validates `text` within `limits`.
///
/// # Errors
/// Every problem found.
pub fn validate_with_limits(
    text: &str,
    limits: &YamlLimits,
) -> Result<CollectorSummary, Vec<ConfigIssue>> {
    let root = yaml::parse(text, limits).map_err(|e| {
        vec![ConfigIssue {
            path: String::new(),
            message: e.kind.to_string(),
            line: (e.line > 0).then_some(e.line),
            column: (e.line > 0).then_some(e.column),
        }]
    })?;
    let mut v = Validator::default();
    let summary = v.config(&root);
    if v.issues.is_empty() {
        Ok(summary)
    } else {
        Err(v.issues)
    }
}

#[derive(Default)]
struct Validator {
    issues: Vec<ConfigIssue>,
}

struct Section<'a> {
    ids: Vec<(&'a str, &'a Node)>,
}

impl Validator {
    fn issue(&mut self, path: &str, node: &Node, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            path: path.to_owned(),
            message: message.into(),
            line: Some(node.line),
            column: Some(node.column),
        });
    }

    fn config(&mut self, root: &Node) -> CollectorSummary {
        let Some(entries) = root.as_mapping() else {
            self.issue("", root, "the config must be a mapping");
            return CollectorSummary::default();
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if !SECTIONS.contains(&key) {
                self.issue(
                    key,
                    k,
                    format!(
                        "unknown top-level key (expected one of: {})",
                        SECTIONS.join(", ")
                    ),
                );
            }
        }
        let receivers = self.section(root, "receivers", RECEIVERS);
        let processors = self.section(root, "processors", PROCESSORS);
        let exporters = self.section(root, "exporters", EXPORTERS);
        let extensions = self.section(root, "extensions", EXTENSIONS);
        let connectors = self.section(root, "connectors", &[]);
        self.expansions(root);
        let Some(service) = root.get("service") else {
            self.issue("service", root, "missing `service`");
            return CollectorSummary::default();
        };
        let Some(service_entries) = service.as_mapping() else {
            self.issue("service", service, "must be a mapping");
            return CollectorSummary::default();
        };
        for (k, _) in service_entries {
            let key = k.as_str().unwrap_or_default();
            if !["extensions", "pipelines", "telemetry"].contains(&key) {
                self.issue(
                    &format!("service.{key}"),
                    k,
                    "unknown key (expected extensions, pipelines, telemetry)",
                );
            }
        }
        if let Some(list) = service.get("extensions") {
            self.references(
                "service.extensions",
                list,
                &[&extensions],
                false,
                "extension",
            );
        }
        let mut summary = CollectorSummary::default();
        let Some(pipelines) = service.get("pipelines") else {
            self.issue("service.pipelines", service, "missing `pipelines`");
            return summary;
        };
        let Some(pipeline_entries) = pipelines.as_mapping().filter(|e| !e.is_empty()) else {
            self.issue(
                "service.pipelines",
                pipelines,
                "must be a non-empty mapping",
            );
            return summary;
        };
        for (k, p) in pipeline_entries {
            let name = k.as_str().unwrap_or_default();
            let path = format!("service.pipelines.{name}");
            let signal = name.split('/').next().unwrap_or_default();
            if !["metrics", "logs", "traces"].contains(&signal) || !valid_id(name) {
                self.issue(&path, k, "pipeline ids are `metrics`, `logs` or `traces`, optionally followed by `/name`");
            }
            let Some(fields) = p.as_mapping() else {
                self.issue(&path, p, "must be a mapping");
                continue;
            };
            for (fk, _) in fields {
                let key = fk.as_str().unwrap_or_default();
                if !["receivers", "processors", "exporters"].contains(&key) {
                    self.issue(
                        &format!("{path}.{key}"),
                        fk,
                        "unknown key (expected receivers, processors, exporters)",
                    );
                }
            }
            let mut list =
                |field: &str, sections: &[&Section<'_>], required: bool, what: &str| match p
                    .get(field)
                {
                    Some(node) => {
                        self.references(&format!("{path}.{field}"), node, sections, required, what)
                    }
                    None if required => {
                        self.issue(
                            &format!("{path}.{field}"),
                            p,
                            format!("a pipeline needs at least one {what}"),
                        );
                        Vec::new()
                    }
                    None => Vec::new(),
                };
            let r = list("receivers", &[&receivers, &connectors], true, "receiver");
            let pr = list("processors", &[&processors], false, "processor");
            let e = list("exporters", &[&exporters, &connectors], true, "exporter");
            summary.pipelines.push(PipelineSummary {
                name: name.to_owned(),
                receivers: r,
                processors: pr,
                exporters: e,
            });
        }
        self.listeners(root, service, &summary);
        summary
    }

    /// Two components of the running Collector listening on one address fail its start
    /// (`bind: address already in use`), which `otelcol validate` does not see. Listeners:
    /// the prometheus exporters and otlp receivers of the pipelines, the service's
    /// extensions, and the Collector's own telemetry (`localhost:8888` unless configured).
    fn listeners<'a>(&mut self, root: &'a Node, service: &'a Node, summary: &CollectorSummary) {
        let mut found: Vec<(String, &'a Node, String, String)> = Vec::new();
        let mut add = |path: String, node: &'a Node, address: &str| {
            if let Some((host, port)) = split_listen_address(address) {
                found.push((path, node, host, port));
            }
        };
        let used = |section: &str, id: &str| -> bool {
            summary.pipelines.iter().any(|p| match section {
                "receivers" => p.receivers.iter().any(|r| r == id),
                _ => p.exporters.iter().any(|e| e == id),
            })
        };
        for (section, kind, default) in [
            ("exporters", "prometheus", None),
            ("extensions", "health_check", Some("localhost:13133")),
            ("extensions", "pprof", Some("localhost:1777")),
            ("extensions", "zpages", Some("localhost:55679")),
        ] {
            let Some(entries) = root.get(section).and_then(Node::as_mapping) else {
                continue;
            };
            for (k, config) in entries {
                let id = k.as_str().unwrap_or_default();
                if id.split('/').next() != Some(kind) {
                    continue;
                }
                let enabled = if section == "extensions" {
                    service
                        .get("extensions")
                        .and_then(Node::as_sequence)
                        .is_some_and(|l| l.iter().any(|e| e.as_str() == Some(id)))
                } else {
                    used(section, id)
                };
                if !enabled {
                    continue;
                }
                let path = format!("{section}.{id}.endpoint");
                match (config.get("endpoint"), default) {
                    (Some(e), _) => {
                        if let Some(a) = e.as_str() {
                            add(path, e, a);
                        }
                    }
                    (None, Some(d)) => add(path, k, d),
                    (None, None) => {}
                }
            }
        }
        if let Some(entries) = root.get("receivers").and_then(Node::as_mapping) {
            for (k, config) in entries {
                let id = k.as_str().unwrap_or_default();
                if id.split('/').next() != Some("otlp") || !used("receivers", id) {
                    continue;
                }
                for (protocol, default) in [("grpc", "localhost:4317"), ("http", "localhost:4318")]
                {
                    let Some(p) = config.get("protocols").and_then(|p| p.get(protocol)) else {
                        continue;
                    };
                    let path = format!("receivers.{id}.protocols.{protocol}.endpoint");
                    match p.get("endpoint").and_then(Node::as_str) {
                        Some(a) => add(path, p.get("endpoint").unwrap_or(p), a),
                        None => add(path, p, default),
                    }
                }
            }
        }
        let metrics = service.get("telemetry").and_then(|t| t.get("metrics"));
        let disabled = metrics
            .and_then(|m| m.get("level"))
            .and_then(Node::as_str)
            .is_some_and(|l| l == "none");
        let readers = metrics.and_then(|m| m.get("readers"));
        if !disabled && readers.is_none() {
            add(
                "service.telemetry.metrics".to_owned(),
                service,
                "localhost:8888",
            );
        }
        // Report the clash on the later of two components in start order (telemetry and
        // extensions first, then receivers, then exporters).
        found.sort_by_key(|(path, ..)| match path.split('.').next() {
            Some("service") => 0,
            Some("extensions") => 1,
            Some("receivers") => 2,
            _ => 3,
        });
        for (i, (path, node, host, port)) in found.iter().enumerate() {
            if let Some((other, ..)) = found[..i]
                .iter()
                .find(|(_, _, h, p)| p == port && hosts_overlap(h, host))
            {
                self.issue(
                    path,
                    node,
                    format!("listens on port {port} like `{other}`: the Collector would fail to start (address already in use)"),
                );
            }
        }
    }

    /// Checks a section and returns its component ids.
    fn section<'a>(&mut self, root: &'a Node, name: &str, allowed: &[&str]) -> Section<'a> {
        let mut section = Section { ids: Vec::new() };
        let Some(node) = root.get(name) else {
            return section;
        };
        if node.is_null() {
            return section;
        }
        let Some(entries) = node.as_mapping() else {
            self.issue(name, node, "must be a mapping of components");
            return section;
        };
        for (k, config) in entries {
            let id = k.as_str().unwrap_or_default();
            let path = format!("{name}.{id}");
            let kind = id.split('/').next().unwrap_or_default();
            if !valid_id(id) {
                self.issue(
                    &path,
                    k,
                    "component ids are `type` or `type/name` (letters, digits, `_`, `-`, `.`)",
                );
            } else if name == "exporters" && kind == "file" {
                self.issue(
                    &path,
                    k,
                    "the file exporter is not allowed: it writes to arbitrary paths on the host",
                );
            } else if !allowed.contains(&kind) {
                let message = if allowed.is_empty() {
                    format!("no {name} are allowed")
                } else {
                    format!(
                        "`{kind}` is not an allowed otelcol-contrib component here (allowed: {})",
                        allowed.join(", ")
                    )
                };
                self.issue(&path, k, message);
            }
            if !config.is_null() && config.as_mapping().is_none() {
                self.issue(&path, config, "component settings must be a mapping");
                continue;
            }
            self.durations(&path, config);
            self.component(name, kind, &path, config);
            section.ids.push((id, k));
        }
        section
    }

    /// Checks a list of component references.
    fn references(
        &mut self,
        path: &str,
        node: &Node,
        sections: &[&Section<'_>],
        required: bool,
        what: &str,
    ) -> Vec<String> {
        let Some(items) = node.as_sequence() else {
            if node.is_null() && !required {
                return Vec::new();
            }
            self.issue(path, node, format!("must be a list of {what} ids"));
            return Vec::new();
        };
        if required && items.is_empty() {
            self.issue(path, node, format!("a pipeline needs at least one {what}"));
        }
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(id) = item.as_str() else {
                self.issue(&p, item, format!("must be a {what} id"));
                continue;
            };
            if !sections.iter().any(|s| s.ids.iter().any(|(d, _)| *d == id)) {
                self.issue(&p, item, format!("{what} `{id}` is not defined"));
            }
            if !seen.insert(id) {
                self.issue(&p, item, format!("{what} `{id}` is listed twice"));
            }
            out.push(id.to_owned());
        }
        out
    }

    /// Durations anywhere in a component's settings.
    fn durations(&mut self, path: &str, node: &Node) {
        let Some(entries) = node.as_mapping() else {
            if let Some(items) = node.as_sequence() {
                for (i, item) in items.iter().enumerate() {
                    self.durations(&format!("{path}[{i}]"), item);
                }
            }
            return;
        };
        for (k, v) in entries {
            let key = k.as_str().unwrap_or_default();
            let p = format!("{path}.{key}");
            let is_duration = matches!(
                key,
                "collection_interval"
                    | "scrape_interval"
                    | "scrape_timeout"
                    | "check_interval"
                    | "timeout"
                    | "initial_delay"
            );
            if is_duration {
                let ok = v.as_i64().is_some_and(|n| n >= 0)
                    || v.as_str().is_some_and(|s| parse_go_duration(s).is_some());
                if !ok {
                    self.issue(&p, v, "must be a duration such as `10s` or `1m30s`");
                }
            } else {
                self.durations(&p, v);
            }
        }
    }

    fn endpoint(&mut self, path: &str, config: &Node, url: bool) {
        if let Some(e) = config.get("endpoint") {
            let p = format!("{path}.endpoint");
            let result = match e.as_str() {
                Some(s) if url => check_http_url(s),
                Some(s) => check_host_port(s),
                None => Err("must be a string"),
            };
            if let Err(m) = result {
                self.issue(&p, e, m);
            }
        }
    }

    fn component(&mut self, section: &str, kind: &str, path: &str, config: &Node) {
        if let Some((.., known)) = SETTINGS
            .iter()
            .find(|(s, k, _)| *s == section && *k == kind)
        {
            for (k, _) in config.as_mapping().unwrap_or_default() {
                let key = k.as_str().unwrap_or_default();
                if !known.contains(&key) {
                    self.issue(
                        &format!("{path}.{key}"),
                        k,
                        format!("unknown setting of `{kind}` (known: {})", known.join(", ")),
                    );
                }
            }
        }
        match (section, kind) {
            ("receivers", "hostmetrics") => {
                match config.get("scrapers").and_then(Node::as_mapping) {
                    Some(scrapers) if !scrapers.is_empty() => {
                        for (k, _) in scrapers {
                            let s = k.as_str().unwrap_or_default();
                            if !SCRAPERS.contains(&s) {
                                self.issue(
                                    &format!("{path}.scrapers.{s}"),
                                    k,
                                    format!("unknown scraper (allowed: {})", SCRAPERS.join(", ")),
                                );
                            }
                        }
                    }
                    _ => self.issue(
                        &format!("{path}.scrapers"),
                        config,
                        "at least one scraper is required",
                    ),
                }
            }
            ("receivers", "prometheus") => self.prometheus_receiver(path, config),
            ("exporters", "otlphttp") => self.endpoint(path, config, true),
            ("exporters", "prometheus") | ("extensions", "health_check" | "pprof" | "zpages") => {
                self.endpoint(path, config, false);
            }
            ("processors", "memory_limiter") => {
                if config.get("check_interval").is_none() {
                    self.issue(&format!("{path}.check_interval"), config, "required");
                }
                if config.get("limit_mib").is_none() && config.get("limit_percentage").is_none() {
                    self.issue(
                        path,
                        config,
                        "`limit_mib` or `limit_percentage` is required",
                    );
                }
            }
            ("processors", "filter") => {
                for signal in ["metrics", "logs", "traces"] {
                    if let Some(ctx) = config.get(signal).and_then(Node::as_mapping) {
                        for (k, list) in ctx {
                            let p = format!("{path}.{signal}.{}", k.as_str().unwrap_or_default());
                            self.ottl_list(&p, list);
                        }
                    }
                }
            }
            ("processors", "transform") => {
                for field in ["metric_statements", "log_statements", "trace_statements"] {
                    let Some(groups) = config.get(field) else {
                        continue;
                    };
                    let p = format!("{path}.{field}");
                    let Some(items) = groups.as_sequence() else {
                        self.issue(&p, groups, "must be a list");
                        continue;
                    };
                    for (i, g) in items.iter().enumerate() {
                        let gp = format!("{p}[{i}]");
                        if let Some(statement) = g.as_str() {
                            if let Err(m) = ottl_balanced(statement) {
                                self.issue(&gp, g, m);
                            }
                        } else if let Some(statements) = g.get("statements") {
                            self.ottl_list(&format!("{gp}.statements"), statements);
                        } else {
                            self.issue(&gp, g, "a statement group needs `statements`");
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn prometheus_receiver(&mut self, path: &str, config: &Node) {
        let scrape = config.get("config").and_then(|c| c.get("scrape_configs"));
        let Some(jobs) = scrape.and_then(Node::as_sequence).filter(|j| !j.is_empty()) else {
            self.issue(
                &format!("{path}.config.scrape_configs"),
                config,
                "at least one scrape config is required",
            );
            return;
        };
        for (i, job) in jobs.iter().enumerate() {
            let p = format!("{path}.config.scrape_configs[{i}]");
            if job
                .get("job_name")
                .and_then(Node::as_str)
                .is_none_or(str::is_empty)
            {
                self.issue(&format!("{p}.job_name"), job, "required");
            }
            for (j, sc) in job
                .get("static_configs")
                .and_then(Node::as_sequence)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                for (t, target) in sc
                    .get("targets")
                    .and_then(Node::as_sequence)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let tp = format!("{p}.static_configs[{j}].targets[{t}]");
                    match target.as_str().map(check_host_port) {
                        Some(Ok(())) => {}
                        Some(Err(m)) => self.issue(&tp, target, m),
                        None => self.issue(&tp, target, "must be a `host:port` string"),
                    }
                }
            }
        }
    }

    fn ottl_list(&mut self, path: &str, list: &Node) {
        let Some(items) = list.as_sequence() else {
            self.issue(
                path,
                list,
                "must be a list of OTTL statements or conditions",
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            match item.as_str() {
                Some(s) if s.trim().is_empty() => self.issue(&p, item, "empty OTTL expression"),
                Some(s) => {
                    if let Err(m) = ottl_balanced(s) {
                        self.issue(&p, item, m);
                    }
                }
                None => self.issue(&p, item, "must be a string"),
            }
        }
    }

    /// `${provider:...}` expansions other than `env` are refused.
    fn expansions(&mut self, root: &Node) {
        let mut scalars = Vec::new();
        root.scalars(&mut scalars);
        for node in scalars {
            let text = node.as_str().unwrap_or_default();
            if let Err(m) = check_expansions(text) {
                self.issue("", node, m);
            }
        }
    }
}

/// `host:port` of a listen address, the host normalised (`localhost` is `127.0.0.1`, brackets
/// dropped); `None` when it is not one (reported elsewhere).
fn split_listen_address(address: &str) -> Option<(String, String)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1"
    } else {
        host
    };
    Some((host.to_owned(), port.to_owned()))
}

/// Whether two listeners on one port collide: the same host, or either on every address.
fn hosts_overlap(a: &str, b: &str) -> bool {
    let wildcard = |h: &str| matches!(h, "" | "0.0.0.0" | "::");
    a == b || wildcard(a) || wildcard(b)
}

fn valid_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '/');
    let kind = parts.next().unwrap_or_default();
    let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let name_ok = parts.next().is_none_or(|n| {
        !n.is_empty()
            && n.len() <= 128
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    });
    kind_ok && name_ok
}

/// Quotes closed and parentheses/brackets balanced in an OTTL expression.
fn ottl_balanced(s: &str) -> Result<(), &'static str> {
    let mut depth: Vec<char> = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                    None => return Err("unterminated string in OTTL expression"),
                }
            },
            '(' | '[' | '{' => depth.push(c),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if depth.pop() != Some(open) {
                    return Err("unbalanced brackets in OTTL expression");
                }
            }
            _ => {}
        }
    }
    if depth.is_empty() {
        Ok(())
    } else {
        Err("unbalanced brackets in OTTL expression")
    }
}

fn check_expansions(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                let end = text[i..].find('}').ok_or("unterminated `${` expansion")?;
                let inner = &text[i + 2..i + end];
                if let Some((provider, _)) = inner.split_once(':')
                    && provider != "env"
                {
                    return Err(format!(
                        "the `{provider}` config provider is not allowed (only `env`); write `$$` for a literal `$`"
                    ));
                }
                i += end + 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
