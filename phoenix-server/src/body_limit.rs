//! Request body cap, enforced while the body streams in: a declared `Content-Length`
//! over the cap is refused before reading, and a chunked body is refused as soon as the
//! bytes read pass the cap (nothing beyond cap + one chunk is ever buffered).

use futures::StreamExt as _;
use phoenix_api::{ErrorBody, ErrorCode};
use poem::http::{Method, StatusCode};
use poem::{Body, IntoResponse, Request, Response};

use crate::config::ServerConfig;

fn too_large(cap: usize) -> Response {
    let mut resp = poem_openapi::payload::Json(ErrorBody::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {cap} bytes"),
    ))
    .into_response();
    resp.set_status(StatusCode::PAYLOAD_TOO_LARGE);
    resp
}

/// The cap for a request path.
fn cap_for(config: &ServerConfig, path: &str) -> usize {
    if path.ends_with("/api/v1/agent/metrics") {
        config.max_metrics_body_bytes
    } else {
        config.max_body_bytes
    }
}

/// Applies the cap: buffers the body of a request that may carry one, or answers with
/// the error response (413, or 400 when the body cannot be read).
pub(crate) async fn buffer(config: &ServerConfig, req: &mut Request) -> Result<(), Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cap = cap_for(config, req.uri().path());
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large(cap));
    }
    let mut stream = req.take_body().into_bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            let mut resp = poem_openapi::payload::Json(ErrorBody::new(
                ErrorCode::BadRequest,
                "the request body could not be read",
            ))
            .into_response();
            resp.set_status(StatusCode::BAD_REQUEST);
            return Err(resp);
        };
        if buf.len() + chunk.len() > cap {
            return Err(too_large(cap));
        }
        buf.extend_from_slice(&chunk);
    }
    req.set_body(Body::from_bytes(buf.freeze()));
    Ok(())
}
