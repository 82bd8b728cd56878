//! The `phoenix-agent` binary: parse configuration, init tracing, run until SIGTERM/SIGINT.

use std::sync::Arc;

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = phoenix_agent::AgentArgs::parse().resolve()?;
    let control = Arc::new(phoenix_agent::HttpControlPlane::new(&config.server_url)?);
    phoenix_agent::Agent::new(config, control)
        .run(phoenix_agent::shutdown_signal())
        .await?;
    Ok(())
}
