use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::pipeline::corpus;
use crate::pipeline::sample::{CpuStates, MetricKind, ProcessRecord, SampleBuilder};
use crate::pipeline::spec::{
    AggregateOtherStage, AutoTune, BatchStage, FilterAction, FilterStage, KeepCriticalStage,
    LabelMatch, PipelineSpec, RankBy, Stage, ThresholdStage, TopKStage,
};

fn process(pid: u32, exe: &str, cpu: f64, mem_mib: u64) -> ProcessRecord {
    ProcessRecord {
        pid,
        parent_pid: Some(1),
        executable_name: exe.to_owned(),
        executable_path: Some(format!("/usr/bin/{exe}")),
        command: Some(exe.to_owned()),
        command_line: Some(format!("{exe} --serve")),
        owner: Some("app".to_owned()),
        cpu_time: CpuStates {
            user: cpu * 100.0,
            system: cpu * 10.0,
            wait: Some(0.0),
        },
        cpu_utilization: Some(CpuStates {
            user: cpu * 0.75,
            system: cpu * 0.25,
            wait: Some(0.0),
        }),
        memory_usage_bytes: mem_mib << 20,
        memory_virtual_bytes: (mem_mib << 20) * 4,
        disk_read_bytes: Some(1000),
        disk_write_bytes: Some(2000),
        threads: None,
        open_file_descriptors: None,
    }
}

fn spec(stages: Vec<Stage>) -> PipelineSpec {
    PipelineSpec {
        receivers: vec![],
        stages,
        exporters: vec![],
    }
}

fn critical(processes: &[&str]) -> Stage {
    Stage::KeepCritical(KeepCriticalStage {
        processes: processes.iter().map(|p| Pattern::new(*p)).collect(),
        metrics: vec![],
    })
}

fn topk(k: u32, rank_by: RankBy) -> Stage {
    Stage::TopK(TopKStage {
        k,
        rank_by,
        collector_min_value: 0.0,
    })
}

fn executables(sample: &Sample) -> Vec<String> {
    let mut seen = Vec::new();
    for s in sample.series() {
        if let Some(e) = sample.resource_attr(s.resource, names::EXECUTABLE_NAME)
            && !seen.iter().any(|x| x == e)
        {
            seen.push(e.to_owned());
        }
    }
    seen
}

/// Per (metric, point attributes) sums over process series.
fn sums(sample: &Sample) -> BTreeMap<(String, Vec<(String, String)>), f64> {
    let mut out = BTreeMap::new();
    for s in sample.series() {
        if !sample.is_process_resource(s.resource) {
            continue;
        }
        let mut attrs: Vec<(String, String)> = s
            .attributes
            .pairs()
            .iter()
            .map(|(k, v)| (sample.resolve(*k).to_owned(), sample.resolve(*v).to_owned()))
            .collect();
        attrs.sort();
        *out.entry((sample.resolve(s.metric).to_owned(), attrs))
            .or_insert(0.0) += s.value;
    }
    out
}

#[test]
fn process_records_become_hostmetrics_series() {
    let sample = Sample::from_processes(7, &[process(42, "nginx", 0.1, 64)]);
    // cpu.time x3, cpu.utilization x3, memory x2, disk.io x2
    assert_eq!(sample.len(), 10);
    let r = sample.series()[0].resource;
    assert_eq!(sample.resource_attr(r, names::PID), Some("42"));
    assert_eq!(
        sample.resource_attr(r, names::EXECUTABLE_NAME),
        Some("nginx")
    );
    assert_eq!(sample.resource_attr(r, names::OWNER), Some("app"));
    assert_eq!(
        sample.resource_attr(r, names::COMMAND_LINE),
        Some("nginx --serve")
    );
    let by_metric = sample.series_by_metric();
    assert_eq!(by_metric[names::PROCESS_CPU_TIME], 3);
    assert_eq!(by_metric[names::PROCESS_DISK_IO], 2);
    let snapshot = sample.snapshot_series();
    assert_eq!(snapshot.len(), 10);
    assert_eq!(snapshot[0].metric, names::PROCESS_CPU_TIME);
    assert_eq!(snapshot[0].labels["state"], "user");
    assert_eq!(snapshot[0].labels[names::PID], "42");
}

