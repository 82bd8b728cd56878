//! The pricing catalogue: dated, sourced vendor price entries with their billing semantics.
//!
//! The built-ins live in `phoenix-core/data/pricing.toml` (compiled in); users pass the
//! contents of their own file of the same format to override entries by id or add new ones.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::money::Money;
use crate::validation::ValidationErrors;

/// The built-in catalogue file, compiled in.
pub const BUILTIN_CATALOGUE_TOML: &str = include_str!("../../data/pricing.toml");

/// Most entries a catalogue may hold.
pub const MAX_MODELS: usize = 256;
/// Most tiers one entry may have.
pub const MAX_TIERS: usize = 32;

/// What a vendor bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    /// Active series (Grafana Cloud, generic rates): one unit per distinct series.
    ActiveSeries,
    /// Custom metrics (Datadog): one unit per metric name + tag combination.
    CustomMetrics,
    /// Bytes ingested per month (New Relic): one unit per byte.
    IngestedBytes,
    /// Metric-months (CloudWatch): one unit per metric name + dimension combination.
    MetricMonths,
}

impl Meter {
    /// The unit, in words, plural.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Self::ActiveSeries => "active series",
            Self::CustomMetrics => "custom metrics",
            Self::IngestedBytes => "bytes",
            Self::MetricMonths => "metric-months",
        }
    }

    /// True for the meters that count series (everything but bytes).
    #[must_use]
    pub fn counts_series(self) -> bool {
        !matches!(self, Self::IngestedBytes)
    }
}

/// How per-sample series counts over a window become one billed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// 95th percentile (nearest rank) of the series count.
    P95,
    /// Mean series count, rounded up to a whole series.
    Mean,
    /// Mean over the clock hours of each hour's series count, rounded up: Datadog's
    /// "monthly average of the distinct custom metrics of each hour", and an hourly
    /// proration (a metric billed for the hours it exists).
    HourlyMean,
}

impl Aggregation {
    /// The statistic, in words.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::P95 => "95th percentile over the window",
            Self::Mean => "mean over the window",
            Self::HourlyMean => "mean over the clock hours of each hour's count",
        }
    }
}

/// One price band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Cumulative upper bound of the band in meter units (inclusive); `None` on the last band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<u64>,
    /// Price of `per` meter units for one month.
    pub price: Money,
    /// How many meter units `price` buys (1 metric, 1,000 series, 10^9 bytes, ...).
    pub per: u64,
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingModel {
    /// Stable identifier referenced by experiments.
    pub id: String,
    /// Vendor name.
    pub vendor: String,
    /// Product name.
    pub product: String,
    /// The vendor's SKU or line item.
    pub sku: String,
    /// What is billed.
    pub meter: Meter,
    /// How series counts over a window are aggregated into one quantity.
    pub aggregation: Aggregation,
    /// ISO 4217 currency code of every price.
    pub currency: String,
    /// Allotment per account, in meter units per month.
    #[serde(default)]
    pub included_per_account: u64,
    /// Allotment per host, pooled across hosts, in meter units per month.
    #[serde(default)]
    pub included_per_host: u64,
    /// Data points per minute included per series; more are billed as extra series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_dpm_per_series: Option<u32>,
    /// The monthly quantity is rounded down to a whole multiple of this many meter units
    /// before the allotment is subtracted (New Relic bills whole GB: 10^9 bytes, rounded
    /// down). Omitted: no rounding of the quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_down_to: Option<u64>,
    /// Price bands over the billable quantity, in order.
    pub tiers: Vec<Tier>,
    /// When the price was read (its "as of" date).
    pub effective_date: NaiveDate,
    /// Where the price was read.
    pub source: String,
    /// True only when the price (and allotment) was read on the vendor's own page; false
    /// when it comes from elsewhere (a price sheet, third-party pages, a quote) and could
    /// not be confirmed from the vendor itself. User files default to false.
    #[serde(default)]
    pub price_confirmed: bool,
    /// The vendor's own page documenting the billing rule (quantity statistic, window,
    /// rounding) the entry follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_source: Option<String>,
    /// When `rule_source` was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_read_on: Option<NaiveDate>,
    /// The vendor's billing semantics, in words.
    pub billing: String,
    /// Caveats.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Where a figure's price came from: carried by every cost line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceSource {
    /// Catalogue entry id.
    pub model_id: String,
    /// Vendor.
    pub vendor: String,
    /// Product.
    pub product: String,
    /// SKU.
    pub sku: String,
    /// Currency of every amount priced with it.
    pub currency: String,
    /// As-of date of the price.
    pub effective_date: NaiveDate,
    /// Where the price was read.
    pub source: String,
    /// Whether the price was confirmed on the vendor's own page.
    #[serde(default)]
    pub price_confirmed: bool,
    /// The vendor's page documenting the billing rule applied.
    #[serde(default)]
    pub rule_source: Option<String>,
    /// When `rule_source` was read.
    #[serde(default)]
    pub rule_read_on: Option<NaiveDate>,
}

