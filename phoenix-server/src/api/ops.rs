//! `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use phoenix_api::ops::Health;
use phoenix_core::page::PageRequest;
use phoenix_core::store::ExperimentFilter;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Health endpoints.
#[derive(Debug)]
pub struct OpsApi {
    state: Arc<AppState>,
}

impl OpsApi {
    pub(crate) fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// Readiness.
#[derive(Debug, ApiResponse)]
pub enum Ready {
    /// The store answers; the server takes traffic.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The store does not answer, or the server is shutting down.
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

fn health(status: &str) -> Json<Health> {
    Json(Health {
        status: status.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        health("ok")
    }

    /// Readiness
    ///
    /// 200 when the store answers; 503 when it does not or the server is shutting down.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Ready {
        if self.state.shutting_down() {
            return Ready::NotReady(health("shutting down"));
        }
        let probe = self
            .state
            .phoenix
            .experiments(&ExperimentFilter::default(), &PageRequest::with_limit(1))
            .await;
        match probe {
            Ok(_) => Ready::Ready(health("ok")),
            Err(e) => {
                tracing::warn!(error = %crate::error::error_chain(&e), "readiness probe failed");
                Ready::NotReady(health("store unavailable"))
            }
        }
    }

    /// Server metrics
    ///
    /// Prometheus text exposition: requests, queue depth by state, lease expiries,
    /// experiments by phase, agents by status, waiting long-polls, WebSocket clients.
    #[oai(path = "/metrics", method = "get", operation_id = "server_metrics")]
    async fn metrics(&self) -> ApiResult<PlainText<String>> {
        match self.state.metrics.render(&self.state.phoenix).await {
            Ok(text) => Ok(PlainText(text)),
            Err(e) => Err(ApiError::from(e)),
        }
    }
}