#[test]
fn filter_keeps_or_drops_by_name_and_label_but_never_protected_series() {
    let sample = Sample::from_processes(
        0,
        &[process(1, "nginx", 0.1, 10), process(2, "java", 0.2, 20)],
    );
    let keep_memory = spec(vec![
        critical(&["nginx"]),
        Stage::Filter(FilterStage {
            action: FilterAction::Keep,
            metrics: vec!["process.memory.*".into()],
            labels: vec![],
        }),
    ]);
    let out = evaluate(&keep_memory, &sample).output;
    // nginx keeps all 10 series, java only its 2 memory series.
    assert_eq!(out.len(), 12);
    let drop_user_state = spec(vec![Stage::Filter(FilterStage {
        action: FilterAction::Drop,
        metrics: vec!["process.cpu.*".into()],
        labels: vec![LabelMatch {
            key: "state".to_owned(),
            value: "user".into(),
        }],
    })]);
    let out = evaluate(&drop_user_state, &sample).output;
    assert_eq!(out.len(), 16);
    let drop_by_resource_label = spec(vec![Stage::Filter(FilterStage {
        action: FilterAction::Drop,
        metrics: vec![],
        labels: vec![LabelMatch {
            key: names::EXECUTABLE_NAME.to_owned(),
            value: "ja*".into(),
        }],
    })]);
    let out = evaluate(&drop_by_resource_label, &sample).output;
    assert_eq!(executables(&out), ["nginx"]);
}

#[test]
fn topk_keeps_the_hottest_entities_with_stable_ties_and_critical_extra() {
    let sample = Sample::from_processes(
        0,
        &[
            process(1, "a", 0.1, 100),
            process(2, "b", 0.5, 10),
            process(3, "c", 0.3, 10),
            process(4, "d", 0.3, 10),
            process(5, "sshd", 0.0, 1),
        ],
    );
    let out = evaluate(&spec(vec![topk(2, RankBy::Cpu)]), &sample).output;
    assert_eq!(executables(&out), ["b", "c"]);
    let out = evaluate(&spec(vec![topk(1, RankBy::Memory)]), &sample).output;
    assert_eq!(executables(&out), ["a"]);
    let out = evaluate(
        &spec(vec![critical(&["ssh*"]), topk(2, RankBy::Cpu)]),
        &sample,
    )
    .output;
    assert_eq!(executables(&out), ["b", "c", "sshd"]);
    let out = evaluate(&spec(vec![topk(10, RankBy::Cpu)]), &sample).output;
    assert_eq!(out.len(), sample.len());
}

#[test]
fn aggregate_other_rolls_demoted_entities_up_and_preserves_sums() {
    let sample = Sample::from_processes(
        0,
        &[
            process(1, "a", 0.4, 100),
            process(2, "b", 0.1, 10),
            process(3, "c", 0.2, 30),
        ],
    );
    let eval = evaluate(
        &spec(vec![
            topk(1, RankBy::Cpu),
            Stage::AggregateOther(AggregateOtherStage::default()),
        ]),
        &sample,
    );
    assert_eq!(executables(&eval.output), ["a", "other"]);
    assert_eq!(eval.output.len(), 20);
    let before = sums(&sample);
    let after = sums(&eval.output);
    assert_eq!(before.len(), after.len());
    for (k, v) in &before {
        assert!((after[k] - v).abs() <= 1e-9 * v.abs().max(1.0), "{k:?}");
    }
    assert_eq!(eval.stats.fidelity.cpu_pct, Some(100.0));
    assert_eq!(eval.stats.fidelity.memory_pct, Some(100.0));
    let other = eval
        .output
        .series()
        .iter()
        .find(|s| {
            eval.output
                .resource_attr(s.resource, names::EXECUTABLE_NAME)
                == Some("other")
                && eval.output.resolve(s.metric) == names::PROCESS_MEMORY_USAGE
        })
        .unwrap();
    assert_eq!(other.value, f64::from(40u32 << 20));
    // The roll-up keeps only the executable name.
    assert_eq!(eval.output.resource(other.resource).len(), 1);
}

