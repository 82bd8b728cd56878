//! The conformance suite, the queue history check and the model test on PostgreSQL.
//! Each test runs on its own fresh schema (see `common`), so they run in parallel.

mod common;

use common::{PgModel, pg};
use phoenix_conformance::history::{self, HistoryConfig};
use phoenix_conformance::model::{LifecycleModel, LifecycleTest, cases};
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

phoenix_conformance::conformance_tests!(pg);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_check_10k_tasks_20pct_deaths() {
    let Some(backend) = pg().await else {
        return;
    };
    let report = history::run(&backend, &HistoryConfig::with_tasks(10_000)).await;
    println!("postgres history: {report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.enqueued, 10_000);
    assert!(
        report.deaths > 1_000,
        "about 20% of deliveries die: {report:?}"
    );
    phoenix_conformance::TestBackend::cleanup(&backend).await;
}

/// The state-machine model test (what `prop_state_machine!` expands to, plus dropping the
/// shared schema afterwards).
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
            LifecycleTest::<PgModel>::test_sequential(config.clone(), initial, transitions, seen);
            Ok(())
        },
    );
    PgModel::teardown();
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
