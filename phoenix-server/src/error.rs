//! The one error shape and its statuses. Every failure, from a handler, an extractor or
//! the router, leaves the server as `{"error": {"code", "message", "details"}}`.

use phoenix_api::{ErrorBody, ErrorCode, ErrorDetails};
use phoenix_core::experiment::TransitionError;
use phoenix_core::{PhoenixError, StoreError};
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;

/// An error response of any operation. Every variant carries the same body shape.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request: bad JSON, wrong types, bad parameter or cursor.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, malformed, unknown or revoked credential.
    #[oai(status = 401)]
    Unauthenticated(Json<ErrorBody>),
    /// Valid credential without the right (role, or wrong kind of credential).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such record.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The current state forbids it (illegal transition, stale lease, concurrent change).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body did not arrive in time (`body_read_timeout_secs`).
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// Request body too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Request body is not JSON.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Invalid or unknown fields (`details.fields` lists each with its path), or a value
    /// no store can hold.
    #[oai(status = 422)]
    ValidationFailed(Json<ErrorBody>),
    /// Too many requests from this agent.
    #[oai(status = 429)]
    RateLimited(
        Json<ErrorBody>,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// A bug or corrupt data (no internals in the message).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// Store unreachable or server shutting down; retry later.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// Result of an operation.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::from_body(ErrorBody::new(code, message))
    }

    /// Wraps a body in the variant its code calls for.
    #[must_use]
    pub fn from_body(body: ErrorBody) -> Self {
        let retry = body.error.details.retry_after_secs.unwrap_or(1);
        match body.error.code {
            ErrorCode::BadRequest | ErrorCode::MethodNotAllowed => Self::BadRequest(Json(body)),
            ErrorCode::Unauthenticated => Self::Unauthenticated(Json(body)),
            ErrorCode::Forbidden => Self::Forbidden(Json(body)),
            ErrorCode::NotFound => Self::NotFound(Json(body)),
            ErrorCode::Conflict | ErrorCode::LeaseLost => Self::Conflict(Json(body)),
            ErrorCode::RequestTimeout => Self::RequestTimeout(Json(body)),
            ErrorCode::PayloadTooLarge => Self::PayloadTooLarge(Json(body)),
            ErrorCode::UnsupportedMediaType => Self::UnsupportedMediaType(Json(body)),
            ErrorCode::ValidationFailed => Self::ValidationFailed(Json(body)),
            ErrorCode::RateLimited => Self::RateLimited(Json(body), retry),
            ErrorCode::Unavailable => Self::Unavailable(Json(body), retry),
            ErrorCode::Internal => Self::Internal(Json(body)),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// Whether this refuses the caller's credential (401 or 403), as opposed to a store
    /// that could not answer.
    #[must_use]
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::Unauthenticated(_) | Self::Forbidden(_))
    }

    /// 401.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 422 with field errors.
    pub fn validation(fields: Vec<phoenix_core::validation::FieldError>) -> Self {
        let n = fields.len();
        Self::from_body(
            ErrorBody::new(ErrorCode::ValidationFailed, format!("{n} invalid field(s)"))
                .with_details(ErrorDetails {
                    fields: Some(fields.into_iter().map(Into::into).collect()),
                    ..ErrorDetails::default()
                }),
        )
    }

    /// 429 with the wait.
    #[must_use]
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::from_body(
            ErrorBody::new(
                ErrorCode::RateLimited,
                "too many requests from this agent; retry later",
            )
            .with_details(ErrorDetails {
                retry_after_secs: Some(retry_after_secs),
                ..ErrorDetails::default()
            }),
        )
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthenticated(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::RequestTimeout(b)
            | Self::PayloadTooLarge(b)
            | Self::UnsupportedMediaType(b)
            | Self::ValidationFailed(b)
            | Self::RateLimited(b, _)
            | Self::Internal(b)
            | Self::Unavailable(b, _) => &b.0,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        PhoenixError::Store(e).into()
    }
}