impl PricingModel {
    /// The provenance of figures priced with this entry.
    #[must_use]
    pub fn price_source(&self) -> PriceSource {
        PriceSource {
            model_id: self.id.clone(),
            vendor: self.vendor.clone(),
            product: self.product.clone(),
            sku: self.sku.clone(),
            currency: self.currency.clone(),
            effective_date: self.effective_date,
            source: self.source.clone(),
            price_confirmed: self.price_confirmed,
            rule_source: self.rule_source.clone(),
            rule_read_on: self.rule_read_on,
        }
    }

    fn validate_into(&self, path: &str, errors: &mut ValidationErrors) {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            errors.push(
                format!("{path}.id"),
                "must be 1 to 64 characters of a-z, 0-9, '-' and '_'",
            );
        }
        for (field, value) in [
            ("vendor", &self.vendor),
            ("product", &self.product),
            ("sku", &self.sku),
            ("source", &self.source),
        ] {
            if value.trim().is_empty() {
                errors.push(format!("{path}.{field}"), "must not be empty");
            }
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            errors.push(
                format!("{path}.currency"),
                "must be an ISO 4217 code such as USD",
            );
        }
        if self.included_dpm_per_series == Some(0) {
            errors.push(
                format!("{path}.included_dpm_per_series"),
                "must be at least 1 (omit it when the vendor does not bill by DPM)",
            );
        }
        if self.included_dpm_per_series.is_some() && !self.meter.counts_series() {
            errors.push(
                format!("{path}.included_dpm_per_series"),
                "only applies to meters that count series",
            );
        }
        if self.round_down_to == Some(0) {
            errors.push(
                format!("{path}.round_down_to"),
                "must be at least 1 (omit it when the vendor does not round the quantity)",
            );
        }
        if self
            .rule_source
            .as_ref()
            .is_some_and(|s| s.trim().is_empty())
        {
            errors.push(
                format!("{path}.rule_source"),
                "must not be empty (omit it when there is none)",
            );
        }
        if self.tiers.is_empty() || self.tiers.len() > MAX_TIERS {
            errors.push(
                format!("{path}.tiers"),
                format!("must have 1 to {MAX_TIERS} tiers"),
            );
        }
        let mut previous_bound = 0_u64;
        for (i, tier) in self.tiers.iter().enumerate() {
            let tier_path = format!("{path}.tiers[{i}]");
            if tier.price.is_negative() {
                errors.push(format!("{tier_path}.price"), "must not be negative");
            }
            if tier.per == 0 {
                errors.push(format!("{tier_path}.per"), "must be at least 1");
            }
            let last = i + 1 == self.tiers.len();
            match (tier.up_to, last) {
                (None, true) => {}
                (None, false) => errors.push(
                    format!("{tier_path}.up_to"),
                    "only the last tier may be unbounded",
                ),
                (Some(_), true) => errors.push(
                    format!("{tier_path}.up_to"),
                    "the last tier must be unbounded (omit up_to)",
                ),
                (Some(bound), false) => {
                    if bound <= previous_bound {
                        errors.push(
                            format!("{tier_path}.up_to"),
                            "tier bounds must increase strictly",
                        );
                    }
                    previous_bound = bound;
                }
            }
        }
    }
}

