//! Turning an experiment's measurements into a verdict.

use chrono::{DateTime, Utc};

use crate::experiment::Experiment;
use crate::judge::{Verdict, VerdictOutcome};
use crate::measure::MeasurementSample;

/// Judges an experiment from its samples. Pure; the controller calls it in `Analyzing`.
pub trait Analyzer: Send + Sync + std::fmt::Debug + 'static {
    /// The verdict for `experiment` given every stored sample.
    fn analyze(
        &self,
        experiment: &Experiment,
        samples: &[MeasurementSample],
        now: DateTime<Utc>,
    ) -> Verdict;
}

/// The built-in analyzer.
#[derive(Debug, Default, Clone)]
pub struct DefaultAnalyzer;

impl Analyzer for DefaultAnalyzer {
    fn analyze(
        &self,
        _experiment: &Experiment,
        samples: &[MeasurementSample],
        now: DateTime<Utc>,
    ) -> Verdict {
        Verdict {
            outcome: VerdictOutcome::Inconclusive,
            reasons: vec!["the judge is not part of this build yet".to_owned()],
            criteria: Vec::new(),
            samples: samples.len() as u64,
            decided_at: now,
        }
    }
}