impl From<PhoenixError> for ApiError {
    fn from(e: PhoenixError) -> Self {
        match e {
            PhoenixError::Store(e) => store_error(e),
            PhoenixError::Transition(e) => {
                let phase = match &e {
                    TransitionError::IllegalInPhase { phase, .. } => Some((*phase).into()),
                    _ => None,
                };
                Self::from_body(
                    ErrorBody::new(ErrorCode::Conflict, e.to_string()).with_details(ErrorDetails {
                        phase,
                        ..ErrorDetails::default()
                    }),
                )
            }
            PhoenixError::Validation(errors) => Self::validation(errors.errors),
            PhoenixError::Deployment(e) => Self::new(ErrorCode::Conflict, e.to_string()),
            PhoenixError::NotReady(why) => Self::new(ErrorCode::Conflict, why),
            PhoenixError::Unauthenticated => Self::unauthenticated("invalid credential"),
            PhoenixError::Forbidden(why) => Self::forbidden(why),
            other => {
                tracing::error!(error = %error_chain(&other), "unexpected facade error");
                Self::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    match &e {
        StoreError::NotFound { entity, .. } => ApiError::from_body(
            ErrorBody::new(ErrorCode::NotFound, e.to_string()).with_details(ErrorDetails {
                entity: Some((*entity).to_owned()),
                ..ErrorDetails::default()
            }),
        ),
        StoreError::Conflict { entity, .. } => ApiError::from_body(
            ErrorBody::new(ErrorCode::Conflict, e.to_string()).with_details(ErrorDetails {
                entity: Some((*entity).to_owned()),
                ..ErrorDetails::default()
            }),
        ),
        StoreError::LeaseLost { .. } => ApiError::new(ErrorCode::LeaseLost, e.to_string()),
        // Documented as 422: the input (or the operation in this state) cannot be accepted.
        // Stores write their own message without driver text (see their error mapping).
        StoreError::Invalid(message) => {
            tracing::info!(error = %error_chain(&e), "store refused a value");
            ApiError::new(ErrorCode::ValidationFailed, message.clone())
        }
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %error_chain(&e), "store unavailable");
            ApiError::from_body(
                ErrorBody::new(
                    ErrorCode::Unavailable,
                    "the store is unavailable; retry later",
                )
                .with_details(ErrorDetails {
                    retry_after_secs: Some(2),
                    ..ErrorDetails::default()
                }),
            )
        }
        _ => {
            tracing::error!(error = %error_chain(&e), "store error");
            ApiError::new(ErrorCode::Internal, "internal error")
        }
    }
}

/// The whole source chain of an error, for logs.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn code_for(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::RequestTimeout,
        409 => ErrorCode::Conflict,
        411 | 413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        422 => ErrorCode::ValidationFailed,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    }
}

fn message_for(code: ErrorCode, status: StatusCode, text: &str) -> String {
    match code {
        ErrorCode::Internal => "internal error".to_owned(),
        ErrorCode::NotFound if text.is_empty() || text == "not found" => "no such route".to_owned(),
        ErrorCode::Unauthenticated => {
            "missing or malformed bearer credential (Authorization: Bearer <token>)".to_owned()
        }
        ErrorCode::MethodNotAllowed => "method not allowed on this route".to_owned(),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_lowercase(),
        _ => text.chars().take(1024).collect(),
    }
}

/// An endpoint's result as a response (errors become their response; 5xx are logged).
pub(crate) fn response_of(result: poem::Result<Response>) -> Response {
    result.unwrap_or_else(|e| {
        if e.status().is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        e.into_response()
    })
}

/// Rewrites an error response that is not already in the JSON error shape (extractor and
/// router errors from poem) into it; keeps the status (500s get a fixed message).
pub(crate) async fn shape(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let code = code_for(status);
    let body = ErrorBody::new(code, message_for(code, status, text.trim()));
    let mut out = poem_openapi::payload::Json(body).into_response();
    out.set_status(status);
    for (name, value) in &parts.headers {
        if name != poem::http::header::CONTENT_TYPE && name != poem::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// [`shape`] as middleware, for endpoints served without [`crate::front::Front`].
pub(crate) async fn shape_errors<E: Endpoint>(
    ep: std::sync::Arc<E>,
    req: poem::Request,
) -> poem::Result<Response> {
    let resp = response_of(ep.call(req).await.map(IntoResponse::into_response));
    Ok(shape(resp).await)
}

/// Adds the `Allow` header (RFC 9110) to a 405 answer for `path`, from the route table.
pub(crate) fn add_allow(routes: &crate::openapi::RouteTable, path: &str, resp: &mut Response) {
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = routes.allowed(path)
    {
        let allow = methods
            .iter()
            .map(poem::http::Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = poem::http::HeaderValue::from_str(&allow) {
            resp.headers_mut().insert(poem::http::header::ALLOW, value);
        }
    }
}
