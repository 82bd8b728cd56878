//! The one error shape: `{"error": {"code", "message", "details"}}`.

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Enum),
    oai(rename_all = "snake_case")
)]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON, wrong types, bad parameter, bad cursor).
    BadRequest,
    /// 401: no credential, or an unknown, malformed or revoked one.
    Unauthenticated,
    /// 403: the credential is valid but may not do this (role, or the wrong kind of
    /// credential for the route).
    Forbidden,
    /// 404: no such record or route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 409: the state forbids it (illegal transition, concurrent change, duplicate).
    Conflict,
    /// 409: the task lease is no longer held (expired and possibly re-delivered).
    LeaseLost,
    /// 408: the request body did not arrive within the server's body-read timeout.
    RequestTimeout,
    /// 413: the request body is larger than the server accepts.
    PayloadTooLarge,
    /// 415: the request body is not JSON.
    UnsupportedMediaType,
    /// 422: well-formed but invalid fields; `details.fields` lists each.
    ValidationFailed,
    /// 429: too many requests from this agent; retry after `Retry-After` seconds.
    RateLimited,
    /// 503: the store is unreachable or the server is shutting down; retry later.
    Unavailable,
    /// 500: a bug or corrupt data; the message never carries internals.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict | Self::LeaseLost => 409,
            Self::RequestTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationFailed => 422,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct FieldError {
    /// Path of the field, dotted, with indices in brackets (`spec.criteria[2].threshold`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl From<phoenix_core::validation::FieldError> for FieldError {
    fn from(e: phoenix_core::validation::FieldError) -> Self {
        Self {
            path: e.path,
            message: e.message,
        }
    }
}

/// Structured detail of an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct ErrorDetails {
    /// Every invalid field (422).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
    /// Seconds to wait before retrying (429, 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// The current phase, when a transition was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<crate::experiment::Phase>,
    /// The kind of record, when one was not found or conflicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

/// The error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ErrorObject {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation (never internals).
    pub message: String,
    /// Structured detail.
    #[serde(default)]
    pub details: ErrorDetails,
}

/// Every error response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

impl ErrorBody {
    /// An error with `code` and `message` and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorObject {
                code,
                message: message.into(),
                details: ErrorDetails::default(),
            },
        }
    }

    /// Sets the details.
    #[must_use]
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.error.details = details;
        self
    }
}
