//! The query inventory: imported sources of PromQL queries.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::StoreError;
use crate::queries::QuerySource;

/// Imported query sources (rule files, dashboards, PromQL lists), unique by name.
#[async_trait]
pub trait QueryStore: Send + Sync + 'static {
    /// Stores `source`. When a source of the same name exists, it is replaced in one atomic
    /// step and keeps its id (`source.id` is then ignored). Returns the id stored under.
    async fn put_query_source(&self, source: &QuerySource) -> Result<Uuid, StoreError>;

    /// Every source, by name.
    async fn list_query_sources(&self) -> Result<Vec<QuerySource>, StoreError>;

    /// Removes a source. `NotFound` if absent.
    async fn delete_query_source(&self, id: Uuid) -> Result<(), StoreError>;
}
