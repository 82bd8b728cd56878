//! What every request of the API goes through before routing, in one layer: the root
//! redirect to the dashboard, the body cap, the one error shape, the `Allow` header of
//! 405 answers and the request metrics; and the direct route for agents' long-polls.
//!
//! Memory is the design constraint here. Every agent keeps one long-poll waiting for up to
//! `max_poll_wait_secs`, and what a waiting request holds is what 10,000 agents cost: a
//! request's future holds the state of every layer it passed for as long as it runs.
//! Hence one layer rather than one `around` each (each kept its own copy of the request),
//! and well-formed long-polls answered here, straight from [`poll_tasks`], instead of
//! through the router, the nested OpenAPI service and the operation's extractors (about
//! 15 KiB of nested futures per waiting poll). Malformed polls still take the operation,
//! so their errors are the documented ones.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{Method, StatusCode};
use poem::web::Redirect;
use poem::{Endpoint, IntoResponse, Request, Response, Route};

use crate::api::agent::{direct_poll, poll_tasks};
use crate::openapi::RouteTable;
use crate::state::AppState;
use crate::{body_limit, dashboard, error, metrics};

/// The front layer around the routes (cheap to clone: every field is shared).
#[derive(Clone)]
pub(crate) struct Front {
    pub(crate) inner: Arc<Route>,
    pub(crate) state: Arc<AppState>,
    pub(crate) routes: Arc<RouteTable>,
    /// Where the root leads: the dashboard, with the slash its relative links need.
    pub(crate) ui_path: Arc<str>,
    /// Body caps, the in-flight budget and the body deadline.
    pub(crate) bodies: Arc<body_limit::BodyLimits>,
}

impl Front {
    /// Answers one request.
    pub(crate) async fn respond(self, req: Request) -> Response {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let client = req
            .remote_addr()
            .as_socket_addr()
            .map(std::net::SocketAddr::ip);
        let credential = bearer(&req);
        let resp = match &credential {
            // Too many failed authentications from this address or against this agent:
            // refused before the credential is even looked up.
            Some(secret) => match self.state.auth_throttled(client, secret) {
                Err(retry_after) => {
                    self.state.metrics.auth_throttled.inc();
                    error::ApiError::from_body(
                        phoenix_api::ErrorBody::new(
                            phoenix_api::ErrorCode::RateLimited,
                            "too many failed authentications from this address or for this agent: try again later",
                        )
                        .with_details(phoenix_api::ErrorDetails {
                            retry_after_secs: Some(retry_after),
                            ..phoenix_api::ErrorDetails::default()
                        }),
                    )
                    .into_response()
                }
                Ok(()) => self.route(req, credential.as_deref()).await,
            },
            None => self.route(req, None).await,
        };
        if let Some(secret) = &credential {
            if resp.status() == StatusCode::UNAUTHORIZED {
                self.state.auth_failed(client, secret);
            } else if resp.status().is_success() {
                self.state.auth_succeeded(secret);
            }
        }
        let mut resp = error::shape(resp).await;
        error::add_allow(&self.routes, &path, &mut resp);
        metrics::record(
            &self.state.metrics,
            method.as_str(),
            &path,
            resp.status().as_u16(),
            start,
        );
        resp
    }

    /// Routes one request (after the failed-authentication throttle).
    async fn route(&self, mut req: Request, credential: Option<&str>) -> Response {
        if let Some((auth, wait, max)) = direct_poll(&req) {
            drop(req);
            match poll_tasks(&self.state, &auth, wait, max).await {
                Ok(poll) => poll.into_response(),
                Err(e) => e.into_response(),
            }
        } else if dashboard::is_root(&req) {
            // Answered before routing: nesting the API at `/` claims the root path,
            // whatever is registered for it.
            Redirect::temporary(&*self.ui_path).into_response()
        } else {
            // Every route that takes a body needs a credential: check it before reading
            // a byte of the body, so that no unauthenticated client can make the server
            // buffer anything (the route then checks what the credential may do).
            let takes_body = may_carry_body(req.method())
                && self
                    .routes
                    .allowed(req.uri().path())
                    .is_some_and(|methods| methods.contains(req.method()));
            if !takes_body {
                // No route reads a body here: the router answers (404, 405, a page or the
                // WebSocket upgrade) without a byte of it being buffered.
                return error::response_of(
                    Box::pin(self.inner.call(req))
                        .await
                        .map(IntoResponse::into_response),
                );
            }
            if req.uri().path().ends_with("/api/v1/agent/enroll")
                && let Some(disabled) = self.state.enrollment_disabled()
            {
                return disabled.into_response();
            }
            let known = match credential {
                None => Ok(false),
                Some(secret) => self.state.credential_known(secret).await,
            };
            match known {
                Ok(true) => {}
                Ok(false) => {
                    return error::ApiError::unauthenticated(if credential.is_some() {
                        "unknown or revoked token"
                    } else {
                        "missing credential: send Authorization: Bearer <token>"
                    })
                    .into_response();
                }
                Err(e) => return e.into_response(),
            }
            match self.bodies.buffer(&mut req).await {
                Err(refused) => refused,
                // Boxed: the router's future is only as big as this request's route needs,
                // and stays out of this one (which a waiting poll keeps). The body's share
                // of the budget is held until the response is ready.
                Ok(reservation) => {
                    let resp = error::response_of(
                        Box::pin(self.inner.call(req))
                            .await
                            .map(IntoResponse::into_response),
                    );
                    drop(reservation);
                    resp
                }
            }
        }
    }
}

/// Whether requests of `method` may carry a body (every API route that takes one is
/// authenticated).
fn may_carry_body(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The bearer credential of a request, if any (also the WebSocket's header credential).
pub(crate) fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl Endpoint for Front {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        Ok(self.clone().respond(req).await)
    }
}
