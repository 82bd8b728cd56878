//! Turning an experiment's measurements into a verdict.

use chrono::{DateTime, Utc};

use crate::cost::Catalogue;
use crate::experiment::Experiment;
use crate::judge::{Verdict, judge};
use crate::kpi;
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

/// The built-in analyzer: KPIs from the samples ([`kpi::compute`], cost under the
/// experiment's pricing model from the built-in catalogue), then the judge ([`judge`]).
#[derive(Debug, Default, Clone)]
pub struct DefaultAnalyzer;

impl Analyzer for DefaultAnalyzer {
    fn analyze(
        &self,
        experiment: &Experiment,
        samples: &[MeasurementSample],
        now: DateTime<Utc>,
    ) -> Verdict {
        let kpis = kpi::compute(experiment, samples, Catalogue::shared_builtin());
        judge(experiment, &kpis, now)
    }
}