#[test]
fn threshold_demotes_cold_entities_with_hysteresis() {
    let stage = Stage::Threshold(ThresholdStage {
        min_cpu_utilization: 0.1,
        min_memory_bytes: 1 << 30,
        hysteresis_pct: 20.0,
        auto_tune: None,
    });
    let mut engine = Engine::new(spec(vec![stage]));
    let first = Sample::from_processes(
        0,
        &[process(1, "warm", 0.12, 10), process(2, "cold", 0.01, 10)],
    );
    assert_eq!(executables(&engine.evaluate(&first).output), ["warm"]);
    // `warm` dips below 0.1 but stays above 0.08 (20 % hysteresis): still kept.
    // `cold` rises to 0.09: not kept, it was not kept before and is under 0.1.
    let second = Sample::from_processes(
        1,
        &[process(1, "warm", 0.09, 10), process(2, "cold", 0.09, 10)],
    );
    assert_eq!(executables(&engine.evaluate(&second).output), ["warm"]);
    let third = Sample::from_processes(
        2,
        &[process(1, "warm", 0.05, 10), process(2, "cold", 0.2, 10)],
    );
    assert_eq!(executables(&engine.evaluate(&third).output), ["cold"]);
    // Memory alone keeps an entity.
    let fourth = Sample::from_processes(3, &[process(3, "fat", 0.0, 2048)]);
    assert_eq!(executables(&engine.evaluate(&fourth).output), ["fat"]);
}

#[test]
fn auto_tune_moves_thresholds_toward_the_budget_and_rests_inside_the_band() {
    // 100 processes with CPU 0.001 .. 0.1; 10 series each.
    let processes: Vec<ProcessRecord> = (1..=100)
        .map(|i| process(i, &format!("p{i}"), f64::from(i) / 1000.0, 1))
        .collect();
    let sample = Sample::from_processes(0, &processes);
    let stage = Stage::Threshold(ThresholdStage {
        min_cpu_utilization: 0.001,
        min_memory_bytes: 0,
        hysteresis_pct: 0.0,
        auto_tune: Some(AutoTune {
            target_series: 200,
            tolerance_pct: 25.0,
            step_pct: 25.0,
        }),
    });
    let mut engine = Engine::new(spec(vec![stage]));
    let mut series = Vec::new();
    for _ in 0..40 {
        series.push(engine.evaluate(&sample).output.len());
    }
    // Starts with everything, converges into the band [150, 250] and stays there.
    assert_eq!(series[0], 1000);
    let settled = &series[25..];
    assert!(
        settled.iter().all(|n| (150..=250).contains(n)),
        "{series:?}"
    );
    assert!(settled.windows(2).all(|w| w[0] == w[1]), "{series:?}");
    let (cpu, _) = engine.current_thresholds(0).unwrap();
    assert!(cpu > 0.001);
}

#[test]
fn drop_labels_and_aggregate_by_sum_what_coincides() {
    let sample = Sample::from_processes(
        0,
        &[
            process(1, "nginx", 0.1, 10),
            process(2, "nginx", 0.2, 20),
            process(3, "java", 0.3, 30),
        ],
    );
    let by_exe = spec(vec![Stage::AggregateBy(
        crate::pipeline::spec::AggregateByStage {
            resource_labels: vec![names::EXECUTABLE_NAME.to_owned()],
        },
    )]);
    let eval = evaluate(&by_exe, &sample);
    assert_eq!(eval.output.len(), 20);
    assert_eq!(eval.output.resources().len(), 2);
    assert_eq!(sums(&eval.output), sums(&sample));
    let drop_state = spec(vec![Stage::DropLabels(
        crate::pipeline::spec::DropLabelsStage {
            labels: vec![
                "state".to_owned(),
                names::PID.to_owned(),
                names::COMMAND_LINE.to_owned(),
            ],
        },
    )]);
    let eval = evaluate(&drop_state, &sample);
    // Per executable: cpu.time, cpu.utilization, memory x2, disk.io x2.
    assert_eq!(eval.output.len(), 12);
    let labels: HashSet<String> = eval
        .stats
        .top_labels
        .iter()
        .map(|l| l.key.clone())
        .collect();
    assert!(!labels.contains("state") && !labels.contains(names::PID));
}