/// Why a catalogue could not be loaded or an entry used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogueError {
    /// The file is not valid TOML of the catalogue's shape.
    #[error("pricing catalogue is not valid: {message}")]
    Parse {
        /// What the parser said (line and column included).
        message: String,
    },
    /// The file parsed but some entries are invalid.
    #[error("pricing catalogue has invalid entries")]
    Invalid(ValidationErrors),
    /// No entry with this id.
    #[error("no pricing model `{id}` in the catalogue")]
    UnknownModel {
        /// The id asked for.
        id: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    model: Vec<PricingModel>,
}

/// A set of pricing models, looked up by id.
#[derive(Clone, PartialEq)]
pub struct Catalogue {
    models: Vec<PricingModel>,
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.models.iter().map(|m| &m.id))
            .finish()
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Catalogue {
    /// The built-in catalogue.
    ///
    /// # Panics
    /// Never at run time: the compiled-in file is checked by a unit test.
    #[must_use]
    pub fn builtin() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "the compiled-in catalogue is validated by a unit test"
        )]
        Self::from_toml(BUILTIN_CATALOGUE_TOML).expect("built-in pricing catalogue is valid")
    }

    /// The built-in catalogue, parsed once per process.
    #[must_use]
    pub fn shared_builtin() -> &'static Catalogue {
        static BUILTIN: std::sync::LazyLock<Catalogue> =
            std::sync::LazyLock::new(Catalogue::builtin);
        &BUILTIN
    }

    /// A catalogue from the contents of a catalogue file (nothing built in).
    pub fn from_toml(text: &str) -> Result<Self, CatalogueError> {
        let mut catalogue = Self { models: Vec::new() };
        catalogue.extend_from_toml(text)?;
        Ok(catalogue)
    }

    /// The built-in catalogue overridden and extended by a user file: entries whose id
    /// exists replace the built-in one, others are added.
    pub fn builtin_with_overrides(text: &str) -> Result<Self, CatalogueError> {
        let mut catalogue = Self::builtin();
        catalogue.extend_from_toml(text)?;
        Ok(catalogue)
    }

    /// Overrides and extends this catalogue with the entries of a file. All or nothing:
    /// on error, `self` is unchanged.
    pub fn extend_from_toml(&mut self, text: &str) -> Result<(), CatalogueError> {
        let file: CatalogueFile = toml::from_str(text).map_err(|e| CatalogueError::Parse {
            message: e.to_string(),
        })?;
        let mut errors = ValidationErrors::new();
        for (i, model) in file.model.iter().enumerate() {
            model.validate_into(&format!("model[{i}]"), &mut errors);
            if file.model[..i].iter().any(|m| m.id == model.id) {
                errors.push(format!("model[{i}].id"), "duplicate id in this file");
            }
        }
        let mut merged = self.models.clone();
        for model in file.model {
            match merged.iter_mut().find(|m| m.id == model.id) {
                Some(existing) => *existing = model,
                None => merged.push(model),
            }
        }
        if merged.len() > MAX_MODELS {
            errors.push(
                "model",
                format!("at most {MAX_MODELS} entries in a catalogue"),
            );
        }
        if !errors.is_empty() {
            return Err(CatalogueError::Invalid(errors));
        }
        self.models = merged;
        Ok(())
    }

    /// Every entry, in file order (built-ins first).
    #[must_use]
    pub fn models(&self) -> &[PricingModel] {
        &self.models
    }

    /// The entry `id`.
    pub fn get(&self, id: &str) -> Result<&PricingModel, CatalogueError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| CatalogueError::UnknownModel { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads_with_every_vendor() {
        let c = Catalogue::from_toml(BUILTIN_CATALOGUE_TOML).unwrap();
        for id in [
            "grafana-cloud-pro",
            "datadog-pro",
            "datadog-enterprise",
            "datadog-mwl-ingested",
            "newrelic-original",
            "newrelic-data-plus",
            "aws-cloudwatch-us-east-1",
            "generic-per-million",
        ] {
            let m = c.get(id).unwrap();
            assert_eq!(m.currency, "USD");
            assert!(!m.source.is_empty());
        }
        // Every built-in entry says whether its price was confirmed on the vendor's own
        // page; those following a vendor rule name the page and the date it was read.
        for m in c.models() {
            if m.vendor != "Generic" && m.id != "aws-cloudwatch-us-east-1" {
                assert!(
                    m.rule_source
                        .as_deref()
                        .is_some_and(|s| s.starts_with("https://")),
                    "{}",
                    m.id
                );
                assert!(m.rule_read_on.is_some(), "{}", m.id);
            }
            if !m.price_confirmed {
                assert!(
                    m.notes
                        .iter()
                        .any(|n| n.contains("not confirmed") || n.contains("could be confirmed"))
                        || m.vendor == "Generic",
                    "{}: an unconfirmed price says so in its notes",
                    m.id
                );
            }
        }
        assert_eq!(
            c.get("newrelic-original").unwrap().round_down_to,
            Some(1_000_000_000)
        );
        assert_eq!(
            c.get("datadog-pro").unwrap().aggregation,
            Aggregation::HourlyMean
        );
        let cw = c.get("aws-cloudwatch-us-east-1").unwrap();
        assert_eq!(cw.tiers.len(), 4);
        assert_eq!(cw.tiers[1].price, "0.10".parse().unwrap());
        assert_eq!(
            c.get("nope"),
            Err(CatalogueError::UnknownModel {
                id: "nope".to_owned()
            })
        );
    }

    #[test]
    fn user_file_overrides_and_extends() {
        let user = r#"
[[model]]
id = "grafana-cloud-pro"
vendor = "Grafana Labs"
product = "Grafana Cloud Metrics (our contract)"
sku = "metrics-active-series"
meter = "active_series"
aggregation = "p95"
currency = "USD"
included_per_account = 0
tiers = [{ price = "4.00", per = 1000 }]
effective_date = "2026-06-01"
source = "contract 2026-06"
billing = "negotiated"

[[model]]
id = "acme-internal"
vendor = "ACME"
product = "Internal chargeback"
sku = "series"
meter = "active_series"
aggregation = "mean"
currency = "EUR"
tiers = [{ price = "0.01", per = 1 }]
effective_date = "2026-01-01"
source = "finance"
billing = "per series"
"#;
        let c = Catalogue::builtin_with_overrides(user).unwrap();
        let g = c.get("grafana-cloud-pro").unwrap();
        assert_eq!(g.tiers[0].price, "4.00".parse().unwrap());
        assert_eq!(g.included_per_account, 0);
        assert_eq!(c.get("acme-internal").unwrap().currency, "EUR");
        assert_eq!(c.models().len(), Catalogue::builtin().models().len() + 1);
    }

    #[test]
    fn invalid_files_are_rejected_whole_with_paths() {
        let mut c = Catalogue::builtin();
        let before = c.clone();
        let bad = r#"
[[model]]
id = "Bad Id"
vendor = ""
product = "p"
sku = "s"
meter = "ingested_bytes"
aggregation = "mean"
currency = "usd"
included_dpm_per_series = 0
round_down_to = 0
tiers = [{ price = "-1", per = 0 }, { up_to = 5, price = "1", per = 1 }]
effective_date = "2026-01-01"
source = "s"
billing = "b"
"#;
        let Err(CatalogueError::Invalid(errors)) = c.extend_from_toml(bad) else {
            panic!("expected validation errors");
        };
        let paths: Vec<_> = errors.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "model[0].id",
                "model[0].vendor",
                "model[0].currency",
                "model[0].included_dpm_per_series",
                "model[0].included_dpm_per_series",
                "model[0].round_down_to",
                "model[0].tiers[0].price",
                "model[0].tiers[0].per",
                "model[0].tiers[0].up_to",
                "model[0].tiers[1].up_to",
            ]
        );
        assert_eq!(c, before);
        assert!(matches!(
            c.extend_from_toml("[[model]]\nid = 3"),
            Err(CatalogueError::Parse { .. })
        ));
        assert!(matches!(
            c.extend_from_toml("[[model]]\nunknown_field = 1"),
            Err(CatalogueError::Parse { .. })
        ));
    }
}
