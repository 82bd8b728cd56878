use phoenix_core::pipeline::spec::{AggregateOtherStage, KeepCriticalStage, RankBy, TopKStage};
use phoenix_core::pipeline::{Engine, Pattern, PipelineSpec, Sample, Stage};

use super::*;
use crate::host::HostProbe;

fn kinds(text: &str) -> Vec<ProblemKind> {
    check(text)
        .unwrap_err()
        .into_iter()
        .map(|p| p.kind)
        .collect()
}

fn host_sample() -> Sample {
    let mut probe = HostProbe::new();
    probe.scan();
    let scan = probe.scan();
    Sample::from_processes(1_800_000_000_000, &scan.processes)
}

#[test]
fn real_host_exposition_passes_the_strict_check_for_both_variants() {
    let sample = host_sample();
    assert!(sample.len() > 10, "this host has processes");
    let baseline = render(&sample, "baseline");
    let summary = check(&baseline).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(summary.samples, sample.len());
    assert!(summary.families >= 4);
    assert!(baseline.contains("# HELP process_cpu_time_total Total CPU seconds"));

    let spec = PipelineSpec {
        stages: vec![
            Stage::KeepCritical(KeepCriticalStage {
                processes: vec![Pattern::new("init")],
                metrics: vec![],
            }),
            Stage::TopK(TopKStage {
                k: 3,
                rank_by: RankBy::Memory,
                collector_min_value: 0.0,
            }),
            Stage::AggregateOther(AggregateOtherStage::default()),
        ],
        ..PipelineSpec::default()
    };
    let out = Engine::new(spec).evaluate(&sample).output;
    let candidate = render(&out, "candidate");
    let summary = check(&candidate).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(summary.samples, out.len());
    assert!(out.len() < sample.len());
}

#[test]
fn empty_document_is_valid() {
    assert_eq!(check("").unwrap(), Summary::default());
}

#[test]
fn parser_rules() {
    let ok =
        "# HELP a_total x\n# TYPE a_total counter\na_total{b=\"q\\\"\\\\\\n\"} 1 1700000000000\n";
    assert_eq!(check(ok).unwrap().samples, 1);
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{a=\"1\"} abc\n"),
        [ProblemKind::InvalidValue]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{a=\"\\q\"} 1\n"),
        [ProblemKind::InvalidLabelValue]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{a=\"1\",a=\"2\"} 1\n"),
        [ProblemKind::DuplicateLabel]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{1a=\"1\"} 1\n"),
        [ProblemKind::InvalidName]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n"),
        [ProblemKind::DuplicateSeries]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx 1\n# TYPE x gauge\n"),
        [
            ProblemKind::MisplacedMetadata,
            ProblemKind::MisplacedMetadata
        ]
    );
    assert_eq!(
        kinds(
            "# HELP x y\n# TYPE x gauge\nx{a=\"1\"} 1\n# HELP z y\n# TYPE z gauge\nz 1\nx{a=\"2\"} 1\n"
        ),
        [ProblemKind::SplitFamily]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{a=\"1\" 1\n"),
        [ProblemKind::Syntax]
    );
}

#[test]
fn lint_rules() {
    assert_eq!(kinds("# TYPE x gauge\nx 1\n"), [ProblemKind::NoHelp]);
    assert_eq!(
        kinds("# HELP x y\n# TYPE x counter\nx 1\n"),
        [ProblemKind::CounterSuffix]
    );
    assert_eq!(
        kinds("# HELP x_total y\n# TYPE x_total gauge\nx_total 1\n"),
        [ProblemKind::CounterSuffix]
    );
    assert_eq!(
        kinds("# HELP x_count y\n# TYPE x_count gauge\nx_count 1\n"),
        [ProblemKind::ReservedSuffix]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{quantile=\"0.5\"} 1\n"),
        [ProblemKind::ReservedSuffix]
    );
    assert_eq!(
        kinds("# HELP x y\n# TYPE x gauge\nx{fooBar=\"1\"} 1\n"),
        [ProblemKind::CamelCase]
    );
    assert_eq!(
        kinds("# HELP x_ms y\n# TYPE x_ms gauge\nx_ms 1\n"),
        [ProblemKind::Naming]
    );
    assert_eq!(
        kinds("# HELP x_milliseconds y\n# TYPE x_milliseconds gauge\nx_milliseconds 1\n"),
        [ProblemKind::Naming]
    );
    assert_eq!(
        kinds("# HELP a:b y\n# TYPE a:b gauge\na:b 1\n"),
        [ProblemKind::Colon]
    );
    // Histograms own their suffixes.
    let h = "# HELP d_seconds y\n# TYPE d_seconds histogram\nd_seconds_bucket{le=\"1\"} 1\nd_seconds_bucket{le=\"+Inf\"} 1\nd_seconds_sum 0.5\nd_seconds_count 1\n";
    assert_eq!(check(h).unwrap().samples, 4);
}

#[test]
fn help_is_added_before_every_type_line() {
    let text = "# TYPE a gauge\na 1\n# TYPE process_memory_usage gauge\nprocess_memory_usage 2\n";
    let out = with_help(text, "candidate");
    assert_eq!(
        out,
        "# HELP a Series kept by the Phoenix candidate pipeline.\n# TYPE a gauge\na 1\n# HELP process_memory_usage The amount of physical memory in use, in bytes.\n# TYPE process_memory_usage gauge\nprocess_memory_usage 2\n"
    );
    assert!(check(&out).is_ok());
}
