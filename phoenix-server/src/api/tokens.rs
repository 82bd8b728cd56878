//! `/api/v1/tokens` (admin) and `/api/v1/whoami`.

use std::sync::Arc;

use phoenix_api::token::{CreatedToken, NewToken, TokenList, WhoAmI};
use phoenix_core::auth::Role;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::error::{ApiError, ApiResult};
use crate::payload::StrictJson;
use crate::state::{AppState, UserToken};

/// Token operations.
#[derive(Debug)]
pub struct TokensApi {
    state: Arc<AppState>,
}

impl TokensApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// 201 with the secret.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// Created; the secret is shown once.
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

/// 204.
#[derive(Debug, ApiResponse)]
pub enum Revoked {
    /// Revoked (idempotent).
    #[oai(status = 204)]
    Revoked,
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Tokens")]
impl TokensApi {
    /// Who am I
    ///
    /// The calling token's name and role.
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(&self, auth: UserToken) -> ApiResult<Json<WhoAmI>> {
        let user = self.state.user(&auth, Role::Viewer).await?;
        Ok(Json(WhoAmI {
            name: user.name,
            role: user.role.into(),
        }))
    }

    /// Create a user token
    ///
    /// Admin role. The secret is returned once.
    #[oai(path = "/tokens", method = "post", operation_id = "create_token")]
    async fn create(&self, auth: UserToken, body: StrictJson<NewToken>) -> ApiResult<Created> {
        let user = self.state.user(&auth, Role::Admin).await?;
        let (token, secret) = self
            .state
            .phoenix
            .create_token(&body.0.name, body.0.role.into(), &user.name)
            .await?;
        tracing::info!(token = %token.name, role = %token.role, by = %user.name, "token created");
        Ok(Created::Created(Json(CreatedToken {
            token: token.into(),
            secret,
        })))
    }

    /// List user tokens
    ///
    /// Admin role. Secrets are never returned.
    #[oai(path = "/tokens", method = "get", operation_id = "list_tokens")]
    async fn list(&self, auth: UserToken) -> ApiResult<Json<TokenList>> {
        self.state.user(&auth, Role::Admin).await?;
        let tokens = self.state.phoenix.stores().tokens.list_tokens().await?;
        Ok(Json(TokenList {
            items: tokens.into_iter().map(Into::into).collect(),
        }))
    }

    /// Revoke a user token
    ///
    /// Admin role. Tokens from the server configuration are revoked by removing them
    /// there (409 here).
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revoke_token")]
    async fn revoke(&self, auth: UserToken, id: Path<Uuid>) -> ApiResult<Revoked> {
        let user = self.state.user(&auth, Role::Admin).await?;
        let tokens = self.state.phoenix.stores().tokens.list_tokens().await?;
        if tokens
            .iter()
            .any(|t| t.id == id.0 && t.created_by == "configuration")
        {
            return Err(ApiError::new(
                phoenix_api::ErrorCode::Conflict,
                "a configured token is revoked by removing it from the server configuration",
            ));
        }
        self.state
            .phoenix
            .stores()
            .tokens
            .revoke_token(id.0)
            .await?;
        tracing::info!(token = %id.0, by = %user.name, "token revoked");
        Ok(Revoked::Revoked)
    }
}
