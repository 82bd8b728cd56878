//! The REST API: one poem-openapi service per area, assembled into one document.

pub(crate) mod agent;
mod analysis;
mod deployments;
mod experiments;
mod fleet;
mod ops;
mod pipelines;
mod queries;
mod tasks;
mod tokens;

use std::sync::Arc;

use phoenix_core::page::{MAX_PAGE_SIZE, PageRequest};
use poem_openapi::{OpenApiService, Tags};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use agent::AgentApi;
pub use analysis::AnalysisApi;
pub use deployments::DeploymentsApi;
pub use experiments::ExperimentsApi;
pub use fleet::FleetApi;
pub use ops::OpsApi;
pub use pipelines::PipelinesApi;
pub use queries::QueriesApi;
pub use tasks::TasksApi;
pub use tokens::TokensApi;

/// Groups of operations in the document.
#[derive(Debug, Tags)]
pub enum ApiTags {
    /// Experiments: define, run, judge, promote or roll back.
    Experiments,
    /// KPIs, cost analysis, cardinality and cost flow.
    Analysis,
    /// Pipeline templates, rendering, validation and preview.
    Pipelines,
    /// Agent communication (agent credentials only).
    Agent,
    /// The fleet of agents.
    Fleet,
    /// The task queue, for operators.
    Tasks,
    /// User API tokens (admin).
    Tokens,
    /// The query inventory: alerting and recording rules, dashboards, PromQL lists.
    Queries,
    /// Health, readiness and the server's own metrics.
    Operations,
}

/// Every API of the server.
pub type Apis = (
    OpsApi,
    ExperimentsApi,
    AnalysisApi,
    PipelinesApi,
    DeploymentsApi,
    AgentApi,
    FleetApi,
    TasksApi,
    TokensApi,
    QueriesApi,
);

/// The OpenAPI service over `state`, with `base` as the document's server URL (the path
/// the service is nested under, `/` when at the root).
#[must_use]
pub fn service(state: &Arc<AppState>, base: &str) -> OpenApiService<Apis, ()> {
    let apis = (
        OpsApi::new(state.clone()),
        ExperimentsApi::new(state.clone()),
        AnalysisApi::new(state.clone()),
        PipelinesApi::new(state.clone()),
        DeploymentsApi::new(state.clone()),
        AgentApi::new(state.clone()),
        FleetApi::new(state.clone()),
        TasksApi::new(state.clone()),
        TokensApi::new(state.clone()),
        QueriesApi::new(state.clone()),
    );
    OpenApiService::new(apis, "Phoenix", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .server(base)
}

const DESCRIPTION: &str = "\
Phoenix control plane. Users authenticate with `Authorization: Bearer <user token>` \
(roles viewer < operator < admin); agents with their credential from `POST /api/v1/agent/enroll`. \
Errors are always `{\"error\": {\"code\", \"message\", \"details\"}}`. Lists are cursor-paginated: \
pass a page's `next_cursor` as `cursor`. Real-time updates: WebSocket `GET /api/v1/ws` \
(see the WebSocket guide in the docs).";

/// The 422 for a cursor that no page handed out (field `cursor`).
pub(crate) fn malformed_cursor(cursor: &str) -> ApiError {
    ApiError::validation(vec![phoenix_core::validation::FieldError::new(
        "cursor",
        format!(
            "malformed cursor `{}`: pass a page's next_cursor unchanged",
            cursor.chars().take(64).collect::<String>()
        ),
    )])
}

/// The page cursor of lists of records, as the document states it (`spec.rs`): empty (no
/// cursor) or a hyphenated UUID, the only form pages hand out.
pub(crate) const UUID_CURSOR_PATTERN: &str =
    "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$";

/// The page cursor of event lists (a sequence number), as the document states it: empty
/// or up to 19 decimal digits (always within `u64`).
pub(crate) const SEQ_CURSOR_PATTERN: &str = "^[0-9]{0,19}$";

/// A page request from `cursor` and `limit`, after checking the cursor is a hyphenated
/// UUID (422 otherwise, before any store sees it; `uuid` alone would also take the simple,
/// braced and URN forms, which the document does not state).
pub(crate) fn uuid_page(cursor: Option<String>, limit: Option<u32>) -> ApiResult<PageRequest> {
    // An empty cursor is no cursor (`?cursor=`).
    let cursor = cursor.filter(|c| !c.is_empty());
    if let Some(c) = &cursor
        && (c.len() != 36 || uuid::Uuid::parse_str(c).is_err())
    {
        return Err(malformed_cursor(c));
    }
    Ok(PageRequest {
        after: cursor,
        limit: limit.map(|l| (l as usize).min(MAX_PAGE_SIZE)),
    })
}

/// The sequence number after which an event page starts: 0 without a cursor, else the
/// cursor's digits (422 for anything but 1 to 19 decimal digits: no sign, which `u64`'s
/// parser would take).
pub(crate) fn seq_cursor(cursor: Option<&str>) -> ApiResult<u64> {
    match cursor.filter(|c| !c.is_empty()) {
        None => Ok(0),
        Some(c) if c.len() <= 19 && c.bytes().all(|b| b.is_ascii_digit()) => {
            c.parse().map_err(|_| malformed_cursor(c))
        }
        Some(c) => Err(malformed_cursor(c)),
    }
}
