//! Client errors, carrying the server's error object.

use phoenix_api::{ErrorBody, ErrorCode, ErrorObject};

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{status} {}: {}", .error.code.status(), .error.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error object.
        error: ErrorObject,
        /// `Retry-After` seconds (429, 503).
        retry_after: Option<u64>,
    },
    /// The request did not complete (connection, timeout).
    #[error("request failed")]
    Transport(#[source] reqwest::Error),
    /// The answer could not be decoded.
    #[error("unexpected response body (status {status})")]
    Decode {
        /// HTTP status.
        status: u16,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The base URL or a path is not a valid URL.
    #[error("invalid URL")]
    InvalidUrl,
    /// `/readyz` answered not ready.
    #[error("server not ready: {0}")]
    NotReady(String),
    /// The WebSocket failed.
    #[error("websocket failed")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
}

impl ClientError {
    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        match response.bytes().await {
            Ok(bytes) => match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => Self::Api {
                    status,
                    error: body.error,
                    retry_after,
                },
                Err(source) => Self::Decode { status, source },
            },
            Err(e) => Self::Transport(e),
        }
    }

    /// The server's error code, for API errors.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// The HTTP status, for API and decode errors.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's error object, for API errors.
    #[must_use]
    pub fn api_error(&self) -> Option<&ErrorObject> {
        match self {
            Self::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True when retrying later may succeed (transport errors, 429, 503).
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::NotReady(_) | Self::WebSocket(_) => true,
            Self::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}
