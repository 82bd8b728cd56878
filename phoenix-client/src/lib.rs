//! # phoenix-client
//!
//! A typed async client for the Phoenix REST and WebSocket API, on the wire types of
//! `phoenix-api`. Used by the agent, the CLI, tests and embedders.
//!
//! ```no_run
//! # async fn demo() -> Result<(), phoenix_client::ClientError> {
//! let client = phoenix_client::Client::new("http://127.0.0.1:8080")?.with_token("phx_user_...");
//! let page = client.list_experiments(&Default::default()).await?;
//! # Ok(()) }
//! ```
//!
//! Every error the server sends arrives as [`ClientError::Api`] with the server's error
//! object (code, message, details) and the HTTP status.

mod agent;
mod analysis;
mod error;
mod user;
mod ws;

use std::time::Duration;

pub use analysis::{DeploymentCommand, HistoryParams};
pub use error::ClientError;
pub use phoenix_api as api;
pub use user::{AgentQuery, ExperimentQuery, TaskQuery};
pub use ws::Subscription;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

/// Timeout of ordinary requests (long-polls get their wait plus this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Phoenix server with one credential (a user token, or an agent
/// credential for the agent routes).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`, or a URL with
    /// a path when Phoenix is nested under one).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Below the server's idle limit (`header_read_timeout_secs`, 30 s by default),
            // so a pooled connection is dropped here before the server closes it under a
            // request.
            .pool_idle_timeout(Duration::from_secs(20))
            .build()
            .map_err(ClientError::Transport)?;
        Self::with_http(base_url, http)
    }

    /// A client with a caller-built `reqwest::Client` (proxies, TLS roots).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Result<Self, ClientError> {
        let mut base = Url::parse(base_url).map_err(|_| ClientError::InvalidUrl)?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            http,
            base,
            token: None,
        })
    }

    /// Uses `token` as bearer credential.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The server's base URL.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The credential, if any.
    #[must_use]
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|_| ClientError::InvalidUrl)
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, ClientError> {
        let mut builder = self
            .http
            .request(method, self.url(path)?)
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        Ok(builder)
    }

    async fn send(&self, builder: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = builder.send().await.map_err(ClientError::Transport)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(ClientError::from_response(response).await)
        }
    }

    async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(builder).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(ClientError::Transport)?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            status: status.as_u16(),
            source,
        })
    }

    async fn empty(&self, builder: RequestBuilder) -> Result<(), ClientError> {
        self.send(builder).await.map(|_| ())
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<api::ops::Health, ClientError> {
        self.json(self.request(Method::GET, "healthz")?).await
    }

    /// `GET /readyz` (an error with status 503 when not ready).
    pub async fn readyz(&self) -> Result<api::ops::Health, ClientError> {
        let response = self
            .request(Method::GET, "readyz")?
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(ClientError::Transport)?;
        let health: api::ops::Health =
            serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
                status: status.as_u16(),
                source,
            })?;
        if status == StatusCode::OK {
            Ok(health)
        } else {
            Err(ClientError::NotReady(health.status))
        }
    }

    /// `GET /metrics`: the server's Prometheus exposition text.
    pub async fn server_metrics(&self) -> Result<String, ClientError> {
        let response = self.send(self.request(Method::GET, "metrics")?).await?;
        response.text().await.map_err(ClientError::Transport)
    }
}
