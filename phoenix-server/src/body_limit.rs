//! Request bodies, read under three limits before any route sees them:
//!
//! - a cap per route, enforced while the body streams in: a declared `Content-Length`
//!   over the cap is refused before reading, a chunked body as soon as the bytes read
//!   pass it (nothing beyond cap + one chunk is ever buffered). The two routes that carry
//!   a host's sample, exactly `POST /api/v1/agent/metrics` (reports and snapshots) and
//!   `POST /api/v1/pipelines/preview` (a recorded exposition), take
//!   `max_metrics_body_bytes`; every other route `max_body_bytes`;
//! - a budget shared by every request in flight (`max_bodies_in_flight_bytes`): a
//!   declared length is reserved before the first byte is read, a chunked body chunk by
//!   chunk, and the reservation is held until the response is ready. A body that does
//!   not fit is answered 503 with `Retry-After`, so many large uploads at once cannot
//!   take the process's memory past the budget;
//! - a deadline (`body_read_timeout_secs`) for the whole body: a stalled or trickling
//!   upload is answered 408 instead of holding its buffer and its budget.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use phoenix_api::{ErrorBody, ErrorCode, ErrorDetails};
use poem::http::Method;
use poem::{Body, IntoResponse, Request, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The limits, built once from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct BodyLimits {
    /// Cap on every route but those of `sample_paths`.
    pub(crate) max_body_bytes: usize,
    /// Cap on the routes that carry a host's sample (`sample_paths`).
    pub(crate) max_metrics_body_bytes: usize,
    /// The full paths (with the API's base path) of the routes that carry a host's
    /// sample and take `max_metrics_body_bytes`.
    pub(crate) sample_paths: Arc<[String]>,
    /// Deadline for a whole body.
    pub(crate) read_timeout: Duration,
    /// Bytes in flight, as permits (one per byte).
    pub(crate) budget: Arc<Semaphore>,
    /// The budget's size, bytes.
    pub(crate) budget_bytes: usize,
}

/// Bytes of the budget a buffered body holds; given back when dropped (after the
/// response is ready).
#[derive(Debug, Default)]
pub(crate) struct Reservation(Option<OwnedSemaphorePermit>);

impl Reservation {
    fn take(&mut self, budget: &Arc<Semaphore>, bytes: usize) -> Result<(), ()> {
        if bytes == 0 {
            return Ok(());
        }
        let n = u32::try_from(bytes).map_err(|_| ())?;
        let permit = budget.clone().try_acquire_many_owned(n).map_err(|_| ())?;
        match &mut self.0 {
            Some(held) => held.merge(permit),
            None => self.0 = Some(permit),
        }
        Ok(())
    }
}

fn too_large(cap: usize) -> Response {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {cap} bytes"),
    )
    .into_response()
}

fn over_budget(budget: usize) -> Response {
    ApiError::from_body(
        ErrorBody::new(
            ErrorCode::Unavailable,
            format!(
                "the server is already receiving {budget} bytes of request bodies; retry later"
            ),
        )
        .with_details(ErrorDetails {
            retry_after_secs: Some(1),
            ..ErrorDetails::default()
        }),
    )
    .into_response()
}

impl BodyLimits {
    /// The cap for a request path.
    fn cap_for(&self, path: &str) -> usize {
        if self.sample_paths.iter().any(|p| p == path) {
            self.max_metrics_body_bytes
        } else {
            self.max_body_bytes
        }
    }

    /// Buffers the body of a request that may carry one under the limits, or answers
    /// with the error response (413, 503, 408, or 400 when the body cannot be read).
    /// The returned reservation must live until the response is ready.
    pub(crate) async fn buffer(&self, req: &mut Request) -> Result<Reservation, Response> {
        let mut reservation = Reservation::default();
        if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(reservation);
        }
        let cap = self.cap_for(req.uri().path());
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Err(too_large(cap));
        }
        // A declared length is reserved whole before reading (hyper stops the body at
        // that length); a chunked body reserves as it arrives.
        let declared = declared.and_then(|n| usize::try_from(n).ok());
        if let Some(n) = declared
            && reservation.take(&self.budget, n).is_err()
        {
            return Err(over_budget(self.budget_bytes));
        }
        let mut stream = req.take_body().into_bytes_stream();
        let read = async {
            let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0).min(cap));
            while let Some(chunk) = stream.next().await {
                let Ok(chunk) = chunk else {
                    return Err(
                        ApiError::bad_request("the request body could not be read").into_response()
                    );
                };
                if buf.len() + chunk.len() > cap {
                    return Err(too_large(cap));
                }
                if declared.is_none() && reservation.take(&self.budget, chunk.len()).is_err() {
                    return Err(over_budget(self.budget_bytes));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(buf.freeze())
        };
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(Ok(body)) => {
                req.set_body(Body::from_bytes(body));
                Ok(reservation)
            }
            Ok(Err(refused)) => Err(refused),
            Err(_) => {
                let mut resp = ApiError::new(
                    ErrorCode::RequestTimeout,
                    format!(
                        "the request body did not arrive within {} s",
                        self.read_timeout.as_secs()
                    ),
                )
                .into_response();
                // The rest of the body may still be on its way: do not keep the
                // connection for another request.
                resp.headers_mut().insert(
                    poem::http::header::CONNECTION,
                    poem::http::HeaderValue::from_static("close"),
                );
                Err(resp)
            }
        }
    }
}
