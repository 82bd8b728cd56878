//! # phoenix-agent
//!
//! The Phoenix host agent, as a library (the `phoenix-agent` binary is a thin `main.rs`
//! over it, and the server's dev mode and tests run it in-process through the same API).
//!
//! An [`Agent`] enrolls with the server (or reuses the credential saved in its
//! [state directory](state)), restores its last-known-good pipelines, then heartbeats,
//! long-polls for tasks and runs them ([`tasks`]), and reports what each pipeline
//! produces ([`report`]). Pipelines run in a [`runtime`]: the native one evaluates the
//! baseline and the candidate on the same sample every interval and serves each on the
//! agent's own listener ([`serve`]); the otelcol one supervises a real Collector.
//!
//! Invariants: the agent only opens outbound connections, except its exposition listener
//! (loopback by default), the otelcol runtime's loopback measurement tap and, when
//! configured, the OTLP receiver ([`otlp_receiver`]); nothing reads the environment but
//! `main.rs`.

pub mod agent;
pub mod config;
pub mod control;
pub mod exposition;
pub mod host;
pub mod http;
pub mod in_process;
pub mod leases;
pub mod otlp;
pub mod otlp_receiver;
pub mod report;
pub mod runtime;
pub mod seq;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod tasks;

pub use agent::{Agent, AgentError, AgentStatus};
pub use config::{AgentArgs, AgentConfig, RuntimeKind};
pub use control::{ControlError, ControlPlane, Enrollment, HeartbeatAck, MetricsAck};
pub use http::HttpControlPlane;
pub use in_process::InProcessControlPlane;

/// Resolves on SIGTERM or Ctrl-C: the agent's graceful-shutdown trigger.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}
