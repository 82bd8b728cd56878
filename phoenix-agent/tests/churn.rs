//! Churn billed as the vendors bill it, with a real agent: the real server (in-process on
//! 127.0.0.1:0) and a real `phoenix-agent` process (native runtime) run an experiment whose
//! candidate keeps the critical processes that this test restarts every 500 ms (30 of the
//! same executable under new pids each time, so new series identities), beside the one
//! process with the most memory (`topk`, K=1). Its output holds a handful of series in
//! every sample, but under Grafana's 20-minute activity window and Datadog's hourly
//! distinct count every restarted process's series stay billed. The agent measures that
//! on the candidate's actual output (`active_series`, `hour_distinct_series` on every
//! sample), the server stores it, and the experiment's cost KPI and the verdict's cost
//! criterion are priced from it: above what the per-sample series count would cost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use phoenix_core::PhoenixConfig;
use phoenix_core::cost::churn::MAX_TRACKED_SERIES;
use phoenix_core::cost::{Catalogue, Observation, Usage};
use phoenix_core::experiment::{ExperimentSpec, TargetSelector};
use phoenix_core::ids::ExperimentId;
use phoenix_core::judge::{Criterion, KpiName};
use phoenix_core::measure::MeasurementSample;
use phoenix_core::pipeline::{ParamValue, PipelineRef};
use tokio::process::Child;

mod support;
use support::processes::NamedProcesses;
use support::stand::{FINAL_PHASES, Stand, wait_phase};

fn start_agent(stand: &Stand, state_dir: &Path, label: &str) -> Child {
    stand
        .agent(state_dir, "churn-a")
        .args(["--label", &format!("churn={label}")])
        .spawn()
}

