//! Health and readiness.

use serde::{Deserialize, Serialize};

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
    /// The server version.
    pub version: String,
}
