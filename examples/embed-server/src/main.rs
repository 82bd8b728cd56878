//! Nesting the Phoenix API inside an existing poem application.
//!
//! Run: `cargo run -p example-embed-server`, then open
//! <http://127.0.0.1:3000/phoenix/docs> (the admin token is printed).
//!
//! The host application keeps its own routes (`/`) and middleware; Phoenix lives under
//! `/phoenix` with its REST API, WebSocket, Swagger UI and OpenAPI document. The
//! application is responsible for running the Phoenix controller (here: a tokio task).

use std::sync::Arc;
use std::time::Duration;

use phoenix_core::{Controller, MemoryStore, Phoenix, PhoenixConfig};
use phoenix_server::{AppState, PhoenixEndpoint, ServerConfig};
use poem::listener::TcpListener;
use poem::middleware::Tracing;
use poem::{EndpointExt, Route, Server, get, handler};

#[handler]
fn home() -> &'static str {
    "my application; Phoenix is under /phoenix"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let phoenix = Phoenix::new(
        store.stores(),
        Arc::new(phoenix_core::clock::SystemClock),
        PhoenixConfig::default(),
    );
    let admin_token = "phx_user_example-admin-token-change-me".to_owned();
    let state = AppState::new(
        phoenix.clone(),
        ServerConfig {
            admin_token: Some(admin_token.clone()),
            enrollment_token: Some("example-enrollment-token".to_owned()),
            ..ServerConfig::default()
        },
    );
    // Register the configured admin token (serve() does this itself).
    phoenix_server::bootstrap(&state).await?;
    // The controller drives timers, lease expiry and agent loss.
    tokio::spawn(async move {
        let controller = Controller::new(phoenix);
        loop {
            if let Err(e) = controller.tick().await {
                eprintln!("controller: {e}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let app = Route::new()
        .at("/", get(home))
        .nest(
            "/phoenix",
            PhoenixEndpoint::new(state).base_path("/phoenix"),
        )
        .with(Tracing);
    println!("http://127.0.0.1:3000/phoenix/docs  (admin token: {admin_token})");
    Server::new(TcpListener::bind("127.0.0.1:3000"))
        .run(app)
        .await?;
    Ok(())
}
