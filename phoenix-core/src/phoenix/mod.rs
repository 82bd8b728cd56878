//! The [`Phoenix`] facade: what embedders and the server call. It wires the pure rules
//! (state machine, retry policy, agent health) to the stores: read, decide, compare-and-set,
//! retry on conflict, publish.

mod agents;
mod analysis;
mod deployments;
mod experiments;
mod fleet_cache;
mod group_commit;
mod history;
mod preview;
mod queries;
mod tasks;

pub use preview::{PreviewRequest, PreviewSource};

pub use analysis::{
    CardinalityView, CostAnalysis, CostFlowView, Coverage, FleetOverview, FleetSnapshots,
    FleetSummary, SnapshotRefresh, select_snapshots, shipped_is_current,
};
pub use group_commit::MAX_GROUP as MAX_COMPLETION_GROUP;
pub use history::{
    HistoryMarker, HistoryQuery, HistoryTick, HistoryView, MarkerKind, MarkerSubject,
};

use std::sync::{Arc, OnceLock};

use chrono::Duration;
use tokio::sync::broadcast;

use crate::analyzer::{Analyzer, DefaultAnalyzer};
use crate::clock::SharedClock;
use crate::cost::Catalogue;
use crate::error::StoreError;
use crate::experiment::TransitionError;
use crate::pipeline::{PipelineError, TemplateRegistry};
use crate::store::{BusEvent, Stores};
use crate::task::RetryPolicy;
use crate::validation::ValidationErrors;
use crate::wakeup::Waiters;

pub use agents::{MAX_AGENT_LABELS, MAX_SAMPLES_PER_REPORT, MAX_SNAPSHOT_SERIES};
pub use deployments::DeploymentRequest;
pub use experiments::Applied;
pub use tasks::{ReportReceipt, TaskReport};

/// Tunables of the facade and the controller.
#[derive(Debug, Clone)]
pub struct PhoenixConfig {
    /// Lease granted by a claim (agents extend it while a task runs).
    pub lease: Duration,
    /// Retry timing of failed tasks.
    pub retry: RetryPolicy,
    /// Expected agent heartbeat interval (an agent is lost after 3 missed).
    pub heartbeat_interval: Duration,
    /// Long-polls re-check the queue this often even without a wake-up (safety net for a
    /// lost bus message or a retry whose backoff elapsed). Every waiting agent costs one
    /// re-check per period: 5 s keeps 10,000 waiting agents under 5 % of a core
    /// (`docs/benchmarks.md`) and bounds how late a retry or a lost wake-up is picked up.
    pub safety_poll: Duration,
    /// Most tasks handed out by one poll.
    pub max_tasks_per_poll: usize,
    /// Compare-and-set retries before giving up with `Conflict`.
    pub max_conflict_retries: usize,
    /// Finished tasks are pruned after this long.
    pub task_retention: Duration,
    /// Agents take a cardinality snapshot of their inputs this often (told in every
    /// heartbeat answer).
    pub snapshot_interval: Duration,
    /// A host that is not live (lost, revoked) keeps its last snapshot in the fleet's views
    /// this long after taking it; then the controller deletes it. Deleted agents leave at once.
    pub snapshot_retention: Duration,
    /// The most a fleet view (cost flow, cardinality, recommendations) may lag the stored
    /// snapshots: views are memoized per replica and recomputed in the background once
    /// half of this has passed; a request finding one older waits for a fresh one. Zero
    /// computes every view on request. Views state the instant they were computed for
    /// (`Coverage::computed_at`).
    pub fleet_view_staleness: Duration,
    /// Cost history: recording interval, retention and bound ([`crate::history`]).
    pub history: crate::history::HistoryConfig,
    /// An agent's health history keeps the points of this long (and at most
    /// [`crate::store::MAX_HEALTH_POINTS_PER_AGENT`]); the controller deletes older ones.
    pub health_retention: Duration,
}

impl Default for PhoenixConfig {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            retry: RetryPolicy::default(),
            heartbeat_interval: Duration::seconds(10),
            safety_poll: Duration::seconds(5),
            max_tasks_per_poll: 16,
            max_conflict_retries: 64,
            task_retention: Duration::hours(24),
            snapshot_interval: Duration::seconds(60),
            snapshot_retention: Duration::minutes(15),
            fleet_view_staleness: Duration::seconds(10),
            history: crate::history::HistoryConfig::default(),
            health_retention: Duration::hours(1),
        }
    }
}

