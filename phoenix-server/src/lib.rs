//! # phoenix-server
//!
//! The reference Phoenix control plane: REST with a generated OpenAPI document and Swagger
//! UI, a WebSocket for live updates, the web dashboard, authentication, limits, metrics,
//! and the controller loop, over any [`Phoenix`] facade (so over any store backend).
//!
//! Two ways in:
//! - [`serve`]: takes an already-bound listener, a facade, a [`ServerConfig`] and a
//!   shutdown future, and runs until the future resolves (then drains gracefully);
//! - [`PhoenixEndpoint`]: the API as a poem endpoint an existing poem application nests
//!   under its own path and middleware (see `examples/embed-server`).
//!
//! Invariants: no handler decides a domain rule (they call the facade); nothing here reads
//! the environment (only `main.rs` does).

pub mod api;
pub mod body_limit;
pub mod cli;
pub mod config;
pub mod controller;
pub mod dashboard;
pub mod dev;
pub mod dev_agent;
pub mod error;
mod front;
mod http;
pub mod metrics;
pub mod openapi;
pub mod payload;
mod rate_limit;
pub mod state;
pub mod store;
pub mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use phoenix_core::Phoenix;
use phoenix_core::auth::Role;
use poem::{Endpoint as _, EndpointExt, IntoEndpoint, Route};

pub use config::ServerConfig;
pub use state::AppState;

/// What can stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Bootstrap tokens could not be registered.
    #[error("could not register the configured tokens")]
    Bootstrap(#[source] phoenix_core::PhoenixError),
    /// A listener failed.
    #[error("listener failed")]
    Io(#[from] std::io::Error),
}

/// The Phoenix API as an embeddable endpoint: REST under `api/v1`, `healthz`, `readyz`,
/// `metrics`, the WebSocket at `api/v1/ws`, Swagger UI at `docs`, the document at
/// `openapi.json` and the dashboard at `ui/` (where the root redirects), all relative to
/// where it is nested.
#[derive(Debug, Clone)]
pub struct PhoenixEndpoint {
    state: Arc<AppState>,
    base_path: String,
}

impl PhoenixEndpoint {
    /// The endpoint over `state`, to be nested at the root.
    #[must_use]
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            state,
            base_path: String::new(),
        }
    }

    /// Tells the endpoint where it is nested (e.g. `/phoenix`), so that the OpenAPI
    /// document's server URL is right.
    #[must_use]
    pub fn base_path(mut self, base: impl Into<String>) -> Self {
        self.base_path = base.into().trim_end_matches('/').to_owned();
        self
    }

    /// The OpenAPI document as JSON (as served at `openapi.json`).
    #[must_use]
    pub fn spec(&self) -> String {
        serde_json::to_string(&self.spec_value()).unwrap_or_default()
    }

    fn spec_value(&self) -> serde_json::Value {
        let mut doc: serde_json::Value =
            serde_json::from_str(&self.service().spec()).unwrap_or(serde_json::Value::Null);
        openapi::state_request_rules(&mut doc);
        let templates = self.state.phoenix.templates().names().to_vec();
        let models: Vec<String> = (self.state.phoenix.catalogue().models().iter())
            .map(|m| m.id.clone())
            .collect();
        openapi::state_registries(&mut doc, &templates, &models);
        openapi::link_resources(&mut doc);
        openapi::harden(&mut doc);
        doc
    }

    fn service(&self) -> poem_openapi::OpenApiService<api::Apis, ()> {
        let base = if self.base_path.is_empty() {
            "/"
        } else {
            &self.base_path
        };
        api::service(&self.state, base)
    }

    /// The state it serves.
    #[must_use]
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }
}

impl IntoEndpoint for PhoenixEndpoint {
    type Endpoint = poem::endpoint::BoxEndpoint<'static>;

    fn into_endpoint(self) -> Self::Endpoint {
        self.front().boxed()
    }
}

