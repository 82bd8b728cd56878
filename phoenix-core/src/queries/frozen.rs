//! The queries an experiment is judged on, and what one sample says of them.
//!
//! When an experiment is created with an inventory, the inventory's queries are frozen into
//! it ([`freeze`]): the verdict is reproducible, and a later import changes no running
//! experiment. They reach the agent with the deploy task; the agent compiles them once
//! ([`QuerySet`]) and, for each sample, evaluates them on both variants' outputs with the
//! one rule ([`super::evaluate`]), reporting bounded [`SampleQueries`]: each query's status
//! (one letter per query, in the experiment's order) and the reasons for the first few
//! broken and changed ones.

use serde::{Deserialize, Serialize};

use super::eval::{QueryStatus, Series, SeriesIndex, status_of};
use super::needs::{Compiled, compile};
use super::{QueryRole, QuerySource};

/// Most queries an experiment freezes.
pub const MAX_EXPERIMENT_QUERIES: usize = 1_000;
/// Most bytes of names, locations and PromQL an experiment freezes.
pub const MAX_EXPERIMENT_QUERY_BYTES: usize = 256 * 1024;
/// Most queries one sample gives reasons for (broken first, then changed).
pub const MAX_SAMPLE_REASONED: usize = 16;
/// Most reasons one sample gives for one query.
pub const MAX_REASONS_PER_QUERY: usize = 4;
/// Longest reason a sample gives, characters.
pub const MAX_REASON_CHARS: usize = 1024;

/// One query frozen into an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentQuery {
    /// Its name (the alert, recorded series, panel or list line).
    pub name: String,
    /// What it is.
    pub role: QueryRole,
    /// Its source and where it is there.
    pub location: String,
    /// The PromQL evaluated (dashboard variables substituted).
    pub promql: String,
}

impl ExperimentQuery {
    fn bytes(&self) -> usize {
        self.name.len() + self.location.len() + self.promql.len()
    }
}

/// Why an inventory cannot be frozen into an experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// Queries in the inventory.
    pub queries: usize,
    /// Their bytes (names, locations, PromQL).
    pub bytes: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the query inventory holds {} queries ({} bytes of names, locations and PromQL); an experiment is judged on at most {MAX_EXPERIMENT_QUERIES} queries and {MAX_EXPERIMENT_QUERY_BYTES} bytes: delete sources the experiment need not keep (`phoenix queries delete`)",
            self.queries, self.bytes
        )
    }
}

/// Every query of `sources`, source by source, frozen for an experiment; refused when the
/// inventory exceeds [`MAX_EXPERIMENT_QUERIES`] or [`MAX_EXPERIMENT_QUERY_BYTES`].
pub fn freeze(sources: &[QuerySource]) -> Result<Vec<ExperimentQuery>, TooLarge> {
    let frozen: Vec<ExperimentQuery> = sources
        .iter()
        .flat_map(|s| {
            s.queries.iter().map(|q| ExperimentQuery {
                name: q.name.clone(),
                role: q.role,
                location: format!("{}: {}", s.name, q.location),
                promql: q.promql.clone(),
            })
        })
        .collect();
    let bytes = frozen.iter().map(ExperimentQuery::bytes).sum();
    if frozen.len() > MAX_EXPERIMENT_QUERIES || bytes > MAX_EXPERIMENT_QUERY_BYTES {
        return Err(TooLarge {
            queries: frozen.len(),
            bytes,
        });
    }
    Ok(frozen)
}

/// The reasons one sample gives for one broken or changed query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryReasons {
    /// The query, by index into the experiment's queries.
    pub query: u32,
    /// Why it broke or changed.
    pub reasons: Vec<String>,
}

/// What one sample says of the experiment's queries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SampleQueries {
    /// One letter per query of the experiment, in the experiment's order: `a` answered,
    /// `c` changed, `b` broken, `u` unobserved (see [`QueryStatus::letter`]).
    pub statuses: String,
    /// Reasons for the first [`MAX_SAMPLE_REASONED`] broken, then changed, queries.
    #[serde(default)]
    pub reasons: Vec<QueryReasons>,
}

impl SampleQueries {
    /// Each query's status, in order (`None` for a letter that names none).
    pub fn statuses(&self) -> impl Iterator<Item = Option<QueryStatus>> + '_ {
        self.statuses.chars().map(QueryStatus::from_letter)
    }

    /// How many queries have `status`.
    #[must_use]
    pub fn count(&self, status: QueryStatus) -> u32 {
        let n = self.statuses().filter(|s| *s == Some(status)).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The reasons given for query `index`.
    #[must_use]
    pub fn reasons_of(&self, index: u32) -> &[String] {
        self.reasons
            .iter()
            .find(|r| r.query == index)
            .map_or(&[], |r| r.reasons.as_slice())
    }
}

/// An experiment's queries, compiled once (what an agent holds per experiment).
#[derive(Debug, Clone)]
pub struct QuerySet {
    compiled: Vec<Result<Compiled, String>>,
}

impl QuerySet {
    /// Compiles `queries` (a query that no longer parses is reported broken, with the
    /// parser's message, at every evaluation).
    #[must_use]
    pub fn new(queries: &[ExperimentQuery]) -> Self {
        Self {
            compiled: queries.iter().map(|q| compile(&q.promql)).collect(),
        }
    }

    /// Number of queries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.compiled.len()
    }

    /// True without queries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Every query under `candidate`, compared with `baseline` (the rule of
    /// [`super::evaluate`]), as one sample reports it.
    #[must_use]
    pub fn evaluate(&self, baseline: &[Series], candidate: &[Series]) -> SampleQueries {
        let (b, c) = (SeriesIndex::new(baseline), SeriesIndex::new(candidate));
        let mut out = SampleQueries {
            statuses: String::with_capacity(self.compiled.len()),
            reasons: Vec::new(),
        };
        let mut broken_reasons = Vec::new();
        let mut changed_reasons = Vec::new();
        for (i, compiled) in self.compiled.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let (status, mut reasons) = status_of(compiled.as_ref(), &b, &c);
            out.statuses.push(status.letter());
            reasons.truncate(MAX_REASONS_PER_QUERY);
            for r in &mut reasons {
                *r = crate::inputs::fit_free_text(r, MAX_REASON_CHARS);
            }
            let reasons = QueryReasons {
                query: index,
                reasons,
            };
            match status {
                QueryStatus::Broken => broken_reasons.push(reasons),
                QueryStatus::Changed => changed_reasons.push(reasons),
                QueryStatus::Answered | QueryStatus::Unobserved => {}
            }
        }
        out.reasons = broken_reasons
            .into_iter()
            .chain(changed_reasons)
            .take(MAX_SAMPLE_REASONED)
            .collect();
        out
    }
}
