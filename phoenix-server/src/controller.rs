//! The controller loop: the core `Controller` ticked on a timer until shutdown. Every
//! replica may run it (the controller is idempotent and compare-and-set based).

use std::sync::Arc;
use std::time::Duration;

use phoenix_core::Controller;

use crate::state::AppState;

/// Ticks until shutdown.
pub async fn run(state: Arc<AppState>) {
    let controller = Controller::new(state.phoenix.clone());
    let mut interval =
        tokio::time::interval(Duration::from_millis(state.config.controller_interval_ms));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = state.shutdown_signal() => return,
        }
        match controller.tick().await {
            Ok(report) => {
                let m = &state.metrics;
                m.lease_expiries.inc_by(report.leases_expired as u64);
                m.agents_lost.inc_by(report.agents_lost as u64);
                m.controller_transitions.inc_by(report.transitions as u64);
                if report.leases_expired + report.agents_lost + report.transitions > 0 {
                    tracing::debug!(?report, "controller tick");
                }
            }
            Err(e) => {
                state.metrics.controller_errors.inc();
                tracing::warn!(error = %crate::error::error_chain(&e), "controller tick failed");
            }
        }
    }
}
