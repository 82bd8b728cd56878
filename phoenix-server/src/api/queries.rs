//! `/api/v1/queries`: the query inventory (operators write, viewers read).

use std::sync::Arc;

use phoenix_api::query::{NewQuerySource, QuerySource, QuerySourceList};
use phoenix_core::auth::Role;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::error::ApiResult;
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Query inventory operations.
#[derive(Debug)]
pub struct QueriesApi {
    state: Arc<AppState>,
}

impl QueriesApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// 201 with the stored source.
#[derive(Debug, ApiResponse)]
pub enum Imported {
    /// Imported (a source of the same name was replaced, keeping its id).
    #[oai(status = 201)]
    Imported(Json<QuerySource>),
}

/// 204.
#[derive(Debug, ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Queries")]
impl QueriesApi {
    /// Import a query source
    ///
    /// Operator role. A Prometheus rule file, a Grafana dashboard export or a PromQL
    /// list; every query is parsed and what it needs derived. A source of the same name is
    /// replaced. A query that does not parse is a 422 naming the source, the rule or panel
    /// and the position; nothing is stored then.
    #[oai(
        path = "/queries",
        method = "post",
        operation_id = "import_query_source"
    )]
    async fn import(
        &self,
        auth: UserToken,
        body: StrictJson<NewQuerySource>,
    ) -> ApiResult<Imported> {
        let user = self.state.user(&auth, Role::Operator).await?;
        let body = body.0;
        let source = self
            .state
            .phoenix
            .import_query_source(&body.name, body.kind.into(), &body.content, &user.name)
            .await?;
        tracing::info!(source = %source.name, queries = source.queries.len(), by = %user.name, "query source imported");
        Ok(Imported::Imported(Json(source.into())))
    }

    /// List query sources
    ///
    /// Viewer role. Every source with its queries and what each needs.
    #[oai(path = "/queries", method = "get", operation_id = "list_query_sources")]
    async fn list(&self, auth: UserToken) -> ApiResult<Json<QuerySourceList>> {
        self.state.user(&auth, Role::Viewer).await?;
        let sources = self.state.phoenix.query_sources().await?;
        Ok(Json(QuerySourceList {
            items: sources.into_iter().map(Into::into).collect(),
        }))
    }

    /// Delete a query source
    ///
    /// Operator role.
    #[oai(
        path = "/queries/:id",
        method = "delete",
        operation_id = "delete_query_source"
    )]
    async fn delete(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Deleted> {
        let user = self.state.user(&auth, Role::Operator).await?;
        self.state.phoenix.delete_query_source(id.0).await?;
        tracing::info!(source = %id.0, by = %user.name, "query source deleted");
        Ok(Deleted::Deleted)
    }
}
