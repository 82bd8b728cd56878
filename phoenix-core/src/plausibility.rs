//! Whether what an agent reports is plausible, beyond the bounds of [`crate::inputs`]: a
//! figure can be in bounds and still impossible for the host that sent it. The facade runs
//! these checks before storing a report; an implausible sample refuses the whole report
//! with a field error (422, nothing stored) and counts on the agent
//! ([`crate::agent::RefusedReports`]), exactly like a figure out of bounds.
//!
//! Two checks, both on the series count of each variant (what the cardinality KPI is made
//! of):
//!
//! - **Against the host's own snapshot.** A pipeline only drops, demotes and aggregates
//!   series: neither variant can produce more series than its input, and the agent's
//!   cardinality snapshot is that input. A variant reporting more than
//!   [`SNAPSHOT_FACTOR`] times the snapshot's series plus [`SNAPSHOT_SLACK_SERIES`] (room
//!   for processes starting between the two) is refused. Only a snapshot taken within
//!   [`SNAPSHOT_MAX_AGE_SECS`] of the sample counts; without one the check is skipped.
//! - **Against the agent's own recent samples.** A variant's series or data points more
//!   than [`HISTORY_FACTOR`] times the median of the agent's last [`HISTORY_SAMPLES`]
//!   accepted samples of the same experiment are refused, once at least
//!   [`HISTORY_MIN_SAMPLES`] of them exist and the median is above zero.
//!
//! Not checked: candidate series above baseline series. It holds when the baseline keeps
//! everything, but an experiment's baseline is whatever pipeline runs today (a filtering
//! template included), so a candidate may legitimately keep more than it.
//!
//! These checks stop a figure that cannot be true; a host lying plausibly is the judge's
//! concern, which decides on the median of hosts ([`crate::judge::fleet_median`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::ids::ExperimentId;
use crate::measure::{MeasurementSample, PackedSnapshot, VariantStats};
use crate::validation::ValidationErrors;

/// A variant may report at most this many times its snapshot's series (plus the slack).
pub const SNAPSHOT_FACTOR: u64 = 10;
/// Series a variant may report beyond `SNAPSHOT_FACTOR` times the snapshot's.
pub const SNAPSHOT_SLACK_SERIES: u64 = 1_000;
/// A snapshot further than this from a sample's time does not bound it, seconds.
pub const SNAPSHOT_MAX_AGE_SECS: i64 = 3_600;
/// A figure may be at most this many times the median of the agent's recent samples.
pub const HISTORY_FACTOR: u64 = 100;
/// Recent accepted samples of the agent the median is taken over.
pub const HISTORY_SAMPLES: usize = 20;
/// Fewer recent samples than this, and the history check is skipped.
pub const HISTORY_MIN_SAMPLES: usize = 5;

/// Most series a variant of a sample taken with `snapshot` in hand may report.
#[must_use]
pub fn snapshot_series_limit(snapshot: &PackedSnapshot) -> u64 {
    (snapshot.len() as u64)
        .saturating_mul(SNAPSHOT_FACTOR)
        .saturating_add(SNAPSHOT_SLACK_SERIES)
}

fn variants(s: &MeasurementSample) -> [(&'static str, &VariantStats); 2] {
    [("baseline", &s.baseline), ("candidate", &s.candidate)]
}

/// Records a field error (`{path}[i].{variant}.series`) for every variant of `samples`
/// reporting more series than `snapshot`, the same agent's, allows. Samples taken further
/// than [`SNAPSHOT_MAX_AGE_SECS`] from the snapshot are not checked, nor samples of an
/// experiment whose pipelines were deployed on the host after the snapshot was taken
/// (`deployed_at`: when the host's target of each experiment last changed): the snapshot
/// could not see the inputs those pipelines added (Prometheus targets the host view does
/// not scrape), and the next snapshot will.
pub fn against_snapshot(
    errors: &mut ValidationErrors,
    path: &str,
    samples: &[MeasurementSample],
    snapshot: &PackedSnapshot,
    deployed_at: &BTreeMap<ExperimentId, DateTime<Utc>>,
) {
    let limit = snapshot_series_limit(snapshot);
    for (i, s) in samples.iter().enumerate() {
        if s.agent_id != snapshot.agent_id
            || (s.taken_at - snapshot.taken_at).num_seconds().abs() > SNAPSHOT_MAX_AGE_SECS
            || deployed_at
                .get(&s.experiment_id)
                .is_some_and(|at| *at > snapshot.taken_at)
        {
            continue;
        }
        for (variant, v) in variants(s) {
            if v.series > limit {
                errors.push(
                    format!("{path}[{i}].{variant}.series"),
                    format!(
                        "implausible: {} series, but this host's snapshot of {} holds {} series, and a pipeline cannot output more series than its input (at most {limit} accepted)",
                        v.series,
                        snapshot.taken_at.to_rfc3339(),
                        snapshot.len()
                    ),
                );
            }
        }
    }
}

fn median(mut values: Vec<u64>) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    Some(values[values.len() / 2])
}

