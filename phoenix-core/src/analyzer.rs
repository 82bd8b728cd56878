//! Turning an experiment's measurements into a verdict.

use std::sync::Arc;

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
/// experiment's pricing model from its catalogue), then the judge ([`judge`]).
#[derive(Debug, Clone)]
pub struct DefaultAnalyzer {
    catalogue: Arc<Catalogue>,
}

impl Default for DefaultAnalyzer {
    /// Prices with the built-in catalogue.
    fn default() -> Self {
        Self::new(Arc::new(Catalogue::builtin()))
    }
}

impl DefaultAnalyzer {
    /// An analyzer pricing with `catalogue`.
    #[must_use]
    pub fn new(catalogue: Arc<Catalogue>) -> Self {
        Self { catalogue }
    }
}

impl Analyzer for DefaultAnalyzer {
    fn analyze(
        &self,
        experiment: &Experiment,
        samples: &[MeasurementSample],
        now: DateTime<Utc>,
    ) -> Verdict {
        let kpis = kpi::compute(experiment, samples, &self.catalogue);
        judge(experiment, &kpis, now)
    }
}
