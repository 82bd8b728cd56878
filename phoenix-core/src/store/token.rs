//! User API tokens.

use async_trait::async_trait;

use crate::agent::SecretHash;
use crate::auth::ApiToken;
use crate::error::StoreError;

/// User API tokens (stored hashed).
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a token. `Conflict` if the id or the hash exists.
    async fn create_token(&self, token: &ApiToken) -> Result<(), StoreError>;

    /// The non-revoked token with this hash, if any.
    async fn find_token(&self, hash: &SecretHash) -> Result<Option<ApiToken>, StoreError>;

    /// Every token (revoked included), newest first.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes a token. Idempotent; `NotFound` if absent.
    async fn revoke_token(&self, id: uuid::Uuid) -> Result<(), StoreError>;
}
