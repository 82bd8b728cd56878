//! The custom store passes what every Phoenix backend must: the conformance suite, the
//! queue history check and the life-cycle model test. Plus what it promises itself:
//! acknowledged measurements survive reopening the directory.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use example_custom_store::FileMetricStore;
use phoenix_conformance::TestBackend;
use phoenix_conformance::history::{self, HistoryConfig};
use phoenix_conformance::model::LifecycleTest;
use phoenix_core::MemoryStore;
use phoenix_core::clock::{Clock, ManualClock, SharedClock, SystemClock};
use phoenix_core::store::Stores;

struct FileBackend {
    memory: MemoryStore,
    clock: Arc<ManualClock>,
    metrics: Arc<FileMetricStore>,
    _dir: tempfile::TempDir,
}

impl FileBackend {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(SystemClock.now()));
        let memory = MemoryStore::with_clock(clock.clone());
        let dir = tempfile::tempdir().expect("temporary directory");
        let metrics =
            Arc::new(FileMetricStore::open(dir.path(), memory.stores().bus).expect("store opens"));
        Self {
            memory,
            clock,
            metrics,
            _dir: dir,
        }
    }
}

#[async_trait]
impl TestBackend for FileBackend {
    fn stores(&self) -> Stores {
        FileMetricStore::compose(&self.memory, self.metrics.clone())
    }

    fn clock(&self) -> SharedClock {
        self.clock.clone()
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

async fn files() -> Option<FileBackend> {
    Some(FileBackend::new())
}

phoenix_conformance::conformance_tests!(files);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_check_1k_tasks() {
    let backend = FileBackend::new();
    let report = history::run(&backend, &HistoryConfig::with_tasks(1_000)).await;
    assert!(report.is_clean(), "{report:?}");
}

/// The model test builds a fresh backend per case.
struct FileModel;

impl phoenix_conformance::model::ModelBackend for FileModel {
    fn create() -> Option<Box<dyn TestBackend>> {
        Some(Box::new(FileBackend::new()))
    }
}

proptest_state_machine::prop_state_machine! {
    #![proptest_config(proptest::test_runner::Config {
        cases: phoenix_conformance::model::cases(64),
        failure_persistence: None,
        .. proptest::test_runner::Config::default()
    })]

    #[test]
    fn experiment_lifecycle_model(
        sequential 1..24 => LifecycleTest<FileModel>
    );
}

#[tokio::test]
async fn acknowledged_samples_survive_reopening() {
    use phoenix_core::ids::{AgentId, ExperimentId};
    use phoenix_core::store::MetricStore;

    let dir = tempfile::tempdir().unwrap();
    let bus = MemoryStore::new().stores().bus;
    let experiment = ExperimentId::new();
    let agent = AgentId::new();
    let fixture = phoenix_conformance::fixtures::sample(SystemClock.now(), experiment, agent, 1);
    {
        let store = FileMetricStore::open(dir.path(), bus.clone()).unwrap();
        let mut second = fixture.clone();
        second.seq = 2;
        let report = store
            .append_samples(&[fixture.clone(), second])
            .await
            .unwrap();
        assert_eq!(report.inserted, 2);
    }
    let reopened = FileMetricStore::open(dir.path(), bus).unwrap();
    let back = reopened.samples(experiment, 10).await.unwrap();
    assert_eq!(back.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(back[0].baseline.series, fixture.baseline.series);
    // Still idempotent after the restart.
    let again = reopened.append_samples(&[fixture]).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 1));
}
