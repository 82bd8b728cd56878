//! The conformance cases, one plain `async fn` per store behaviour.

pub mod agents;
pub mod experiments;
pub mod fleet;
pub mod flows;
pub mod history;
pub mod inputs;
pub mod metrics;
pub mod queries;
pub mod queue;
