use super::*;
use crate::ids::{AgentId, ExperimentId};
use crate::measure::SnapshotSeries;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn paths(errors: &ValidationErrors) -> Vec<&str> {
    errors.errors.iter().map(|e| e.path.as_str()).collect()
}

fn sample() -> MeasurementSample {
    MeasurementSample {
        experiment_id: ExperimentId::new(),
        agent_id: AgentId::new(),
        seq: 1,
        taken_at: now(),
        interval_secs: 10,
        baseline: VariantStats {
            series: 100,
            points: 100,
            bytes: 4000,
            ..VariantStats::default()
        },
        candidate: VariantStats::default(),
        host: HostStats::default(),
        queries: None,
    }
}

#[test]
fn names_refuse_blank_long_and_control_characters() {
    let mut e = ValidationErrors::new();
    name(&mut e, "a", "ok name", 10);
    name(&mut e, "b", "  ", 10);
    name(&mut e, "c", "nul\0", 10);
    name(&mut e, "d", "tab\there", 10);
    name(&mut e, "e", "ééééééééééé", 10);
    optional_name(&mut e, "f", "", 10);
    assert_eq!(paths(&e), ["b", "c", "d", "e"]);
}

#[test]
fn free_text_keeps_line_breaks_and_refuses_other_controls() {
    let mut e = ValidationErrors::new();
    free_text(&mut e, "a", "line one\r\n\tline two", 100);
    free_text(&mut e, "b", "nul\0", 100);
    free_text(&mut e, "c", "escape\u{1b}[31m", 100);
    free_text(&mut e, "d", &"x".repeat(101), 100);
    assert_eq!(paths(&e), ["b", "c", "d"]);
    let fitted = fit_free_text("a\0b\u{1b}c\nd", 4);
    assert_eq!(fitted, "abc\n");
    let mut e = ValidationErrors::new();
    free_text(&mut e, "x", &fitted, 4);
    assert!(e.is_empty());
}

#[test]
fn json_documents_refuse_nul_in_strings_and_keys() {
    let mut e = ValidationErrors::new();
    json(
        &mut e,
        "a",
        &serde_json::json!({"k": ["fine", 1, {"n": u64::MAX}]}),
    );
    json(&mut e, "b", &serde_json::json!({"k": ["no\u{0}"]}));
    json(&mut e, "c", &serde_json::json!({"k\u{0}": 1}));
    assert_eq!(paths(&e), ["b", "c"]);
}

#[test]
fn a_valid_sample_passes() {
    let mut e = ValidationErrors::new();
    sample_check(&mut e, &sample());
    assert!(e.is_empty(), "{e}");
}

fn sample_check(e: &mut ValidationErrors, s: &MeasurementSample) {
    super::sample(e, "s", s, now());
}

#[test]
fn absurd_sample_figures_are_refused_with_their_paths() {
    let mut s = sample();
    s.seq = u64::MAX;
    s.interval_secs = 0;
    s.baseline.series = u64::MAX;
    s.baseline.bytes = MAX_BYTES + 1;
    s.candidate.points = MAX_POINTS + 1;
    s.candidate.fidelity.cpu_pct = Some(100.5);
    s.candidate.eval_nanos = u64::MAX;
    s.host.cpu_pct = -1.0;
    s.host.memory_used_bytes = MAX_MEMORY_BYTES + 1;
    s.host.process_count = u64::MAX;
    let mut e = ValidationErrors::new();
    sample_check(&mut e, &s);
    assert_eq!(
        paths(&e),
        [
            "s.seq",
            "s.interval_secs",
            "s.baseline.series",
            "s.baseline.bytes",
            "s.candidate.points",
            "s.candidate.eval_nanos",
            "s.candidate.fidelity.cpu_pct",
            "s.host.cpu_pct",
            "s.host.memory_used_bytes",
            "s.host.process_count",
        ]
    );
    // The largest storable sequence number passes; one more does not.
    let mut s = sample();
    s.seq = MAX_STORABLE_INT;
    let mut e = ValidationErrors::new();
    sample_check(&mut e, &s);
    assert!(e.is_empty());
    s.seq = MAX_STORABLE_INT + 1;
    sample_check(&mut e, &s);
    assert_eq!(paths(&e), ["s.seq"]);
}

#[test]
fn reported_times_must_be_near_the_servers_clock() {
    let mut e = ValidationErrors::new();
    let at = |secs: i64| now() + Duration::seconds(secs);
    timestamp(&mut e, "ok_ahead", at(MAX_CLOCK_AHEAD_SECS), now(), 60);
    timestamp(&mut e, "ok_old", at(-60), now(), 60);
    timestamp(&mut e, "ahead", at(MAX_CLOCK_AHEAD_SECS + 1), now(), 60);
    timestamp(&mut e, "old", at(-61), now(), 60);
    assert_eq!(paths(&e), ["ahead", "old"]);
    let mut s = sample();
    s.taken_at = DateTime::<Utc>::MIN_UTC;
    let mut e = ValidationErrors::new();
    sample_check(&mut e, &s);
    assert_eq!(paths(&e), ["s.taken_at"]);
}

#[test]
fn a_real_hosts_command_lines_are_fitted_not_refused() {
    let mut snapshot = CardinalitySnapshot {
        agent_id: AgentId::new(),
        source: crate::measure::SnapshotSource::Input,
        host: "web-1".to_owned(),
        taken_at: now(),
        interval_secs: 10,
        series: vec![SnapshotSeries {
            metric: "process.cpu.time".to_owned(),
            labels: BTreeMap::from([(
                "process.command_line".to_owned(),
                format!("rustc \u{1b}[1m{}", "--extern x ".repeat(1000)),
            )]),
            points: 1,
            value: None,
        }],
    };
    let mut e = ValidationErrors::new();
    super::snapshot(&mut e, &snapshot, now());
    assert_eq!(paths(&e), ["series[0].labels.process.command_line"]);
    fit_snapshot(&mut snapshot);
    let mut e = ValidationErrors::new();
    super::snapshot(&mut e, &snapshot, now());
    assert!(e.is_empty(), "{e}");
    assert!(snapshot.series[0].labels["process.command_line"].starts_with("rustc [1m--extern"));
}