#[test]
fn stats_measure_the_encoded_output_fidelity_and_coverage() {
    let sample = Sample::from_processes(
        0,
        &[
            process(1, "hot", 0.6, 10),
            process(2, "nginx", 0.1, 30),
            process(3, "cold", 0.3, 60),
        ],
    );
    let pipeline = spec(vec![critical(&["nginx", "absent"]), topk(1, RankBy::Cpu)]);
    let eval = evaluate(&pipeline, &sample);
    assert_eq!(eval.stats.series, 20);
    assert_eq!(eval.stats.points, 20);
    assert_eq!(eval.stats.bytes, eval.output.to_string().len() as u64);
    assert_eq!(eval.stats.series_by_metric[names::PROCESS_CPU_TIME], 6);
    assert!((eval.stats.fidelity.cpu_pct.unwrap() - 70.0).abs() < 1e-9);
    assert!((eval.stats.fidelity.memory_pct.unwrap() - 40.0).abs() < 1e-9);
    // `absent` matched nothing in the input, so it is not expected.
    assert_eq!(eval.stats.critical.expected, ["nginx"]);
    assert_eq!(eval.stats.critical.missing, Vec::<String>::new());
    assert_eq!(eval.stats.eval_nanos, 0);
    let top = &eval.stats.top_labels[0];
    assert_eq!(top.distinct_values, 3);
    assert_eq!(eval.input_process_series, 30);
    assert_eq!(eval.output_process_series, 20);
    // Measured against an experiment's list, a pipeline without keep_critical loses `cold`.
    let mut engine =
        Engine::with_critical(spec(vec![topk(1, RankBy::Cpu)]), &["cold".to_owned()], &[]);
    let eval = engine.evaluate(&sample);
    assert_eq!(eval.stats.critical.missing, ["cold"]);
    assert_eq!(eval.stats.critical.percent(), 0.0);
    let input = engine.input_stats(&sample);
    assert_eq!(input.series, 30);
    assert_eq!(input.critical.present, ["cold"]);
}

#[test]
fn critical_metric_patterns_survive_entity_demotion() {
    let sample = Sample::from_processes(0, &[process(1, "a", 0.5, 1), process(2, "b", 0.1, 1)]);
    let pipeline = spec(vec![
        Stage::KeepCritical(KeepCriticalStage {
            processes: vec![],
            metrics: vec!["process.memory.usage".into()],
        }),
        topk(1, RankBy::Cpu),
    ]);
    let eval = evaluate(&pipeline, &sample);
    // a: all 10; b: only its memory.usage.
    assert_eq!(eval.output.len(), 11);
    assert_eq!(eval.stats.critical.present, ["process.memory.usage"]);
}

#[test]
fn corpus_hosts_reduce_by_ninety_percent_with_full_coverage() {
    for (host, json, critical_list) in corpus::HOSTS {
        let sample = corpus::host_sample(json);
        let processes = corpus::parse_host(json).processes.len();
        assert!(processes >= 250, "{host} has {processes} processes");
        for with_other in [false, true] {
            let mut stages = vec![critical(critical_list), topk(10, RankBy::Cpu)];
            if with_other {
                stages.push(Stage::AggregateOther(AggregateOtherStage::default()));
            }
            let eval = evaluate(&spec(stages), &sample);
            assert!(
                eval.process_series_reduction_pct() >= 90.0,
                "{host}: {}",
                eval.process_series_reduction_pct()
            );
            assert_eq!(eval.stats.critical.percent(), 100.0, "{host}");
            if with_other {
                assert_eq!(eval.stats.fidelity.cpu_pct, Some(100.0));
            }
        }
    }
}

#[test]
fn node_exporter_corpus_parses_and_aggregates() {
    let sample = corpus::node_exporter_sample();
    assert!(sample.len() > 1000);
    assert!(!sample.is_process_resource(sample.series()[0].resource));
    let pipeline = spec(vec![
        Stage::Filter(FilterStage {
            action: FilterAction::Drop,
            metrics: vec!["node_systemd_unit_state".into(), "go_*".into()],
            labels: vec![],
        }),
        Stage::DropLabels(crate::pipeline::spec::DropLabelsStage {
            labels: vec!["cpu".to_owned()],
        }),
    ]);
    let eval = evaluate(&pipeline, &sample);
    assert!(eval.stats.series < sample.len() as u64 / 2);
    assert_eq!(eval.stats.series_by_metric["node_cpu_seconds_total"], 8);
    // Totals are kept by the re-aggregation.
    let total = |s: &Sample| -> f64 {
        s.series()
            .iter()
            .filter(|x| s.resolve(x.metric) == "node_cpu_seconds_total")
            .map(|x| x.value)
            .sum()
    };
    assert!((total(&sample) - total(&eval.output)).abs() < 1e-6 * total(&sample));
}

