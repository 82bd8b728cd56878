//! The query inventory: sources of PromQL queries (rule files, dashboards, lists).

use chrono::{DateTime, Utc};
use phoenix_core::queries as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mirror_enum! {
    /// What a source is.
    SourceKind => core::SourceKind {
        /// A Prometheus rule file (alerting and recording rules), YAML.
        RuleFile,
        /// A Grafana dashboard JSON export.
        GrafanaDashboard,
        /// Plain PromQL, one query a line, `#` comments.
        PromqlList,
    }
}

mirror_enum! {
    /// What a query is within its source.
    QueryRole => core::QueryRole {
        /// An alerting rule.
        Alert,
        /// A recording rule.
        Record,
        /// A dashboard panel target.
        Panel,
        /// A line of a PromQL list.
        Query,
    }
}

/// Body of `POST /queries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct NewQuerySource {
    /// Unique name (usually the file name); importing a name again replaces that source.
    pub name: String,
    /// What the content is.
    pub kind: SourceKind,
    /// The file's content.
    pub content: String,
}

/// One inventoried query and what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct InventoryQuery {
    /// The alert or recorded series, the panel title and target, or the list line.
    pub name: String,
    /// What it is.
    pub role: QueryRole,
    /// Where it is in its source.
    pub location: String,
    /// The PromQL as written.
    pub expr: String,
    /// Its selectors (metric and matchers), as PromQL.
    pub selectors: Vec<String>,
    /// The metrics it selects by name.
    pub metrics: Vec<String>,
    /// The labels it needs by name: matched, grouped, matched on, copied.
    pub labels: Vec<String>,
}

impl From<core::InventoryQuery> for InventoryQuery {
    fn from(q: core::InventoryQuery) -> Self {
        let mut metrics: Vec<String> = q.needs.metrics().map(str::to_owned).collect();
        metrics.sort();
        metrics.dedup();
        let labels = q.needs.labels().into_iter().map(str::to_owned).collect();
        Self {
            selectors: q.needs.selectors.iter().map(|s| s.text.clone()).collect(),
            metrics,
            labels,
            name: q.name,
            role: q.role.into(),
            location: q.location,
            expr: q.expr,
        }
    }
}

/// An imported source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct QuerySource {
    /// Id (kept when the name is imported again).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
    /// When it was last imported.
    pub imported_at: DateTime<Utc>,
    /// Who imported it.
    pub imported_by: String,
    /// Its queries, in source order.
    pub queries: Vec<InventoryQuery>,
}

impl From<core::QuerySource> for QuerySource {
    fn from(s: core::QuerySource) -> Self {
        Self {
            id: s.id,
            name: s.name,
            kind: s.kind.into(),
            imported_at: s.imported_at,
            imported_by: s.imported_by,
            queries: s.queries.into_iter().map(Into::into).collect(),
        }
    }
}

/// Every source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct QuerySourceList {
    /// Sources, by name.
    pub items: Vec<QuerySource>,
}

mirror_enum! {
    /// How a query fares under a candidate.
    QueryStatus => core::QueryStatus {
        /// Answered as under the baseline.
        Answered,
        /// Answers differently: groups merge or output series lose labels.
        Changed,
        /// Returns nothing where the baseline returned something.
        Broken,
        /// Its series are not in the baseline either.
        Unobserved,
    }
}

/// One query's status, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct QueryVerdict {
    /// The query's name.
    pub name: String,
    /// Where it is in its source.
    pub location: String,
    /// Its status.
    pub status: QueryStatus,
    /// Why.
    pub reasons: Vec<String>,
}

impl From<core::QueryVerdict> for QueryVerdict {
    fn from(v: core::QueryVerdict) -> Self {
        Self {
            name: v.name,
            location: v.location,
            status: v.status.into(),
            reasons: v.reasons,
        }
    }
}

/// How the inventory fares under a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct QueriesKept {
    /// Queries answered as under the baseline.
    pub answered: u32,
    /// Queries that answer differently.
    pub changed: u32,
    /// Queries that return nothing where the baseline returned something.
    pub broken: u32,
    /// Queries whose series are not in the baseline either.
    pub unobserved: u32,
    /// The broken and changed queries, broken first.
    pub affected: Vec<QueryVerdict>,
}

impl From<core::QueriesKept> for QueriesKept {
    fn from(k: core::QueriesKept) -> Self {
        Self {
            answered: k.answered,
            changed: k.changed,
            broken: k.broken,
            unobserved: k.unobserved,
            affected: k.affected.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a recommendation does to the query inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RecommendationQueries {
    /// Inventoried queries reading series the action touches that answer as before.
    pub kept: u32,
    /// Their names, the first ten in inventory order (`kept` counts them all).
    pub kept_queries: Vec<String>,
    /// Queries that would answer differently (groups merge, output series lose a label),
    /// with why; only when changed queries were allowed (`allow_changed_queries`).
    pub changed: Vec<QueryVerdict>,
    /// Queries answering on the snapshots that read nothing the action touches.
    pub untouched: u32,
    /// Queries with no series in the snapshots.
    pub unobserved: u32,
}

impl From<phoenix_core::cardinality::QueryImpact> for RecommendationQueries {
    fn from(q: phoenix_core::cardinality::QueryImpact) -> Self {
        Self {
            kept: q.kept,
            kept_queries: q.kept_queries,
            changed: q.changed.into_iter().map(Into::into).collect(),
            untouched: q.untouched,
            unobserved: q.unobserved,
        }
    }
}

impl crate::convert::FromCore<phoenix_core::cardinality::QueryImpact> for RecommendationQueries {
    fn from_core(q: phoenix_core::cardinality::QueryImpact) -> Self {
        q.into()
    }
}

impl crate::convert::FromCore<core::QueriesKept> for QueriesKept {
    fn from_core(c: core::QueriesKept) -> Self {
        c.into()
    }
}

/// The reasons one sample gives for one broken or changed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct QueryReasons {
    /// The query, by index into the experiment's queries (its status must be `b` or `c`).
    pub query: u32,
    /// Why (at most 4, each at most 1,024 characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub reasons: Vec<String>,
}

/// What one sample says of the experiment's queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct SampleQueries {
    /// One letter per query of the experiment, in the experiment's order: `a` answered,
    /// `c` changed, `b` broken, `u` unobserved; exactly as many as the experiment has
    /// queries (at most 1,000).
    pub statuses: String,
    /// Reasons for at most 16 broken or changed queries, broken first.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", oai(default))]
    pub reasons: Vec<QueryReasons>,
}

impl From<core::SampleQueries> for SampleQueries {
    fn from(q: core::SampleQueries) -> Self {
        Self {
            statuses: q.statuses,
            reasons: q
                .reasons
                .into_iter()
                .map(|r| QueryReasons {
                    query: r.query,
                    reasons: r.reasons,
                })
                .collect(),
        }
    }
}

impl From<SampleQueries> for core::SampleQueries {
    fn from(q: SampleQueries) -> Self {
        Self {
            statuses: q.statuses,
            reasons: q
                .reasons
                .into_iter()
                .map(|r| core::QueryReasons {
                    query: r.query,
                    reasons: r.reasons,
                })
                .collect(),
        }
    }
}
