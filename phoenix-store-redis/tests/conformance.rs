//! The conformance suite, the queue history check and the model test on `RedisStore`,
//! against the Redis at `PHOENIX_TEST_REDIS_URL` (a fresh key prefix per test).

mod common;

use std::sync::{Mutex, PoisonError};

use common::RedisBackend;
use phoenix_conformance::TestBackend;
use phoenix_conformance::history::{self, HistoryConfig};
use phoenix_conformance::model::{LifecycleModel, LifecycleTest, ModelBackend, cases, runtime};
use phoenix_store_redis::RedisStore;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

async fn redis() -> Option<RedisBackend> {
    RedisBackend::fresh().await
}

phoenix_conformance::conformance_tests!(redis);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_check_10k_tasks_20pct_deaths() {
    let Some(backend) = RedisBackend::fresh().await else {
        return;
    };
    let report = history::run(&backend, &HistoryConfig::with_tasks(10_000)).await;
    println!("redis history: {report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.enqueued, 10_000);
    assert!(
        report.deaths > 1_000,
        "about 20% of deliveries die: {report:?}"
    );
    backend.cleanup().await;
}

/// The model test's backend: a fresh prefix per case (each case's controller then sees only
/// its own agents); the previous case's keys are purged when the next case starts.
#[derive(Debug)]
struct RedisModel;

static PREVIOUS: Mutex<Option<RedisStore>> = Mutex::new(None);

fn purge_previous() {
    let previous = PREVIOUS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(store) = previous {
        runtime()
            .block_on(store.purge())
            .expect("purge the previous case");
    }
}

impl ModelBackend for RedisModel {
    fn create() -> Option<Box<dyn TestBackend>> {
        let url = phoenix_conformance::require_backend(common::URL_VAR)?;
        purge_previous();
        let backend = runtime().block_on(RedisBackend::connect(url));
        *PREVIOUS.lock().unwrap_or_else(PoisonError::into_inner) = Some(backend.store.clone());
        Some(Box::new(backend))
    }
}

#[test]
fn experiment_lifecycle_model() {
    let config = Config {
        cases: cases(1_000),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let outcome = runner.run(
        &LifecycleModel::sequential_strategy(1..24),
        |(initial, transitions, seen)| {
            LifecycleTest::<RedisModel>::test_sequential(
                config.clone(),
                initial,
                transitions,
                seen,
            );
            Ok(())
        },
    );
    purge_previous();
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