#[test]
fn snapshots_and_heartbeats_are_bounded() {
    let snapshot = CardinalitySnapshot {
        agent_id: AgentId::new(),
        source: crate::measure::SnapshotSource::Input,
        host: "web-1".to_owned(),
        taken_at: now(),
        interval_secs: 0,
        series: vec![SnapshotSeries {
            metric: "m\0".to_owned(),
            labels: BTreeMap::from([("k".to_owned(), "v\u{7}".to_owned())]),
            points: u64::MAX,
            value: Some(-2e18),
        }],
    };
    let mut e = ValidationErrors::new();
    super::snapshot(&mut e, &snapshot, now());
    assert_eq!(
        paths(&e),
        [
            "interval_secs",
            "series[0].metric",
            "series[0].labels.k",
            "series[0].points",
            "series[0].value"
        ]
    );
    // The agent leaves out what the bounds refuse.
    assert_eq!(SnapshotSeries::value_of(f64::NAN), None);
    assert_eq!(SnapshotSeries::value_of(2e18), None);
    assert_eq!(SnapshotSeries::value_of(-12.5), Some(-12.5));
    let heartbeat = Heartbeat {
        resources: HostStats {
            agent_cpu_pct: f64::INFINITY,
            ..HostStats::default()
        },
        pipelines: vec![ActivePipeline {
            name: "fleet".to_owned(),
            experiment_id: None,
            template: "baseline".to_owned(),
            config_hash: "h".to_owned(),
            health: crate::agent::PipelineHealth::Unhealthy,
            detail: Some("exit status 1\nstderr: \0".to_owned()),
        }],
        started_at: Some(now() + Duration::days(1)),
    };
    let mut e = ValidationErrors::new();
    super::heartbeat(&mut e, &heartbeat, now());
    assert_eq!(
        paths(&e),
        [
            "resources.agent_cpu_pct",
            "pipelines[0].detail",
            "started_at"
        ]
    );
}

#[test]
fn sample_queries_are_one_known_status_per_query_with_bounded_reasons() {
    use crate::queries::{QueryReasons, SampleQueries};
    let reasons = |query: u32, n: usize| QueryReasons {
        query,
        reasons: vec!["the candidate drops label `fstype`".to_owned(); n],
    };
    let ok = SampleQueries {
        statuses: "bacu".to_owned(),
        reasons: vec![reasons(0, 1), reasons(2, 4)],
    };
    let mut e = ValidationErrors::new();
    let mut s = sample();
    s.queries = Some(ok.clone());
    super::sample(&mut e, "s", &s, now());
    sample_queries(&mut e, "q", &ok, Some(4));
    assert!(e.errors.is_empty(), "{e:?}");

    let mut e = ValidationErrors::new();
    sample_queries(&mut e, "count", &ok, Some(3));
    let bad_letter = SampleQueries {
        statuses: "bxa".to_owned(),
        reasons: Vec::new(),
    };
    sample_queries(&mut e, "letter", &bad_letter, None);
    let bad_reasons = SampleQueries {
        statuses: "bac".to_owned(),
        reasons: vec![reasons(1, 1), reasons(0, 5), reasons(7, 1)],
    };
    sample_queries(&mut e, "why", &bad_reasons, Some(3));
    let twice = SampleQueries {
        statuses: "b".to_owned(),
        reasons: vec![reasons(0, 1), reasons(0, 1)],
    };
    sample_queries(&mut e, "twice", &twice, None);
    let control = SampleQueries {
        statuses: "b".to_owned(),
        reasons: vec![QueryReasons {
            query: 0,
            reasons: vec!["bell\u{7}".to_owned()],
        }],
    };
    sample_queries(&mut e, "ctl", &control, None);
    let long = SampleQueries {
        statuses: "a".repeat(crate::queries::MAX_EXPERIMENT_QUERIES + 1),
        reasons: Vec::new(),
    };
    sample_queries(&mut e, "long", &long, None);
    assert_eq!(
        paths(&e),
        [
            "count.statuses",
            "letter.statuses",
            "why.reasons[0].query",
            "why.reasons[1].reasons",
            "why.reasons[2].query",
            "twice.reasons[1].query",
            "ctl.reasons[0].reasons[0]",
            "long.statuses",
        ]
    );
}

#[test]
fn churn_figures_lie_between_the_sample_series_and_the_tracking_cap() {
    let cap = crate::cost::churn::MAX_TRACKED_SERIES as u64;
    let check = |active: Option<u64>, hour: Option<u64>| {
        let mut s = sample();
        s.baseline.active_series = active;
        s.baseline.hour_distinct_series = hour;
        let mut e = ValidationErrors::new();
        super::sample(&mut e, "s", &s, now());
        paths(&e).into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    // Absent (older agents), equal to the series, and at the bound: accepted.
    assert!(check(None, None).is_empty());
    assert!(check(Some(100), Some(100)).is_empty());
    assert!(check(Some(100 + cap), Some(450)).is_empty());
    // Below the interval's own series, or above series + cap: refused, each by its path.
    assert_eq!(
        check(Some(99), Some(101 + cap)),
        [
            "s.baseline.active_series",
            "s.baseline.hour_distinct_series"
        ]
    );
    assert_eq!(churn_figure_limit(MAX_SERIES), MAX_CHURN_SERIES);
}
