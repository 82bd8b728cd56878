//! The query inventory: the PromQL queries that matter (alerting and recording rules,
//! dashboard panels, plain lists), what each needs of the series, and whether a set of
//! series still answers it.
//!
//! - [`source`] reads the three kinds of source ([`SourceKind`]): Prometheus rule files
//!   (YAML, `groups[].rules[]` with `alert`/`record` and `expr`), Grafana dashboard JSON
//!   exports (`targets[].expr` of every panel, rows and nested panels included, template
//!   variables substituted by parseable placeholders first) and PromQL lists (one query a
//!   line, `#` comments). A query that does not parse names its source, rule or panel and
//!   position.
//! - [`needs`] parses a query with `promql-parser` and derives its [`QueryNeeds`]: every
//!   selector (metric name and label matchers) and the labels it groups, matches or
//!   copies by.
//! - [`eval`] decides, from the series of a baseline and of a candidate, whether each query
//!   is answered, broken or changed, with the reason.
//! - [`frozen`] holds an experiment's copy of the inventory, the agent's compiled form of
//!   it and what one sample reports of it.

pub mod eval;
pub mod frozen;
pub mod needs;
pub mod source;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use eval::{
    QueriesKept, QueryStatus, QueryVerdict, Series, evaluate, evaluate_all, kept, series_of,
    series_of_snapshot, snapshot_label_name, snapshot_metric_name,
};
pub use frozen::{
    ExperimentQuery, MAX_EXPERIMENT_QUERIES, MAX_EXPERIMENT_QUERY_BYTES, QueryReasons, QuerySet,
    SampleQueries, TooLarge, freeze,
};
pub use needs::{LabelMatch, MatchKind, QueryNeeds, SelectorNeed, needs_of};
pub use source::{ParseError, parse_source};

/// Largest source content accepted, bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;
/// Most queries one source may hold.
pub const MAX_QUERIES_PER_SOURCE: usize = 2_000;
/// Longest single query, characters.
pub const MAX_QUERY_CHARS: usize = 16 * 1024;
/// Most sources in the inventory.
pub const MAX_SOURCES: usize = 1_000;

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Prometheus rule file (alerting and recording rules), YAML.
    RuleFile,
    /// A Grafana dashboard JSON export.
    GrafanaDashboard,
    /// Plain PromQL, one query a line, `#` comments.
    PromqlList,
}

impl SourceKind {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RuleFile => "rule_file",
            Self::GrafanaDashboard => "grafana_dashboard",
            Self::PromqlList => "promql_list",
        }
    }
}

/// What a query is, within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryRole {
    /// An alerting rule.
    Alert,
    /// A recording rule.
    Record,
    /// A dashboard panel target.
    Panel,
    /// A line of a PromQL list.
    Query,
}

/// One inventoried query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryQuery {
    /// Its name: the alert or recorded series, the panel title (and target), or the list's
    /// name and line.
    pub name: String,
    /// What it is.
    pub role: QueryRole,
    /// Where it is in its source (group and rule, panel path, line), for messages.
    pub location: String,
    /// The PromQL as written.
    pub expr: String,
    /// The PromQL parsed: `expr` with dashboard template variables substituted.
    pub promql: String,
    /// What it needs of the series.
    pub needs: QueryNeeds,
}

/// An imported source and the queries read from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySource {
    /// Identity (kept when a source of the same name is imported again).
    pub id: Uuid,
    /// Unique name (usually the file name).
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
    /// The queries, in source order.
    pub queries: Vec<InventoryQuery>,
    /// When it was (last) imported.
    pub imported_at: DateTime<Utc>,
    /// Who imported it.
    pub imported_by: String,
}

impl QuerySource {
    /// Reads `content` as a source of `kind` named `name`: every query parsed, or every
    /// error found (each naming the source, the rule or panel, and the position).
    pub fn import(
        name: &str,
        kind: SourceKind,
        content: &str,
        imported_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<ParseError>> {
        let queries = parse_source(name, kind, content)?;
        Ok(Self {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            kind,
            queries,
            imported_at: now,
            imported_by: imported_by.to_owned(),
        })
    }
}
