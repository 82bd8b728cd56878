//! User API tokens and roles.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use crate::agent::SecretHash;

/// What a user token may do. Ordered: each role can do everything the previous one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Create, start, stop, roll back and promote experiments; quick deploys.
    Operator,
    /// Everything, including forced promotion, tokens and agent revocation.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// True when this role includes `required`.
    #[must_use]
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (expected viewer, operator or admin)"))
    }
}

/// Prefix of user tokens, so that they are recognisable in logs and secret scanners.
pub const USER_TOKEN_PREFIX: &str = "phx_user_";

/// A stored user API token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: uuid::Uuid,
    /// Human name (`ci`, `alice`).
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret.
    pub hash: SecretHash,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// A revoked token authenticates nothing.
    pub revoked: bool,
}

impl ApiToken {
    /// A new token and its secret (shown once).
    #[must_use]
    pub fn generate(
        name: &str,
        role: Role,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = format!(
            "{USER_TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        (
            Self::from_secret(name, role, created_by, &secret, now),
            secret,
        )
    }

    /// A token record for a secret chosen elsewhere (bootstrap tokens from configuration).
    #[must_use]
    pub fn from_secret(
        name: &str,
        role: Role,
        created_by: &str,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            name: name.to_owned(),
            role,
            hash: SecretHash::of(secret),
            created_at: now,
            created_by: created_by.to_owned(),
            revoked: false,
        }
    }
}