#[test]
fn churn_between_intervals_is_handled_by_threshold_state() {
    let first = corpus::host_sample(corpus::HOSTS[0].1);
    let second = corpus::host_sample(corpus::WEB_01_NEXT);
    let mut engine = Engine::new(spec(vec![Stage::Threshold(ThresholdStage {
        min_cpu_utilization: 0.002,
        min_memory_bytes: 512 << 20,
        hysteresis_pct: 30.0,
        auto_tune: None,
    })]));
    let a = engine.evaluate(&first);
    let b = engine.evaluate(&second);
    assert!(a.process_series_reduction_pct() > 50.0);
    assert!(b.process_series_reduction_pct() > 50.0);
}

// ---- properties ----

fn arb_processes() -> impl Strategy<Value = Vec<ProcessRecord>> {
    let exe = prop::sample::select(vec!["nginx", "java", "sshd", "postgres", "bash", "node"]);
    // Few distinct values so that ties are common.
    let cpu = prop::sample::select(vec![0.0, 0.01, 0.05, 0.05, 0.2, 0.7, 1.0]);
    prop::collection::vec((exe, cpu, 0u64..64), 0..40).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (e, c, m))| process(u32::try_from(i).unwrap() + 100, e, c, m))
            .collect()
    })
}

fn arb_stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        (1u32..20, prop::bool::ANY)
            .prop_map(|(k, cpu)| topk(k, if cpu { RankBy::Cpu } else { RankBy::Memory })),
        Just(Stage::AggregateOther(AggregateOtherStage::default())),
        (0.0f64..0.5, 0u64..(64 << 20)).prop_map(|(c, m)| Stage::Threshold(ThresholdStage {
            min_cpu_utilization: c,
            min_memory_bytes: m,
            hysteresis_pct: 10.0,
            auto_tune: None,
        })),
        Just(Stage::Filter(FilterStage {
            action: FilterAction::Drop,
            metrics: vec!["process.disk.*".into()],
            labels: vec![],
        })),
        Just(Stage::Batch(BatchStage {
            send_batch_size: 10,
            timeout_secs: 1
        })),
    ]
}

proptest! {
    #[test]
    fn output_never_exceeds_input_and_is_deterministic(
        processes in arb_processes(),
        stages in prop::collection::vec(arb_stage(), 0..5),
    ) {
        let sample = Sample::from_processes(0, &processes);
        let pipeline = spec(stages);
        let a = evaluate(&pipeline, &sample);
        let b = evaluate(&pipeline, &sample);
        prop_assert!(a.output.len() <= sample.len());
        prop_assert_eq!(a.output.to_string(), b.output.to_string());
        prop_assert_eq!(&a.stats, &b.stats);
        let cpu = a.stats.fidelity.cpu_pct;
        prop_assert!(cpu.is_none_or(|c| (0.0..=100.0).contains(&c)));
        // Some process in the input: CPU was measured.
        prop_assert_eq!(cpu.is_some(), !processes.is_empty());
    }

    #[test]
    fn critical_entities_always_survive(
        processes in arb_processes(),
        stages in prop::collection::vec(arb_stage(), 0..5),
    ) {
        let sample = Sample::from_processes(0, &processes);
        let mut all = vec![critical(&["nginx", "ssh?"])];
        all.extend(stages);
        let eval = evaluate(&spec(all), &sample);
        let render = |s: &Sample, i: usize| {
            let x = &s.series()[i];
            let mut labels: Vec<String> = s.resource(x.resource).pairs().iter()
                .chain(x.attributes.pairs())
                .map(|(k, v)| format!("{}={}", s.resolve(*k), s.resolve(*v)))
                .collect();
            labels.sort();
            format!("{} {:?} {}", s.resolve(x.metric), labels, x.value)
        };
        let out: HashSet<String> = (0..eval.output.len()).map(|i| render(&eval.output, i)).collect();
        for (i, s) in sample.series().iter().enumerate() {
            let exe = sample.resource_attr(s.resource, names::EXECUTABLE_NAME).unwrap();
            if exe == "nginx" || exe == "sshd" {
                prop_assert!(out.contains(&render(&sample, i)), "{} lost", render(&sample, i));
            }
        }
        prop_assert_eq!(eval.stats.critical.percent(), 100.0);
    }

    #[test]
    fn aggregate_other_preserves_sums(processes in arb_processes(), k in 1u32..10) {
        let sample = Sample::from_processes(0, &processes);
        let eval = evaluate(
            &spec(vec![topk(k, RankBy::Memory), Stage::AggregateOther(AggregateOtherStage::default())]),
            &sample,
        );
        let (before, after) = (sums(&sample), sums(&eval.output));
        prop_assert_eq!(before.len(), after.len());
        for (key, v) in before {
            prop_assert!((after[&key] - v).abs() <= 1e-9 * v.abs().max(1.0));
        }
    }

    #[test]
    fn topk_keeps_exactly_the_top_min_k_entities(processes in arb_processes(), k in 1u32..30) {
        let sample = Sample::from_processes(0, &processes);
        let eval = evaluate(&spec(vec![topk(k, RankBy::Cpu)]), &sample);
        let pid_of = |s: &Sample, r| s.resource_attr(r, names::PID).unwrap().to_owned();
        let kept: HashSet<String> = eval.output.series().iter().map(|s| pid_of(&eval.output, s.resource)).collect();
        prop_assert_eq!(kept.len(), (k as usize).min(processes.len()));
        let cpu: HashMap<String, f64> = processes.iter()
            .map(|p| (p.pid.to_string(), p.cpu_utilization.unwrap().total()))
            .collect();
        let min_kept = kept.iter().map(|p| cpu[p]).fold(f64::INFINITY, f64::min);
        let max_dropped = cpu.iter().filter(|(p, _)| !kept.contains(*p)).map(|(_, v)| *v).fold(f64::NEG_INFINITY, f64::max);
        prop_assert!(min_kept >= max_dropped);
        // Ties resolve to input order: among equal values, a kept entity never comes after a dropped one.
        for (i, p) in processes.iter().enumerate() {
            for q in &processes[i + 1..] {
                let (pv, qv) = (cpu[&p.pid.to_string()], cpu[&q.pid.to_string()]);
                if pv == qv && kept.contains(&q.pid.to_string()) {
                    prop_assert!(kept.contains(&p.pid.to_string()));
                }
            }
        }
        // Whole entities: a kept entity keeps all of its series.
        prop_assert_eq!(eval.output.len(), kept.len() * 10);
    }
}

