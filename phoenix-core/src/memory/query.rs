//! [`QueryStore`] on the in-memory state.

use async_trait::async_trait;
use uuid::Uuid;

use super::MemoryStore;
use crate::error::StoreError;
use crate::queries::QuerySource;
use crate::store::QueryStore;

#[async_trait]
impl QueryStore for MemoryStore {
    async fn put_query_source(&self, source: &QuerySource) -> Result<Uuid, StoreError> {
        let mut state = self.lock();
        let id = state
            .query_sources
            .values()
            .find(|s| s.name == source.name)
            .map_or(source.id, |s| s.id);
        let mut stored = source.clone();
        stored.id = id;
        state.query_sources.insert(id, stored);
        Ok(id)
    }

    async fn list_query_sources(&self) -> Result<Vec<QuerySource>, StoreError> {
        let mut sources: Vec<QuerySource> = self.lock().query_sources.values().cloned().collect();
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sources)
    }

    async fn delete_query_source(&self, id: Uuid) -> Result<(), StoreError> {
        self.lock()
            .query_sources
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| StoreError::not_found("query source", id))
    }
}