fn every(s: &str) -> ParamValue {
    ParamValue::String(s.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churning_candidate_is_priced_by_the_vendors_windows_not_its_sample_count() {
    let stand = Stand::start(PhoenixConfig {
        heartbeat_interval: chrono::Duration::seconds(1),
        safety_poll: chrono::Duration::milliseconds(200),
        ..PhoenixConfig::default()
    })
    .await;
    let (client, phoenix) = (&stand.client, &stand.phoenix);
    let dirs = tempfile::tempdir().unwrap();
    let label = uuid::Uuid::new_v4().to_string();
    let _agent = start_agent(&stand, &dirs.path().join("a"), &label);

    // The churning processes: 30 of them, all restarted every 500 ms (so every 1 s sample
    // sees new pids) for as long as the test runs.
    let name = NamedProcesses::unique_name("churn");
    let restarts = tokio::spawn({
        let name = name.clone();
        async move {
            let mut processes = NamedProcesses::new();
            loop {
                processes.replace(&name, 30);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    // Datadog bills each hour's distinct series, whatever the data points. Grafana bills
    // max(P95 active series, P95 DPM / 1 included DPM per series): a series scraped every
    // second is 60 DPM, so the active series outweigh the DPM term only once more than a
    // minute of restarts is inside the 20-minute window, hence the longer run.
    for (model, duration_secs) in [("datadog-pro", 20), ("grafana-cloud-pro", 100)] {
        // Baseline: every process summed by executable (no pid: the restarts do not change
        // its series). Candidate: the process with the most memory and the critical one,
        // each with its pid.
        let baseline = PipelineRef::new("aggregate")
            .with_param("collection_interval", every("1s"))
            .with_param("protect_critical", ParamValue::Bool(false));
        let candidate = PipelineRef::new("topk")
            .with_param("collection_interval", every("1s"))
            .with_param("rank_by", every("memory"))
            .with_param("k", ParamValue::Int(1));
        let mut spec = ExperimentSpec::new(baseline, candidate, duration_secs);
        spec.targets = TargetSelector {
            labels: BTreeMap::from([("churn".to_owned(), label.clone())]),
            hosts: Vec::new(),
        };
        spec.sample_interval_secs = 1;
        spec.critical_processes = vec![name.clone()];
        spec.pricing_model = model.to_owned();
        // Informational (non-critical): the verdict carries the cost KPI it measured.
        spec.criteria = vec![Criterion::at_least(
            KpiName::CostReductionPct,
            -100.0,
            false,
        )];
        let created = client
            .create_experiment(&phoenix_api::experiment::NewExperiment {
                name: format!("churn under {model}"),
                description: String::new(),
                spec: spec.into(),
            })
            .await
            .expect("created");
        client.start_experiment(created.id).await.expect("started");
        let id = ExperimentId(created.id);
        let done = wait_phase(phoenix, id, &FINAL_PHASES, 180).await;

        // Every sample carries both figures for both variants, within their bounds.
        let samples: Vec<MeasurementSample> =
            phoenix.stores().metrics.samples(id, 10_000).await.unwrap();
        assert!(
            samples.len() as u64 >= duration_secs / 2,
            "{} samples",
            samples.len()
        );
        for s in &samples {
            for v in [&s.baseline, &s.candidate] {
                for figure in [v.active_series, v.hour_distinct_series] {
                    let figure = figure.expect("the agent measures churn on every sample");
                    assert!(figure >= v.series, "{v:?}");
                    assert!(figure <= v.series + MAX_TRACKED_SERIES as u64, "{v:?}");
                }
            }
        }
        // Nothing leaves a 20-minute window during the test: the candidate's active series
        // only grow, by the restarted process's series, while each sample holds a handful.
        let mut by_seq: Vec<&MeasurementSample> = samples.iter().collect();
        by_seq.sort_by_key(|s| s.seq);
        let active: Vec<u64> = by_seq
            .iter()
            .map(|s| s.candidate.active_series.unwrap())
            .collect();
        assert!(active.windows(2).all(|w| w[0] <= w[1]), "{active:?}");
        let most_series = samples.iter().map(|s| s.candidate.series).max().unwrap();
        let last = by_seq.last().unwrap();
        assert!(
            last.candidate.active_series.unwrap() >= 3 * most_series,
            "{} active series at the end, at most {most_series} per sample",
            last.candidate.active_series.unwrap()
        );

        // The cost KPI priced the vendors' windows, and says so.
        let (_, kpis) = phoenix.experiment_kpis(id).await.unwrap();
        let cost = kpis.cost.as_ref().expect("priced");
        let candidate = &cost.measured.candidate;
        let per_sample = kpis.candidate.series_p95;
        let (billed, rule_says) = match model {
            "grafana-cloud-pro" => (
                cost.candidate_usage.active_series_p95,
                "series active within the last 20 minutes measured by the agents on every sample",
            ),
            _ => (
                cost.candidate_usage.series_hourly_mean,
                "each hour's distinct series measured by the agents on every sample",
            ),
        };
        assert!(
            candidate.quantity_rule.contains(rule_says),
            "{}",
            candidate.quantity_rule
        );
        assert_eq!(candidate.quantity, billed, "{}", candidate.quantity_rule);
        assert!(
            candidate.quantity >= 2 * per_sample,
            "{model}: billed {} series, {per_sample} per sample (P95)",
            candidate.quantity
        );
        // What the per-sample count alone would have cost (the rule for samples without
        // the figures): less.
        let by_count = |pick: fn(&MeasurementSample) -> &phoenix_core::measure::VariantStats| {
            let counted: Vec<Observation> = samples
                .iter()
                .map(|s| Observation {
                    taken_at: Some(s.taken_at),
                    series: pick(s).series,
                    points: pick(s).points,
                    bytes: pick(s).bytes,
                    interval_secs: s.interval_secs,
                    active_series: None,
                    hour_distinct_series: None,
                })
                .collect();
            Catalogue::builtin()
                .price(model, &Usage::from_hosts([counted.as_slice()], "counts"))
                .unwrap()
        };
        let base_by_count = by_count(|s| &s.baseline);
        let by_count = by_count(|s| &s.candidate);
        assert!(by_count.quantity_rule.contains("no sample carried"));
        assert!(
            candidate.gross_monthly > by_count.gross_monthly,
            "{model}: {} by the vendor's window, {} by the per-sample count",
            candidate.gross_monthly,
            by_count.gross_monthly
        );
        let kpi = kpis
            .kpis
            .iter()
            .find(|k| k.kpi == KpiName::CostReductionPct)
            .unwrap();
        assert_eq!(kpi.candidate, Some(candidate.gross_monthly.as_f64_units()));
        let verdict = done.verdict.clone().expect("judged");
        let measured = verdict
            .criteria
            .iter()
            .find(|c| c.criterion.kpi == KpiName::CostReductionPct)
            .and_then(|c| c.measured)
            .expect("the verdict measured the cost KPI");
        // The verdict judged the candidate by the vendor's window too: its cost reduction is
        // far below what both variants' per-sample counts would give.
        let count_reduction = (1.0
            - by_count.gross_monthly.as_f64_units() / base_by_count.gross_monthly.as_f64_units())
            * 100.0;
        assert!(
            measured < count_reduction,
            "{model}: verdict {measured} %, by counts {count_reduction} %"
        );
    }
    restarts.abort();
    stand.stop().await;
}
