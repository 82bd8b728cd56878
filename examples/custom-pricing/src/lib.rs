//! Pricing with your own catalogue: `pricing.toml` overrides the built-in `datadog-pro`
//! entry with a negotiated rate and adds an internal chargeback rate. The facade is built
//! with that catalogue, so the experiment's `pricing_model`, its KPIs, the judge and every
//! cost figure use it; an unknown `pricing_model` is refused with the available ids.
//!
//! Run: `cargo run -p example-custom-pricing` (about 20 s: a real experiment on this
//! machine's processes, then both variants priced under the list price, the negotiated
//! price and the chargeback rate, from the same measurements).

use std::error::Error;
use std::sync::Arc;

use phoenix_core::clock::SystemClock;
use phoenix_core::cost::{Catalogue, Savings};
use phoenix_core::experiment::Experiment;
use phoenix_core::{MemoryStore, Phoenix, kpi};

/// The example's catalogue file.
pub const PRICING_TOML: &str = include_str!("../pricing.toml");

/// One experiment's measurements priced under one catalogue entry.
#[derive(Debug, Clone)]
pub struct Priced {
    /// Which catalogue ("list" or "contract").
    pub catalogue: &'static str,
    /// The catalogue entry.
    pub model: String,
    /// Both variants priced.
    pub savings: Savings,
}

/// Runs an experiment priced under `internal-chargeback`, then prices the same
/// measurements under the list and the negotiated Datadog rates.
///
/// # Errors
/// When the catalogue file is invalid or as [`example_embed_core::run_on`].
pub async fn run(
    options: example_embed_core::Options,
) -> Result<(Experiment, Vec<Priced>), Box<dyn Error + Send + Sync>> {
    let contract = Arc::new(Catalogue::builtin_with_overrides(PRICING_TOML)?);
    let list = Arc::new(Catalogue::builtin());
    let store = MemoryStore::new();
    let phoenix = Phoenix::builder(store.stores(), Arc::new(SystemClock))
        .config(example_embed_core::config())
        .catalogue(contract.clone())
        .build();
    let options = example_embed_core::Options {
        pricing_model: Some("internal-chargeback".to_owned()),
        ..options
    };
    let finished = example_embed_core::run_on(phoenix.clone(), phoenix.clone(), options).await?;
    let samples = phoenix
        .stores()
        .metrics
        .samples(finished.id, phoenix_core::store::MAX_SAMPLES_PER_EXPERIMENT)
        .await?;

    let mut priced = Vec::new();
    for (name, catalogue, model) in [
        ("contract", &contract, "internal-chargeback"),
        ("list", &list, "datadog-pro"),
        ("contract", &contract, "datadog-pro"),
    ] {
        let mut experiment = finished.clone();
        experiment.spec.pricing_model = model.to_owned();
        let kpis = kpi::compute(&experiment, &samples, catalogue);
        if let Some(cost) = kpis.cost {
            priced.push(Priced {
                catalogue: name,
                model: model.to_owned(),
                savings: cost.measured,
            });
        }
    }
    for p in &priced {
        let s = &p.savings;
        println!(
            "{:<8} {:<20} {} baseline {:>12}/month  candidate {:>12}/month  saving {:>12}/year  ({})",
            p.catalogue,
            p.model,
            s.baseline.price_source.currency,
            s.baseline.per_month.to_string(),
            s.candidate.per_month.to_string(),
            s.saving_per_year.to_string(),
            s.baseline.price_source.product,
        );
    }
    Ok((finished, priced))
}
