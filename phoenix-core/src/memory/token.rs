//! [`TokenStore`] on the in-memory state.

use async_trait::async_trait;

use super::MemoryStore;
use crate::agent::SecretHash;
use crate::auth::ApiToken;
use crate::error::StoreError;
use crate::store::TokenStore;

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state
            .tokens
            .iter()
            .any(|t| t.id == token.id || t.hash == token.hash)
        {
            return Err(StoreError::conflict("token", token.id));
        }
        state.tokens.push(token.clone());
        Ok(())
    }

    async fn find_token(&self, hash: &SecretHash) -> Result<Option<ApiToken>, StoreError> {
        Ok(self
            .lock()
            .tokens
            .iter()
            .find(|t| !t.revoked && t.hash.verify_hash(hash))
            .cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens = self.lock().tokens.clone();
        tokens.sort_by_key(|t| std::cmp::Reverse(t.id));
        Ok(tokens)
    }

    async fn revoke_token(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        let mut state = self.lock();
        let token = state
            .tokens
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| StoreError::not_found("token", id))?;
        token.revoked = true;
        Ok(())
    }
}
