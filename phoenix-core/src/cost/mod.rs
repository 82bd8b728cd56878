//! The cost model: a pricing catalogue of dated, sourced, overridable vendor entries, and a
//! calculator that prices measured usage under any of them.
//!
//! Every amount is [`Money`] (integer micro-units), every cost line carries the
//! [`PriceSource`] it was priced with, and every step from measurement to bill is shown:
//! the quantity rule, the allotment subtracted, the tier bands. Formulas and worked
//! examples: `docs/cost-model.md`.

mod calculator;
mod catalogue;
pub mod churn;
mod money;

pub use calculator::{
    ChurnCoverage, CostBreakdown, CostError, FleetProjection, HOURS_PER_MONTH, MINUTES_PER_MONTH,
    MONTHS_PER_YEAR, Observation, SECONDS_PER_MONTH, Savings, TierCharge, Usage, allocate,
    allocate_units, group_digits, nearest_rank, price, project_fleet, reduction_pct, savings,
};
pub use catalogue::{
    Aggregation, BUILTIN_CATALOGUE_TOML, Catalogue, CatalogueError, MAX_MODELS, MAX_TIERS, Meter,
    PriceSource, PricingModel, Tier,
};
pub use money::{MICROS_PER_UNIT, Money, MoneyParseError};

#[cfg(test)]
mod tests;
