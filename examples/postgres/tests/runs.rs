//! The PostgreSQL example runs to a verdict across two replicas, in a throwaway schema.

use phoenix_conformance::require_backend;
use phoenix_core::experiment::Phase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_run_an_experiment_to_a_verdict() {
    let Some(url) = require_backend("PHOENIX_TEST_POSTGRES_URL") else {
        return;
    };
    let id = std::process::id();
    let schema = format!("phoenix_example_{id}");
    let finished = example_postgres::run(
        &url,
        &schema,
        example_postgres::Options {
            duration_secs: 10,
            interval_secs: 1,
            ..Default::default()
        },
    )
    .await;
    example_postgres::drop_schema(&url, &schema)
        .await
        .expect("schema dropped");
    let finished = finished.expect("the example runs");
    assert_eq!(finished.phase, Phase::Completed, "{finished:#?}");
    let verdict = finished.verdict.expect("judged");
    assert!(verdict.samples >= 2, "{verdict:#?}");
}
