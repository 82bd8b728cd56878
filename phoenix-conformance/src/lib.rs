//! # phoenix-conformance
//!
//! The behaviour every Phoenix store backend must show. Each case is a plain
//! `async fn(&dyn TestBackend)`; [`conformance_tests!`] stamps one `#[tokio::test]` per
//! case for a backend factory, so a new case runs against every backend automatically and
//! `cargo test <case name>` filters work.
//!
//! ```ignore
//! async fn memory() -> Option<MemoryBackend> { Some(MemoryBackend::new()) }
//! phoenix_conformance::conformance_tests!(memory);
//! ```
//!
//! A factory returns `None` to skip (after printing a loud notice), e.g. when
//! `PHOENIX_TEST_POSTGRES_URL` is unset; [`require_backend`] turns a skip into a failure
//! when `PHOENIX_REQUIRE_BACKENDS=1`.
//!
//! Besides the cases: [`history`] (a Jepsen-style queue history check) and [`model`] (a
//! `proptest-state-machine` model test of the experiment life cycle), both usable by every
//! backend.

pub mod cases;
pub mod fixtures;
pub mod history;
pub mod model;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use phoenix_core::MemoryStore;
use phoenix_core::clock::{ManualClock, SharedClock};
use phoenix_core::store::Stores;

/// A backend under test: its stores, and control over its single time source.
#[async_trait]
pub trait TestBackend: Send + Sync + 'static {
    /// Handles to every store.
    fn stores(&self) -> Stores;

    /// A clock that agrees with the store's time source (facade and controller use it).
    fn clock(&self) -> SharedClock;

    /// Moves the deployment's time forward by `by`: the store's time source (leases,
    /// `run_at`) and [`TestBackend::clock`] together. Tests never sleep to expire a lease.
    fn advance(&self, by: Duration);

    /// A second, independent handle on the same data, as another server replica would have
    /// (its own connections and bus listener). `None` when the backend is single-process.
    async fn replica(&self) -> Option<Stores> {
        None
    }

    /// Removes what the test created (schema, key prefix). Called after a passing case.
    async fn cleanup(&self) {}
}

/// The in-memory backend on a manual clock.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    store: MemoryStore,
    clock: Arc<ManualClock>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A fresh store on a manual clock starting at the current wall time.
    #[must_use]
    pub fn new() -> Self {
        let start: DateTime<Utc> =
            phoenix_core::clock::Clock::now(&phoenix_core::clock::SystemClock);
        let clock = Arc::new(ManualClock::new(start));
        Self {
            store: MemoryStore::with_clock(clock.clone()),
            clock,
        }
    }
}

#[async_trait]
impl TestBackend for MemoryBackend {
    fn stores(&self) -> Stores {
        self.store.stores()
    }

    fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Whether a missing backend must fail the test run (`PHOENIX_REQUIRE_BACKENDS=1`).
#[must_use]
pub fn backends_required() -> bool {
    std::env::var("PHOENIX_REQUIRE_BACKENDS").is_ok_and(|v| v == "1" || v == "true")
}

/// Reads a backend URL from `var`. Without it: prints a loud skip notice and returns
/// `None`, or panics when [`backends_required`].
#[must_use]
pub fn require_backend(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !backends_required(),
                "{var} is not set but PHOENIX_REQUIRE_BACKENDS=1: this backend must be tested"
            );
            eprintln!(
                "\n!!!!!!!! SKIPPED: {var} is not set, so this backend test did not run !!!!!!!!\n"
            );
            None
        }
    }
}

