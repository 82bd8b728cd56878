//! # phoenix-core
//!
//! The embeddable heart of Phoenix: the experiment state machine, task queue semantics,
//! agent rules, pipelines, cost model, KPIs and the judge, all pure and all behind storage
//! traits, with an in-memory backend ([`memory::MemoryStore`]).
//!
//! Invariants: this crate does no network or file IO; time comes from an injected
//! [`clock::Clock`]; rules live here and backends only provide atomic primitives.

pub mod agent;
pub mod analyzer;
pub mod auth;
pub mod backoff;
pub mod cardinality;
pub mod clock;
pub mod controller;
pub mod cost;
pub mod deployment;
pub mod error;
pub mod experiment;
pub mod history;
pub mod ids;
pub mod inputs;
pub mod judge;
pub mod kpi;
pub mod measure;
pub mod memory;
pub mod page;
pub mod phoenix;
pub mod pipeline;
pub mod plausibility;
pub mod queries;
pub mod store;
pub mod task;
pub mod validation;
pub mod wakeup;

pub use controller::Controller;
pub use error::StoreError;
pub use memory::MemoryStore;
pub use phoenix::{
    CostAnalysis, CostFlowView, FleetOverview, FleetSummary, Phoenix, PhoenixConfig, PhoenixError,
};
