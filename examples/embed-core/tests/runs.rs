//! The embedding example runs to completion on this machine and its verdict comes from
//! the in-process agent's real measurements.

use phoenix_core::experiment::Phase;
use phoenix_core::judge::KpiName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_example_runs_to_a_verdict() {
    let finished = example_embed_core::run(example_embed_core::Options {
        duration_secs: 10,
        interval_secs: 1,
        ..Default::default()
    })
    .await
    .expect("the example runs");
    assert_eq!(finished.phase, Phase::Completed, "{finished:#?}");
    let verdict = finished.verdict.expect("judged");
    assert!(verdict.samples >= 3, "{verdict:#?}");
    let coverage = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == KpiName::CriticalCoveragePct)
        .and_then(|c| c.measured)
        .expect("critical coverage measured");
    assert!((coverage - 100.0).abs() < 1e-9, "{verdict:#?}");
    let reduction = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == KpiName::CardinalityReductionPct)
        .and_then(|c| c.measured)
        .expect("reduction measured");
    assert!(reduction > 0.0, "{verdict:#?}");
}
