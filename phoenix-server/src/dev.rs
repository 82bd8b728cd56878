//! Development mode: the server on the in-memory store with generated tokens, on
//! 127.0.0.1, printing where everything is.
//!
//! Extension point: [`DevHook`]s run once the server listens, with a [`DevContext`] holding
//! its URL and tokens. The in-process agent and the demo experiment plug in here (the
//! agent crate provides a hook; `main.rs` passes it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use phoenix_core::auth::ApiToken;
use phoenix_core::{Phoenix, PhoenixConfig};

use crate::config::ServerConfig;
use crate::state::AppState;
use crate::{ServeError, ServeOptions};

/// What a dev hook receives.
#[derive(Debug, Clone)]
pub struct DevContext {
    /// Base URL of the server (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// An admin token secret.
    pub admin_token: String,
    /// The enrollment token for agents.
    pub enrollment_token: String,
    /// The server's state (facade, configuration).
    pub state: Arc<AppState>,
}

/// A task started with the dev server (e.g. an in-process agent). It runs until it
/// returns or the server stops.
pub type DevHook =
    Box<dyn FnOnce(DevContext) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send>;

fn random_secret(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    let mut out = String::with_capacity(prefix.len() + 48);
    out.push_str(prefix);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Runs dev mode on `listener` until `shutdown`.
pub async fn run(
    listener: tokio::net::TcpListener,
    hooks: Vec<DevHook>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let (_, admin_token) = ApiToken::generate(
        "dev-admin",
        phoenix_core::auth::Role::Admin,
        "dev",
        chrono::Utc::now(),
    );
    let enrollment_token = random_secret("phx_enroll_");
    let store = phoenix_core::MemoryStore::new();
    let phoenix = Phoenix::new(
        store.stores(),
        Arc::new(phoenix_core::clock::SystemClock),
        PhoenixConfig::default(),
    );
    let config = ServerConfig {
        admin_token: Some(admin_token.clone()),
        enrollment_token: Some(enrollment_token.clone()),
        public_url: Some(base_url.clone()),
        ..ServerConfig::default()
    };
    let state = AppState::new(phoenix, config);
    println!("Phoenix dev server (in-memory store: state is lost on exit)");
    // The token rides in the fragment, which the browser never sends; the page moves it
    // to sessionStorage and removes it from the address bar at once.
    println!("  Dashboard:             {base_url}/ui/#token={admin_token}");
    println!("  API docs (Swagger UI): {base_url}/docs");
    println!("  OpenAPI document:      {base_url}/openapi.json");
    println!(
        "  WebSocket:             {}/api/v1/ws",
        base_url.replacen("http", "ws", 1)
    );
    println!("  Admin token:           {admin_token}");
    println!("  Enrollment token:      {enrollment_token}");
    println!();
    println!("  export PHOENIX_SERVER={base_url} PHOENIX_TOKEN={admin_token}");
    println!("  curl -H \"Authorization: Bearer $PHOENIX_TOKEN\" {base_url}/api/v1/fleet/status");
    let context = DevContext {
        base_url,
        admin_token,
        enrollment_token,
        state: state.clone(),
    };
    let server_state = state.clone();
    let server = tokio::spawn(crate::serve_state(
        listener,
        server_state,
        ServeOptions::default(),
        shutdown,
    ));
    for hook in hooks {
        let fut = hook(context.clone());
        let state = state.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = fut => if let Err(e) = result {
                    tracing::error!(error = %format!("{e:#}"), "dev hook failed");
                },
                () = state.shutdown_signal() => {}
            }
        });
    }
    match server.await {
        Ok(result) => result,
        Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
    }
}
