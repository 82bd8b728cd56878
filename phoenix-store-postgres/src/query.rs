//! [`QueryStore`] on the `query_sources` table.

use async_trait::async_trait;
use phoenix_core::queries::QuerySource;
use phoenix_core::store::{QueryStore, StoreError};
use sqlx::types::Json;
use uuid::Uuid;

use crate::PgStore;
use crate::codec;
use crate::error::store_error;

#[async_trait]
impl QueryStore for PgStore {
    async fn put_query_source(&self, source: &QuerySource) -> Result<Uuid, StoreError> {
        // One statement: the unique name makes a second import of a name an update of the
        // existing row, which keeps its id.
        sqlx::query_scalar(
            "INSERT INTO query_sources (id, name, body) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body RETURNING id",
        )
        .bind(source.id)
        .bind(&source.name)
        .bind(Json(codec::body(source)?))
        .fetch_one(self.pool_ref())
        .await
        .map_err(store_error)
    }

    async fn list_query_sources(&self) -> Result<Vec<QuerySource>, StoreError> {
        let rows: Vec<(Uuid, Json<serde_json::Value>)> =
            sqlx::query_as("SELECT id, body FROM query_sources ORDER BY name COLLATE \"C\"")
                .fetch_all(self.pool_ref())
                .await
                .map_err(store_error)?;
        rows.into_iter()
            .map(|(id, Json(body))| {
                let mut source: QuerySource = codec::from_body("query source", body)?;
                source.id = id;
                Ok(source)
            })
            .collect()
    }

    async fn delete_query_source(&self, id: Uuid) -> Result<(), StoreError> {
        let deleted = sqlx::query("DELETE FROM query_sources WHERE id = $1")
            .bind(id)
            .execute(self.pool_ref())
            .await
            .map_err(store_error)?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::not_found("query source", id));
        }
        Ok(())
    }
}