impl PhoenixEndpoint {
    /// The routes behind the front layer.
    fn front(self) -> front::Front {
        let service = self.service();
        let spec = self.spec_value();
        let spec_text = serde_json::to_string(&spec).unwrap_or_default();
        let route_table =
            std::sync::Arc::new(openapi::RouteTable::from_doc(&spec, &self.base_path));
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            let base = self.base_path.clone();
            self.state.metrics.set_routes(
                paths
                    .keys()
                    .map(|p| format!("{base}{p}"))
                    .chain(
                        ["/", "/docs", "/openapi.json", "/api/v1/ws", "/ui", "/ui/"]
                            .map(|p| format!("{base}{p}")),
                    )
                    .chain(
                        dashboard::ASSETS
                            .iter()
                            .map(|a| format!("{base}/ui/{}", a.path)),
                    ),
            );
        }
        let docs = service.swagger_ui();
        let spec_endpoint = poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type("application/json; charset=utf-8")
                .body(spec_text.clone())
        });
        let state = self.state.clone();
        let ui_redirect = format!("{}/ui/", self.base_path);
        let routes = Route::new()
            .at(
                "/ui",
                poem::get(poem::endpoint::make_sync({
                    let to = ui_redirect.clone();
                    move |_| poem::web::Redirect::temporary(to.clone())
                })),
            )
            .at("/ui/", poem::get(dashboard::index))
            .at("/ui/*path", poem::get(dashboard::file))
            .nest("/docs", docs)
            .at("/openapi.json", spec_endpoint)
            .at("/api/v1/ws", ws::endpoint(state.clone()))
            .nest("/", service);
        let config = &state.config;
        let bodies = Arc::new(body_limit::BodyLimits {
            max_body_bytes: config.max_body_bytes,
            max_metrics_body_bytes: config.max_metrics_body_bytes,
            sample_paths: ["agent/metrics", "pipelines/preview"]
                .map(|route| format!("{}/api/v1/{route}", self.base_path))
                .into(),
            read_timeout: std::time::Duration::from_secs(config.body_read_timeout_secs),
            budget: Arc::new(tokio::sync::Semaphore::new(
                config.max_bodies_in_flight_bytes,
            )),
            budget_bytes: config.max_bodies_in_flight_bytes,
        });
        front::Front {
            inner: Arc::new(routes),
            state,
            routes: route_table,
            ui_path: ui_redirect.into(),
            bodies,
        }
    }
}

/// Registers the bootstrap admin token from the configuration (idempotent; safe on
/// several replicas).
pub async fn bootstrap(state: &AppState) -> Result<(), ServeError> {
    if let Some(secret) = &state.config.admin_token {
        state
            .phoenix
            .ensure_token("admin (configured)", Role::Admin, secret)
            .await
            .map_err(ServeError::Bootstrap)?;
    }
    Ok(())
}

/// Optional pieces of a running server.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// A second listener serving only the WebSocket (`--ws-listen`).
    pub ws_listener: Option<tokio::net::TcpListener>,
}

/// Serves Phoenix on `listener` until `shutdown` resolves, then stops accepting, releases
/// long-polls and WebSocket clients, and waits for in-flight requests (up to
/// `shutdown_grace_secs`). Runs the controller loop unless disabled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    phoenix: Phoenix,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(listener, phoenix, config, ServeOptions::default(), shutdown).await
}

/// [`serve`] with options.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    phoenix: Phoenix,
    config: ServerConfig,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let state = AppState::new(phoenix, config);
    serve_state(listener, state, options, shutdown).await
}

/// [`serve_with`] on prepared state (tests and dev mode keep a handle on it).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    state.config.validate()?;
    bootstrap(&state).await?;
    let controller = state
        .config
        .controller
        .then(|| tokio::spawn(controller::run(state.clone())));
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let limits = state.config.connection_limits();
    tracing::info!(address = %listener.local_addr()?, "phoenix-server listening");
    let front = PhoenixEndpoint::new(state.clone()).front();
    let app: http::Handler = Arc::new(move |req| Box::pin(front.clone().respond(req)));
    let signal_state = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining requests, releasing long-polls");
        signal_state.begin_shutdown();
    };
    let ws_server = options.ws_listener.map(|l| {
        let state = state.clone();
        tokio::spawn(async move {
            tracing::info!(address = %l.local_addr()?, "WebSocket listener");
            let ws = Arc::new(
                Route::new()
                    .at("/api/v1/ws", ws::endpoint(state.clone()))
                    .around(error::shape_errors),
            );
            let app: http::Handler = Arc::new(move |req| {
                let ws = ws.clone();
                Box::pin(async move { ws.get_response(req).await })
            });
            http::serve(
                l,
                app,
                async move { state.shutdown_signal().await },
                grace,
                limits,
            )
            .await
        })
    });
    let result = http::serve(listener, app, signal, grace, limits).await;
    state.begin_shutdown();
    if let Some(ws) = ws_server {
        match ws.await {
            Ok(r) => r?,
            Err(e) => tracing::error!(error = %e, "WebSocket listener task failed"),
        }
    }
    if let Some(controller) = controller {
        let _ = controller.await;
    }
    result?;
    Ok(())
}

/// The OpenAPI document of the API at the root, as pretty JSON (what `docs/openapi.json`
/// holds).
#[must_use]
pub fn openapi_document() -> String {
    let store = phoenix_core::MemoryStore::new();
    let phoenix = Phoenix::new(
        store.stores(),
        Arc::new(phoenix_core::clock::SystemClock),
        phoenix_core::PhoenixConfig::default(),
    );
    let endpoint = PhoenixEndpoint::new(AppState::new(phoenix, ServerConfig::default()));
    let value: serde_json::Value =
        serde_json::from_str(&endpoint.spec()).unwrap_or(serde_json::Value::Null);
    let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
    out.push('\n');
    out
}