/// Records a field error (`{path}[i].{variant}.series` or `.points`) for every figure of
/// `samples` above [`HISTORY_FACTOR`] times its median over `recent`: the same agent's
/// latest accepted samples of each sample's experiment (the caller passes at most
/// [`HISTORY_SAMPLES`]; fewer than [`HISTORY_MIN_SAMPLES`] and nothing is checked).
pub fn against_history(
    errors: &mut ValidationErrors,
    path: &str,
    samples: &[MeasurementSample],
    recent: &[MeasurementSample],
) {
    type Pick = fn(&VariantStats) -> u64;
    let figures: [(&str, Pick); 2] = [("series", |v| v.series), ("points", |v| v.points)];
    for (i, s) in samples.iter().enumerate() {
        let history: Vec<&MeasurementSample> = recent
            .iter()
            .filter(|r| r.agent_id == s.agent_id && r.experiment_id == s.experiment_id)
            .collect();
        if history.len() < HISTORY_MIN_SAMPLES {
            continue;
        }
        for (variant, v) in variants(s) {
            for (figure, pick) in figures {
                let values = history
                    .iter()
                    .map(|r| {
                        pick(if variant == "baseline" {
                            &r.baseline
                        } else {
                            &r.candidate
                        })
                    })
                    .collect();
                let Some(m) = median(values).filter(|m| *m > 0) else {
                    continue;
                };
                let value = pick(v);
                if value > m.saturating_mul(HISTORY_FACTOR) {
                    errors.push(
                        format!("{path}[{i}].{variant}.{figure}"),
                        format!(
                            "implausible: {value} {figure}, more than {HISTORY_FACTOR} times the median ({m}) of this agent's last {} accepted samples of the experiment",
                            history.len()
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::ids::{AgentId, ExperimentId};
    use crate::measure::SnapshotSeries;

    fn sample(agent: AgentId, experiment: ExperimentId, base: u64, cand: u64) -> MeasurementSample {
        MeasurementSample {
            experiment_id: experiment,
            agent_id: agent,
            seq: 1,
            taken_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            interval_secs: 10,
            baseline: VariantStats {
                series: base,
                points: base,
                ..VariantStats::default()
            },
            candidate: VariantStats {
                series: cand,
                points: cand,
                ..VariantStats::default()
            },
            host: crate::measure::HostStats::default(),
            queries: None,
        }
    }

    fn snapshot(agent: AgentId, series: usize) -> PackedSnapshot {
        PackedSnapshot::pack(&crate::measure::CardinalitySnapshot {
            agent_id: agent,
            source: crate::measure::SnapshotSource::Input,
            host: "web-1".to_owned(),
            taken_at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            interval_secs: 10,
            series: (0..series)
                .map(|i| SnapshotSeries {
                    metric: format!("m{i}"),
                    labels: std::collections::BTreeMap::new(),
                    points: 1,
                    value: None,
                })
                .collect(),
        })
    }

    fn paths(errors: &ValidationErrors) -> Vec<&str> {
        errors.errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_variant_cannot_output_more_series_than_the_host_snapshot_allows() {
        let (agent, e) = (AgentId::new(), ExperimentId::new());
        let snap = snapshot(agent, 100);
        assert_eq!(snapshot_series_limit(&snap), 2_000);
        let mut errors = ValidationErrors::new();
        let samples = [
            sample(agent, e, 2_000, 300),
            sample(agent, e, 1_000_000, 1),
            sample(agent, e, 500, 2_001),
        ];
        let none = BTreeMap::new();
        against_snapshot(&mut errors, "samples", &samples, &snap, &none);
        assert_eq!(
            paths(&errors),
            ["samples[1].baseline.series", "samples[2].candidate.series"]
        );
        assert!(errors.errors[0].message.contains("holds 100 series"));
        // Deployed on the host after the snapshot: its pipelines' inputs are not in it.
        let mut errors = ValidationErrors::new();
        let later = BTreeMap::from([(e, snap.taken_at + Duration::seconds(1))]);
        against_snapshot(&mut errors, "samples", &samples, &snap, &later);
        assert!(errors.is_empty());
        // Deployed before it: the snapshot bounds the samples.
        let earlier = BTreeMap::from([(e, snap.taken_at - Duration::seconds(1))]);
        against_snapshot(&mut errors, "samples", &samples, &snap, &earlier);
        assert_eq!(errors.errors.len(), 2);
        // A snapshot of another agent, or more than an hour away, bounds nothing.
        let mut errors = ValidationErrors::new();
        against_snapshot(
            &mut errors,
            "samples",
            &samples,
            &snapshot(AgentId::new(), 100),
            &none,
        );
        let mut old = snap.clone();
        old.taken_at -= Duration::seconds(SNAPSHOT_MAX_AGE_SECS + 1);
        against_snapshot(&mut errors, "samples", &samples, &old, &none);
        assert!(errors.is_empty());
    }

    #[test]
    fn a_figure_far_above_the_agent_own_recent_median_is_implausible() {
        let (agent, e) = (AgentId::new(), ExperimentId::new());
        let recent: Vec<_> = (0..HISTORY_MIN_SAMPLES as u64)
            .map(|i| sample(agent, e, 1_000 + i, 300))
            .collect();
        let mut errors = ValidationErrors::new();
        let samples = [
            sample(agent, e, 100_000, 300), // 100 x the median 1,002: still accepted
            sample(agent, e, 100_201, 300), // above 100 x 1,002
            sample(agent, e, 1_000, 30_001),
        ];
        against_history(&mut errors, "samples", &samples, &recent);
        assert_eq!(
            paths(&errors),
            [
                "samples[1].baseline.series",
                "samples[1].baseline.points",
                "samples[2].candidate.series",
                "samples[2].candidate.points"
            ]
        );
        // Too little history, another experiment's history, or a zero median: no check.
        let mut errors = ValidationErrors::new();
        against_history(&mut errors, "samples", &samples, &recent[1..]);
        let others: Vec<_> = recent
            .iter()
            .cloned()
            .map(|mut r| {
                r.experiment_id = ExperimentId::new();
                r
            })
            .collect();
        against_history(&mut errors, "samples", &samples, &others);
        let zeros: Vec<_> = (0..10).map(|_| sample(agent, e, 0, 0)).collect();
        against_history(&mut errors, "samples", &samples, &zeros);
        assert!(errors.is_empty());
    }
}