/// Everything the facade can refuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PhoenixError {
    /// A store failed.
    #[error("store operation failed")]
    Store(#[source] StoreError),
    /// The state machine refused the input.
    #[error("transition refused")]
    Transition(#[source] TransitionError),
    /// The request has invalid fields.
    #[error("invalid request")]
    Validation(ValidationErrors),
    /// The credential is missing, malformed, unknown or revoked.
    #[error("not authenticated")]
    Unauthenticated,
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is well formed but what it needs is not there yet (an agent that has
    /// sent no snapshot); asking again later may succeed.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A quick deployment refused the input.
    #[error("deployment refused the input")]
    Deployment(#[source] crate::deployment::DeploymentError),
}

impl PhoenixError {
    /// The store error, if this is one.
    #[must_use]
    pub fn as_store(&self) -> Option<&StoreError> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }

    /// The transition error, if this is one.
    #[must_use]
    pub fn as_transition(&self) -> Option<&TransitionError> {
        match self {
            Self::Transition(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for PhoenixError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<TransitionError> for PhoenixError {
    fn from(e: TransitionError) -> Self {
        Self::Transition(e)
    }
}

impl From<crate::deployment::DeploymentError> for PhoenixError {
    fn from(e: crate::deployment::DeploymentError) -> Self {
        Self::Deployment(e)
    }
}

impl From<ValidationErrors> for PhoenixError {
    fn from(e: ValidationErrors) -> Self {
        Self::Validation(e)
    }
}

impl From<PipelineError> for PhoenixError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Invalid(errors) => Self::Validation(ValidationErrors { errors }),
            other => Self::Validation(ValidationErrors {
                errors: other.field_errors(),
            }),
        }
    }
}

/// The Phoenix facade. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Phoenix {
    inner: Arc<Inner>,
}

struct Inner {
    stores: Stores,
    clock: SharedClock,
    config: PhoenixConfig,
    templates: TemplateRegistry,
    analyzer: Arc<dyn Analyzer>,
    catalogue: Arc<Catalogue>,
    waiters: Arc<Waiters>,
    pump: OnceLock<()>,
    /// Concurrent task completions, applied together.
    completions: Arc<group_commit::GroupCommit>,
    /// This replica's interned snapshots and memoized fleet views.
    fleet_cache: Arc<fleet_cache::FleetCache>,
    /// The last history interval this process handled.
    history_last: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

impl std::fmt::Debug for Phoenix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phoenix")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Phoenix {
    /// A facade over `stores` with time from `clock`.
    #[must_use]
    pub fn new(stores: Stores, clock: SharedClock, config: PhoenixConfig) -> Self {
        Self::builder(stores, clock).config(config).build()
    }

    /// A builder, to replace the template registry, the pricing catalogue or the analyzer.
    #[must_use]
    pub fn builder(stores: Stores, clock: SharedClock) -> PhoenixBuilder {
        PhoenixBuilder {
            stores,
            clock,
            config: PhoenixConfig::default(),
            templates: TemplateRegistry::builtin(),
            analyzer: None,
            catalogue: Arc::new(Catalogue::builtin()),
        }
    }

    /// The stores.
    #[must_use]
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PhoenixConfig {
        &self.inner.config
    }

    /// The template registry.
    #[must_use]
    pub fn templates(&self) -> &TemplateRegistry {
        &self.inner.templates
    }

    /// The analyzer that judges experiments.
    #[must_use]
    pub fn analyzer(&self) -> &Arc<dyn Analyzer> {
        &self.inner.analyzer
    }

    /// The pricing catalogue: experiments' `pricing_model` and every cost figure refer to
    /// its entries.
    #[must_use]
    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.inner.catalogue
    }

    /// A subscription to every domain event.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.stores.bus.subscribe()
    }

    /// Agents currently long-polling this process.
    #[must_use]
    pub fn waiting_agents(&self) -> usize {
        self.inner.waiters.len()
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }
}

/// Builds a [`Phoenix`].
pub struct PhoenixBuilder {
    stores: Stores,
    clock: SharedClock,
    config: PhoenixConfig,
    templates: TemplateRegistry,
    analyzer: Option<Arc<dyn Analyzer>>,
    catalogue: Arc<Catalogue>,
}

impl std::fmt::Debug for PhoenixBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoenixBuilder").finish_non_exhaustive()
    }
}

impl PhoenixBuilder {
    /// Sets the configuration.
    #[must_use]
    pub fn config(mut self, config: PhoenixConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the template registry.
    #[must_use]
    pub fn templates(mut self, templates: TemplateRegistry) -> Self {
        self.templates = templates;
        self
    }

    /// Sets the analyzer (default: [`DefaultAnalyzer`] over the catalogue).
    #[must_use]
    pub fn analyzer(mut self, analyzer: Arc<dyn Analyzer>) -> Self {
        self.analyzer = Some(analyzer);
        self
    }

    /// Sets the pricing catalogue (default: the built-in one), e.g. the built-ins with a
    /// contract's prices from [`Catalogue::builtin_with_overrides`].
    #[must_use]
    pub fn catalogue(mut self, catalogue: Arc<Catalogue>) -> Self {
        self.catalogue = catalogue;
        self
    }

    /// Builds the facade.
    #[must_use]
    pub fn build(self) -> Phoenix {
        Phoenix {
            inner: Arc::new(Inner {
                stores: self.stores,
                clock: self.clock,
                config: self.config,
                templates: self.templates,
                analyzer: self
                    .analyzer
                    .unwrap_or_else(|| Arc::new(DefaultAnalyzer::new(self.catalogue.clone()))),
                catalogue: self.catalogue,
                waiters: Arc::new(Waiters::default()),
                pump: OnceLock::new(),
                completions: Arc::default(),
                fleet_cache: Arc::default(),
                history_last: std::sync::Mutex::new(None),
            }),
        }
    }
}
