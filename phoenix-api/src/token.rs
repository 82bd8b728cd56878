//! User API tokens.

use chrono::{DateTime, Utc};
use phoenix_core::auth as core;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mirror_enum! {
    /// What a user token may do; each role includes the previous.
    Role => core::Role {
        /// Read everything.
        Viewer,
        /// Run experiments and deployments.
        Operator,
        /// Everything, including tokens, forced promotion, agent revocation.
        Admin,
    }
}

/// A user token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ApiToken {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// Revoked tokens authenticate nothing.
    pub revoked: bool,
}

impl From<core::ApiToken> for ApiToken {
    fn from(t: core::ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            role: t.role.into(),
            created_at: t.created_at,
            created_by: t.created_by,
            revoked: t.revoked,
        }
    }
}

/// Body of `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", oai(deny_unknown_fields))]
pub struct NewToken {
    /// Name (who or what uses it).
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A created token with its secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct CreatedToken {
    /// The token.
    pub token: ApiToken,
    /// The bearer secret; not retrievable later.
    pub secret: String,
}

/// Every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TokenList {
    /// Tokens, newest first (revoked included).
    pub items: Vec<ApiToken>,
}

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct WhoAmI {
    /// Token name.
    pub name: String,
    /// Role.
    pub role: Role,
}
