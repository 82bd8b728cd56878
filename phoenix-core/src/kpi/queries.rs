//! The "queries kept" KPI: how the experiment's frozen queries fared over the judged
//! samples. A query's status over the samples is the most severe it had in any
//! ([`QueryStatus::severity`]): broken on any host's sample (which means the baseline had
//! its series there and the candidate had none) is broken.

use std::collections::{BTreeMap, BTreeSet};

use crate::cost::group_digits;
use crate::ids::AgentId;
use crate::measure::MeasurementSample;
use crate::queries::{ExperimentQuery, QueriesKept, QueryStatus, QueryVerdict};

/// Most distinct reasons listed for one query.
const MAX_REASONS: usize = 4;
/// Most broken queries a KPI's basis (and so a verdict's reason) names.
const MAX_NAMED: usize = 10;

/// `; broken: `A` (source: where), ...` for the KPI's basis, empty when none broke.
pub(super) fn broken_names(kept: &QueriesKept) -> String {
    let broken: Vec<&QueryVerdict> = kept
        .affected
        .iter()
        .filter(|v| v.status == QueryStatus::Broken)
        .collect();
    if broken.is_empty() {
        return String::new();
    }
    let mut names: Vec<String> = broken
        .iter()
        .take(MAX_NAMED)
        .map(|v| format!("`{}` ({})", v.name, v.location))
        .collect();
    if broken.len() > MAX_NAMED {
        names.push(format!("and {} more", broken.len() - MAX_NAMED));
    }
    format!("; broken: {}", names.join(", "))
}

/// What the samples say of the queries, and how many samples said it.
pub(super) struct Kept {
    pub(super) kept: QueriesKept,
    /// Judged samples that evaluated the queries.
    pub(super) samples: u64,
}

#[derive(Default)]
struct Seen<'a> {
    worst: Option<QueryStatus>,
    /// Samples in which it had its worst status, by host.
    hosts: BTreeMap<AgentId, u64>,
    reasons: BTreeSet<&'a str>,
}

/// The queries of `queries` over `samples` (judged samples; those that did not evaluate
/// these queries, or evaluated a list of another length, are skipped). `None` without
/// queries; `host_name` names hosts in the reasons.
pub(super) fn kept(
    queries: &[ExperimentQuery],
    samples: &[&MeasurementSample],
    host_name: &dyn Fn(AgentId) -> String,
) -> Option<Kept> {
    if queries.is_empty() {
        return None;
    }
    let mut seen: Vec<Seen<'_>> = queries.iter().map(|_| Seen::default()).collect();
    let mut evaluated = 0u64;
    for s in samples {
        let Some(q) = &s.queries else { continue };
        if q.statuses.chars().count() != queries.len() {
            continue;
        }
        evaluated += 1;
        for (i, status) in q.statuses().enumerate() {
            let Some(status) = status else { continue };
            let entry = &mut seen[i];
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let worse = entry.worst.is_none_or(|w| status.severity() > w.severity());
            if worse {
                entry.worst = Some(status);
                entry.hosts.clear();
                entry.reasons.clear();
            }
            if entry.worst == Some(status) {
                *entry.hosts.entry(s.agent_id).or_default() += 1;
                for r in q.reasons_of(index) {
                    if entry.reasons.len() < MAX_REASONS {
                        entry.reasons.insert(r);
                    }
                }
            }
        }
    }
    if evaluated == 0 {
        return Some(Kept {
            kept: QueriesKept::default(),
            samples: 0,
        });
    }
    let mut kept = QueriesKept::default();
    for (query, entry) in queries.iter().zip(&seen) {
        let status = entry.worst.unwrap_or(QueryStatus::Unobserved);
        match status {
            QueryStatus::Answered => kept.answered += 1,
            QueryStatus::Changed => kept.changed += 1,
            QueryStatus::Broken => kept.broken += 1,
            QueryStatus::Unobserved => kept.unobserved += 1,
        }
        if matches!(status, QueryStatus::Broken | QueryStatus::Changed) {
            let mut reasons: Vec<String> = entry.reasons.iter().map(|r| (*r).to_owned()).collect();
            let hosts: Vec<String> = entry
                .hosts
                .iter()
                .map(|(agent, n)| format!("{} ({} samples)", host_name(*agent), group_digits(*n)))
                .collect();
            reasons.push(format!(
                "{} in {} of {} samples, on {}",
                status.as_str(),
                group_digits(entry.hosts.values().sum()),
                group_digits(evaluated),
                hosts.join(", ")
            ));
            kept.affected.push(QueryVerdict {
                name: query.name.clone(),
                location: query.location.clone(),
                status,
                reasons,
            });
        }
    }
    kept.affected
        .sort_by_key(|v| std::cmp::Reverse(v.status.severity()));
    Some(Kept {
        kept,
        samples: evaluated,
    })
}