#[test]
fn builder_reuses_identical_resources() {
    let mut b = SampleBuilder::new(0);
    let r1 = b.resource([("service.name", "x")]);
    let r2 = b.resource([("service.name", "x")]);
    assert_eq!(r1, r2);
}

#[test]
fn fidelity_is_not_measured_without_process_cpu_or_memory_series() {
    // An input with no process series at all: nothing to keep or lose, no figure.
    let mut b = SampleBuilder::new(0);
    let app = b.resource([("service.name", "web")]);
    b.push(
        app,
        "http_requests_total",
        MetricKind::Counter,
        [("route", "/")],
        5.0,
    );
    b.push(
        app,
        "http_requests_total",
        MetricKind::Counter,
        [("route", "/a")],
        7.0,
    );
    let sample = b.build();
    let eval = evaluate(&spec(vec![topk(1, RankBy::Cpu)]), &sample);
    assert_eq!(eval.stats.fidelity.cpu_pct, None);
    assert_eq!(eval.stats.fidelity.memory_pct, None);
    assert_eq!(eval.stats.fidelity.lower(), None);

    // Process memory but no process CPU: memory measured, CPU not.
    let mut b = SampleBuilder::new(0);
    for (pid, mib) in [("1", 30.0), ("2", 70.0)] {
        let r = b.resource([("process.pid", pid), ("process.executable.name", "x")]);
        b.push(
            r,
            names::PROCESS_MEMORY_USAGE,
            MetricKind::Gauge,
            std::iter::empty::<(&str, &str)>(),
            mib,
        );
    }
    let sample = b.build();
    let keep_all = evaluate(&spec(vec![]), &sample);
    assert_eq!(keep_all.stats.fidelity.cpu_pct, None);
    assert_eq!(keep_all.stats.fidelity.memory_pct, Some(100.0));
    assert_eq!(keep_all.stats.fidelity.lower(), Some(100.0));
    let dropped = evaluate(
        &spec(vec![Stage::Filter(FilterStage {
            action: FilterAction::Drop,
            metrics: vec![names::PROCESS_MEMORY_USAGE.into()],
            labels: vec![],
        })]),
        &sample,
    );
    assert_eq!(dropped.stats.fidelity.memory_pct, Some(0.0));
    assert_eq!(dropped.stats.fidelity.lower(), Some(0.0));
}
