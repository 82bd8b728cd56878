//! Cardinality analysis over host snapshots: totals, breakdowns by any dimension with top
//! contributors, label cardinalities, the cost flow under a pricing model, and
//! label-dropping recommendations with their exact projected series and saving.
//!
//! Snapshots are first interned into a columnar [`SeriesTable`] (every distinct string once,
//! series as `u32` ids grouped by metric); every analysis then runs over integer columns
//! with no per-series allocation. Intern once, analyse many times.

mod analysis;
mod engine;
mod host_table;
mod interner;
mod queries;
mod recommend;
mod shipped;
mod table;

pub use analysis::{
    AnalysisOptions, Breakdown, CardinalityReport, CostDriver, CostFlow, Dimension,
    EXPOSITION_VALUE_BYTES, FlowBreakdown, FlowGroup, GroupStats, LabelKeyStats, MetricLabelStats,
    NAMESPACE_KEYS, NONE_GROUP, OTHER_GROUP, PricedBreakdowns, PricedGroup, SERVICE_KEYS,
};
pub use engine::{ProjectionError, RESOURCE_PREFIXES, check_projectable, is_resource_key};
pub use host_table::HostTable;
pub use queries::{KEPT_QUERIES_LISTED, QueryImpact};
pub use recommend::{Action, RecommendOptions, Recommendation, glob_match};
pub use shipped::{FlowTotals, RawVsShipped, raw_vs_shipped, raw_vs_shipped_tables};
pub use table::{CardinalityError, SeriesTable};

use crate::cost::{CostError, PricingModel};
use crate::measure::CardinalitySnapshot;

/// Why an analysis failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The snapshots could not be interned.
    #[error(transparent)]
    Snapshots(#[from] CardinalityError),
    /// The cost could not be computed.
    #[error(transparent)]
    Cost(#[from] CostError),
}

/// Interns `snapshots` and analyses them; with a pricing model, the cost flow too.
pub fn analyze(
    snapshots: &[CardinalitySnapshot],
    options: &AnalysisOptions,
    model: Option<&PricingModel>,
) -> Result<CardinalityReport, AnalysisError> {
    Ok(SeriesTable::from_snapshots(snapshots)?.analyze(options, model)?)
}

/// Interns `snapshots` and recommends label drops, best saving first.
pub fn recommend(
    snapshots: &[CardinalitySnapshot],
    model: &PricingModel,
    options: &RecommendOptions,
) -> Result<Vec<Recommendation>, AnalysisError> {
    Ok(SeriesTable::from_snapshots(snapshots)?.recommend(model, options)?)
}

/// Interns `snapshots` and recommends label drops that keep `inventory` answering
/// ([`SeriesTable::recommend_with_queries`]), best saving first.
pub fn recommend_with_queries(
    snapshots: &[CardinalitySnapshot],
    model: &PricingModel,
    options: &RecommendOptions,
    inventory: &[crate::queries::InventoryQuery],
) -> Result<Vec<Recommendation>, AnalysisError> {
    Ok(
        SeriesTable::from_snapshots(snapshots)?
            .recommend_with_queries(model, options, inventory)?,
    )
}

/// Each host's snapshot after `action` ([`SeriesTable::apply`]): what a recommendation
/// proposes, as series, to evaluate queries on.
pub fn apply(
    snapshots: &[CardinalitySnapshot],
    action: &Action,
) -> Result<Vec<CardinalitySnapshot>, AnalysisError> {
    Ok(SeriesTable::from_snapshots(snapshots)?.apply(action))
}

#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod tests;