/// Stamps one `#[tokio::test]` per conformance case for `$factory`, an `async fn() ->
/// Option<B>` where `B: TestBackend`. The list below is the one place cases are named.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::__stamp_case!($factory, experiments, experiment_create_get_roundtrip);
        $crate::__stamp_case!($factory, experiments, experiment_create_duplicate_conflicts);
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_create_rejects_invalid_requests
        );
        $crate::__stamp_case!($factory, experiments, experiment_missing_is_not_found);
        $crate::__stamp_case!($factory, experiments, experiment_list_pagination_is_stable);
        $crate::__stamp_case!($factory, experiments, experiment_list_filters_by_phase);
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_commit_stale_version_changes_nothing
        );
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_concurrent_starts_exactly_one_wins
        );
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_events_are_ordered_and_contiguous
        );
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_commit_enqueues_and_cancels_atomically
        );
        $crate::__stamp_case!($factory, experiments, experiment_delete_rules);
        $crate::__stamp_case!(
            $factory,
            experiments,
            experiment_bus_delivers_events_in_order
        );
        $crate::__stamp_case!($factory, queue, queue_enqueue_claim_complete);
        $crate::__stamp_case!($factory, queue, queue_claim_order_priority_run_at_creation);
        $crate::__stamp_case!($factory, queue, queue_complete_batch_fences_each);
        $crate::__stamp_case!($factory, queue, queue_unique_keys);
        $crate::__stamp_case!($factory, queue, queue_exclusive_claims_under_concurrency);
        $crate::__stamp_case!($factory, queue, queue_lease_expiry_returns_task);
        $crate::__stamp_case!($factory, queue, queue_stale_token_rejected_after_reclaim);
        $crate::__stamp_case!($factory, queue, queue_expired_lease_cannot_complete);
        $crate::__stamp_case!($factory, queue, queue_extend_keeps_lease);
        $crate::__stamp_case!($factory, queue, queue_backoff_schedule_respected);
        $crate::__stamp_case!($factory, queue, queue_dead_letter_and_redrive);
        $crate::__stamp_case!($factory, queue, queue_non_retryable_failure_is_final);
        $crate::__stamp_case!($factory, queue, queue_release_does_not_count_attempt);
        $crate::__stamp_case!($factory, queue, queue_cancel_by_experiment);
        $crate::__stamp_case!($factory, queue, queue_stats_count_states);
        $crate::__stamp_case!($factory, queue, queue_prune_keeps_unfinished);
        $crate::__stamp_case!($factory, queue, queue_list_filters_and_paginates);
        $crate::__stamp_case!($factory, queue, queue_long_poll_wakes_on_enqueue);
        $crate::__stamp_case!($factory, queue, queue_long_poll_times_out_empty);
        $crate::__stamp_case!($factory, queue, queue_long_poll_newer_poll_replaces_older);
        $crate::__stamp_case!($factory, queue, queue_long_poll_wakes_across_replicas);
        $crate::__stamp_case!($factory, agents, agent_enroll_authenticate_revoke);
        $crate::__stamp_case!($factory, agents, agent_heartbeat_and_conditional_loss);
        $crate::__stamp_case!($factory, agents, agent_list_paginates_and_filters);
        $crate::__stamp_case!($factory, agents, token_create_find_revoke);
        $crate::__stamp_case!($factory, queries, query_sources_import_list_replace_delete);
        $crate::__stamp_case!(
            $factory,
            queries,
            queries_frozen_into_experiments_and_samples
        );
        $crate::__stamp_case!($factory, metrics, metric_samples_idempotent_and_ordered);
        $crate::__stamp_case!($factory, metrics, metric_snapshots_latest_per_agent);
        $crate::__stamp_case!($factory, metrics, metric_snapshots_delete);
        $crate::__stamp_case!($factory, metrics, metric_snapshot_versions_follow_writes);
        $crate::__stamp_case!($factory, metrics, metric_snapshots_per_source);
        $crate::__stamp_case!($factory, metrics, deployment_create_and_compare_and_set);
        $crate::__stamp_case!($factory, flows, flow_experiment_runs_to_completion);
        $crate::__stamp_case!($factory, flows, flow_rollback_graceful_and_instant);
        $crate::__stamp_case!($factory, flows, flow_lost_agent_fails_experiment);
        $crate::__stamp_case!($factory, flows, flow_dead_lettered_deploy_fails_experiment);
        $crate::__stamp_case!($factory, flows, flow_controller_repairs_missed_task_outcome);
        $crate::__stamp_case!($factory, flows, flow_history_check_small);
        $crate::__stamp_case!($factory, agents, agents_refused_reports_counted);
        $crate::__stamp_case!($factory, agents, agent_health_history_bounded);
        $crate::__stamp_case!($factory, inputs, inputs_bad_text_refused_alike);
        $crate::__stamp_case!($factory, inputs, inputs_implausible_samples_refused_alike);
        $crate::__stamp_case!($factory, metrics, metric_recent_samples_per_agent);
        $crate::__stamp_case!($factory, history, history_rollup_compare_and_set);
        $crate::__stamp_case!($factory, history, history_rollups_range_and_retention);
        $crate::__stamp_case!(
            $factory,
            history,
            history_recording_is_idempotent_across_replicas
        );
        $crate::__stamp_case!($factory, inputs, inputs_absurd_agent_reports_refused_alike);
        $crate::__stamp_case!($factory, inputs, inputs_task_reports_refused_alike);
        $crate::__stamp_case!(
            $factory,
            inputs,
            inputs_churn_figures_round_trip_and_bounded
        );
        $crate::__stamp_case!($factory, fleet, fleet_views_match_uncached_across_replicas);
        $crate::__stamp_case!(
            $factory,
            fleet,
            fleet_views_state_their_instant_within_staleness
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __stamp_case {
    ($factory:path, $module:ident, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let Some(backend) = $factory().await else {
                return;
            };
            $crate::cases::$module::$case(&backend).await;
            $crate::TestBackend::cleanup(&backend).await;
        }
    };
}
