//! [`TokenStore`] on the `api_tokens` table.

use async_trait::async_trait;
use phoenix_core::agent::SecretHash;
use phoenix_core::auth::ApiToken;
use phoenix_core::store::{StoreError, TokenStore};
use sqlx::types::Json;

use crate::PgStore;
use crate::codec;
use crate::error::store_error;

fn tokens(rows: Vec<Json<serde_json::Value>>) -> Result<Vec<ApiToken>, StoreError> {
    rows.into_iter()
        .map(|Json(body)| codec::from_body("token", body))
        .collect()
}

#[async_trait]
impl TokenStore for PgStore {
    async fn create_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        // Either unique constraint (id or hash) makes this a conflict.
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (id, hash, revoked, body) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(token.id)
        .bind(&token.hash.0)
        .bind(token.revoked)
        .bind(Json(codec::body(token)?))
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::conflict("token", token.id));
        }
        Ok(())
    }

    async fn find_token(&self, hash: &SecretHash) -> Result<Option<ApiToken>, StoreError> {
        // An equality look-up on the hash of a 256-bit secret: its timing reveals nothing
        // an attacker could use (the in-memory store compares in constant time because it
        // scans).
        let rows: Vec<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT body FROM api_tokens WHERE hash = $1 AND NOT revoked")
                .bind(&hash.0)
                .fetch_all(self.pool_ref())
                .await
                .map_err(store_error)?;
        Ok(tokens(rows)?.into_iter().next())
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<Json<serde_json::Value>> =
            sqlx::query_scalar("SELECT body FROM api_tokens ORDER BY id DESC")
                .fetch_all(self.pool_ref())
                .await
                .map_err(store_error)?;
        tokens(rows)
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked = true, body = jsonb_set(body, '{revoked}', 'true') \
             WHERE id = $1",
        )
        .bind(id)
        .execute(self.pool_ref())
        .await
        .map_err(store_error)?;
        if revoked.rows_affected() == 0 {
            return Err(StoreError::not_found("token", id));
        }
        Ok(())
    }
}
