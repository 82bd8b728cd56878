//! The conformance suite, the queue history check and the model test on `MemoryStore`.

use phoenix_conformance::MemoryBackend;
use phoenix_conformance::history::{self, HistoryConfig};
use phoenix_conformance::model::{LifecycleTest, MemoryModel, cases};
use proptest_state_machine::prop_state_machine;

async fn memory() -> Option<MemoryBackend> {
    Some(MemoryBackend::new())
}

phoenix_conformance::conformance_tests!(memory);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_check_10k_tasks_20pct_deaths() {
    let backend = MemoryBackend::new();
    let report = history::run(&backend, &HistoryConfig::with_tasks(10_000)).await;
    println!("memory history: {report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.enqueued, 10_000);
    assert!(
        report.deaths > 1_000,
        "about 20% of deliveries die: {report:?}"
    );
}

prop_state_machine! {
    #![proptest_config(proptest::test_runner::Config {
        cases: cases(1_000),
        failure_persistence: None,
        .. proptest::test_runner::Config::default()
    })]

    #[test]
    fn experiment_lifecycle_model(sequential 1..24 => LifecycleTest<MemoryModel>);
}
