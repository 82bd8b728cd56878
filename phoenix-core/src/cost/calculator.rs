//! The cost calculator: measured usage in, priced cost lines out, with every step shown
//! (quantity rule, allotment subtraction, tier bands) and the price's provenance attached.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::catalogue::{Aggregation, Catalogue, CatalogueError, PriceSource, PricingModel};
use super::money::{Money, div_ceil};

/// Hours in a billing month (730, the vendors' convention).
pub const HOURS_PER_MONTH: u64 = 730;
/// Minutes in a billing month (730 h x 60).
pub const MINUTES_PER_MONTH: u64 = HOURS_PER_MONTH * 60;
/// Seconds in a billing month (730 h x 3600).
pub const SECONDS_PER_MONTH: u64 = HOURS_PER_MONTH * 3600;
/// Months in a year.
pub const MONTHS_PER_YEAR: i64 = 12;

/// Why a cost could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// The pricing model is not in the catalogue.
    #[error(transparent)]
    Catalogue(#[from] CatalogueError),
    /// The amount does not fit in the money type (about 9.2 trillion).
    #[error("cost under `{model_id}` is too large to represent")]
    Overflow {
        /// The model used.
        model_id: String,
    },
    /// A projection was asked from usage measured on no host.
    #[error("cannot project usage measured on no host")]
    NoHosts,
}

/// One interval's output of one variant on one host, as the calculator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observation {
    /// When the interval ended; it places the observation in its clock hour for the
    /// hourly rules. Without it, observations are taken as consecutive intervals and
    /// placed by their cumulative length.
    #[serde(default)]
    pub taken_at: Option<DateTime<Utc>>,
    /// Distinct series in the output.
    pub series: u64,
    /// Data points in the output during the interval.
    pub points: u64,
    /// Encoded bytes of the output during the interval.
    pub bytes: u64,
    /// Length of the interval, seconds.
    pub interval_secs: u32,
    /// Series active at the interval's end under Grafana's 20-minute window, when measured
    /// (`VariantStats::active_series`); at least `series`.
    #[serde(default)]
    pub active_series: Option<u64>,
    /// Distinct series so far in the interval's clock hour, when measured
    /// (`VariantStats::hour_distinct_series`); at least `series`.
    #[serde(default)]
    pub hour_distinct_series: Option<u64>,
}

impl Observation {
    /// The active series the Grafana rule bills: measured, or else the interval's own
    /// series count (a lower bound when series churn).
    #[must_use]
    pub fn billed_active(&self) -> u64 {
        self.active_series.unwrap_or(self.series).max(self.series)
    }

    /// The hourly distinct series the Datadog and CloudWatch rules bill: measured, or else
    /// the interval's own series count (a lower bound when series churn).
    #[must_use]
    pub fn billed_hour_distinct(&self) -> u64 {
        self.hour_distinct_series
            .unwrap_or(self.series)
            .max(self.series)
    }
}

/// What a set of hosts produces per month, the input of every price. Quantities are summed
/// over hosts, each host's figure computed from its own observations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Hosts the usage covers (per-host allotments are multiplied by it).
    pub hosts: u64,
    /// Sum over hosts of each host's 95th percentile (nearest rank) series count.
    pub series_p95: u64,
    /// Sum over hosts of each host's 95th percentile (nearest rank) of active series: the
    /// measured `active_series` of each observation (Grafana's 20-minute window), its
    /// `series` where not measured. Equal to `series_p95` without churn.
    #[serde(default)]
    pub active_series_p95: u64,
    /// Sum over hosts of each host's mean series count, rounded up.
    pub series_mean: u64,
    /// Sum over hosts of the mean, over the clock hours the host was measured in, of the
    /// hour's distinct series, rounded up: the hour's highest measured
    /// `hour_distinct_series` (exact: it only grows within the hour), or, for observations
    /// without it, the hour's highest series count (the smallest the distinct count can
    /// be; exact when no series starts or stops within the hour).
    #[serde(default)]
    pub series_hourly_mean: u64,
    /// Data points per minute (sum over hosts of each host's rate, rounded up).
    pub points_per_minute: u64,
    /// Sum over hosts of each host's 95th percentile (nearest rank) of its per-interval
    /// data points per minute (each rounded up).
    #[serde(default)]
    pub points_per_minute_p95: u64,
    /// Encoded bytes per month of 730 h (sum over hosts of each host's rate, rounded up).
    pub bytes_per_month: u64,
    /// The fewest observations any host's figures come from. 1 means a single
    /// measurement (a snapshot): every statistic is that one figure, not a distribution
    /// over the billing window, and a price says so.
    #[serde(default)]
    pub samples_per_host: u64,
    /// Observations in all, and those that carried a measured `active_series` and
    /// `hour_distinct_series`: says which rule the series quantities follow.
    #[serde(default)]
    pub churn: ChurnCoverage,
    /// Where these figures came from, in words.
    pub basis: String,
}

/// How many observations behind a [`Usage`] carried the agents' churn figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChurnCoverage {
    /// Observations in all.
    pub observations: u64,
    /// Those with a measured `active_series`.
    pub active: u64,
    /// Those with a measured `hour_distinct_series`.
    pub hour_distinct: u64,
}

impl ChurnCoverage {
    /// How the figure measured on `measured` of the observations entered the quantity.
    fn describe(self, measured: u64, figure: &str, fallback: &str) -> String {
        if self.observations == 0 {
            String::new()
        } else if measured == self.observations {
            format!(
                "; {figure} measured by the agents on every sample ({})",
                group_digits(measured)
            )
        } else if measured == 0 {
            format!("; {fallback} (no sample carried {figure}: a lower bound when series churn)")
        } else {
            format!(
                "; {figure} measured by the agents on {} of {} samples, {fallback} on the others (a lower bound when series churn)",
                group_digits(measured),
                group_digits(self.observations)
            )
        }
    }
}

impl Usage {
    /// Usage of a steady state: `series` on `hosts` hosts, no variation over time.
    #[must_use]
    pub fn steady(
        hosts: u64,
        series: u64,
        points_per_minute: u64,
        bytes_per_month: u64,
        basis: impl Into<String>,
    ) -> Self {
        Self {
            hosts,
            series_p95: series,
            active_series_p95: series,
            series_mean: series,
            series_hourly_mean: series,
            points_per_minute,
            points_per_minute_p95: points_per_minute,
            bytes_per_month,
            samples_per_host: 1,
            churn: ChurnCoverage::default(),
            basis: basis.into(),
        }
    }

    /// Usage measured from per-host observations (one slice per host). Hosts with no
    /// observation are not counted.
    #[must_use]
    pub fn from_hosts<'a>(
        hosts: impl IntoIterator<Item = &'a [Observation]>,
        basis: impl Into<String>,
    ) -> Self {
        let mut usage = Self {
            basis: basis.into(),
            ..Self::default()
        };
        let mut counts = Vec::new();
        let mut active = Vec::new();
        let mut dpm = Vec::new();
        for observations in hosts {
            if observations.is_empty() {
                continue;
            }
            let n_obs = observations.len() as u64;
            usage.samples_per_host = if usage.hosts == 0 {
                n_obs
            } else {
                usage.samples_per_host.min(n_obs)
            };
            usage.hosts += 1;
            counts.clear();
            counts.extend(observations.iter().map(|o| o.series));
            counts.sort_unstable();
            usage.series_p95 = usage.series_p95.saturating_add(nearest_rank(&counts, 95));
            active.clear();
            active.extend(observations.iter().map(Observation::billed_active));
            active.sort_unstable();
            usage.active_series_p95 = usage
                .active_series_p95
                .saturating_add(nearest_rank(&active, 95));
            usage.churn.observations += n_obs;
            usage.churn.active += observations
                .iter()
                .filter(|o| o.active_series.is_some())
                .count() as u64;
            usage.churn.hour_distinct += observations
                .iter()
                .filter(|o| o.hour_distinct_series.is_some())
                .count() as u64;
            let n = counts.len() as u128;
            let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
            usage.series_mean = usage.series_mean.saturating_add(to_u64(div_ceil(total, n)));
            usage.series_hourly_mean = usage
                .series_hourly_mean
                .saturating_add(hourly_mean_of_max(observations));
            dpm.clear();
            dpm.extend(
                observations
                    .iter()
                    .filter(|o| o.interval_secs > 0)
                    .map(|o| {
                        to_u64(div_ceil(
                            u128::from(o.points) * 60,
                            u128::from(o.interval_secs),
                        ))
                    }),
            );
            dpm.sort_unstable();
            usage.points_per_minute_p95 = usage
                .points_per_minute_p95
                .saturating_add(nearest_rank(&dpm, 95));
            let seconds: u128 = observations
                .iter()
                .map(|o| u128::from(o.interval_secs))
                .sum();
            let points: u128 = observations.iter().map(|o| u128::from(o.points)).sum();
            let bytes: u128 = observations.iter().map(|o| u128::from(o.bytes)).sum();
            usage.points_per_minute = usage
                .points_per_minute
                .saturating_add(to_u64(div_ceil(points * 60, seconds)));
            usage.bytes_per_month = usage.bytes_per_month.saturating_add(to_u64(div_ceil(
                bytes.saturating_mul(u128::from(SECONDS_PER_MONTH)),
                seconds,
            )));
        }
        usage
    }

    /// The same usage per host, on `hosts` hosts: every quantity scaled by
    /// `hosts / self.hosts` and rounded up. Allotments and tiers then apply to the fleet
    /// total, which is why a projection scales usage, never cost.
    pub fn scaled_to_hosts(&self, hosts: u64) -> Result<Usage, CostError> {
        if self.hosts == 0 {
            return Err(CostError::NoHosts);
        }
        let scale = |q: u64| {
            to_u64(div_ceil(
                u128::from(q) * u128::from(hosts),
                u128::from(self.hosts),
            ))
        };
        Ok(Usage {
            hosts,
            series_p95: scale(self.series_p95),
            active_series_p95: scale(self.active_series_p95),
            series_mean: scale(self.series_mean),
            series_hourly_mean: scale(self.series_hourly_mean),
            points_per_minute: scale(self.points_per_minute),
            points_per_minute_p95: scale(self.points_per_minute_p95),
            bytes_per_month: scale(self.bytes_per_month),
            samples_per_host: self.samples_per_host,
            churn: self.churn,
            basis: format!(
                "{}, scaled from {} to {} hosts",
                self.basis,
                group_digits(self.hosts),
                group_digits(hosts)
            ),
        })
    }
}

/// The mean over clock hours of each hour's distinct series (its highest
/// [`Observation::billed_hour_distinct`]), rounded up. An observation belongs to the hour
/// its interval ended in (`taken_at`); observations without a time are taken as
/// consecutive and placed by their cumulative length.
fn hourly_mean_of_max(observations: &[Observation]) -> u64 {
    let mut hours: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    let mut elapsed: i64 = 0;
    for o in observations {
        let hour = match o.taken_at {
            Some(at) => at.timestamp().div_euclid(3600),
            None => {
                let h = elapsed.div_euclid(3600);
                elapsed = elapsed.saturating_add(i64::from(o.interval_secs));
                h
            }
        };
        let max = hours.entry(hour).or_default();
        *max = (*max).max(o.billed_hour_distinct());
    }
    if hours.is_empty() {
        return 0;
    }
    let total: u128 = hours.values().map(|&c| u128::from(c)).sum();
    to_u64(div_ceil(total, hours.len() as u128))
}

/// The 95th percentile and friends by the nearest-rank method over sorted values: the
/// smallest value with at least `pct`% of values at or below it. Zero when empty.
#[must_use]
pub fn nearest_rank(sorted: &[u64], pct: u32) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = div_ceil(sorted.len() as u128 * u128::from(pct.min(100)), 100).max(1);
    sorted[usize::try_from(rank).unwrap_or(sorted.len()) - 1]
}

fn to_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The charge of one price band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierCharge {
    /// First unit of the band (exclusive lower bound: units above `from` fall in it).
    pub from: u64,
    /// Upper bound of the band (inclusive); `None` for the open last band.
    pub to: Option<u64>,
    /// Units billed in this band.
    pub quantity: u64,
    /// Price of `per` units.
    pub price: Money,
    /// Units `price` buys.
    pub per: u64,
    /// `quantity x price / per`, per month, rounded to a micro-unit.
    pub monthly: Money,
}

/// The priced cost of one usage under one model, with every step shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// The catalogue entry, its source and as-of date.
    pub price_source: PriceSource,
    /// Unit of every quantity below (`active series`, `bytes`, ...).
    pub unit: String,
    /// Where the usage came from.
    pub usage_basis: String,
    /// Hosts covered.
    pub hosts: u64,
    /// The fewest measurements any host's usage came from; 1: a single measurement, so
    /// the vendor's statistic over its billing window is that one figure.
    #[serde(default)]
    pub samples_per_host: u64,
    /// The billed quantity per month before the allotment.
    pub quantity: u64,
    /// How `quantity` was derived from the usage, in words.
    pub quantity_rule: String,
    /// The allotment subtracted.
    pub included: u64,
    /// How `included` was derived, in words.
    pub included_rule: String,
    /// `max(quantity - included, 0)`.
    pub billable: u64,
    /// Charges per band over `billable`.
    pub tiers: Vec<TierCharge>,
    /// List price of `quantity` with no allotment, per month: the marginal cost used for
    /// reductions (an allotment is the same for both variants).
    pub gross_monthly: Money,
    /// Cost per minute: monthly / 43,800.
    pub per_minute: Money,
    /// Cost per month of 730 h: the sum of the tier charges.
    pub per_month: Money,
    /// Cost per year: monthly x 12.
    pub per_year: Money,
}

/// Prices `usage` under `model`.
pub fn price(model: &PricingModel, usage: &Usage) -> Result<CostBreakdown, CostError> {
    let overflow = || CostError::Overflow {
        model_id: model.id.clone(),
    };
    let unit = model.meter.unit();
    let (measured, measured_rule) = if model.meter.counts_series() {
        match model.aggregation {
            Aggregation::P95 => (
                usage.active_series_p95,
                format!(
                    "95th percentile of {unit} per host, summed{}",
                    usage.churn.describe(
                        usage.churn.active,
                        "series active within the last 20 minutes",
                        "each sample's own series count"
                    )
                ),
            ),
            Aggregation::Mean => (
                usage.series_mean,
                format!("mean {unit} per host (rounded up), summed"),
            ),
            Aggregation::HourlyMean => (
                usage.series_hourly_mean,
                format!(
                    "mean over the clock hours of each hour's {unit} per host (rounded up), summed{}",
                    usage.churn.describe(
                        usage.churn.hour_distinct,
                        "each hour's distinct series",
                        "each hour's highest series count"
                    )
                ),
            ),
        }
    } else {
        (
            usage.bytes_per_month,
            "encoded bytes per month of 730 h, from the measured byte rate".to_owned(),
        )
    };
    let (quantity, mut quantity_rule) = match model.included_dpm_per_series {
        Some(dpm) if model.meter.counts_series() => {
            // The DPM term takes the same statistic as the series term: Grafana bills
            // max(P95 of active series, P95 of total DPM / included DPM).
            let (points, points_rule) = match model.aggregation {
                Aggregation::P95 => (
                    usage.points_per_minute_p95,
                    "95th percentile of data points per minute per host, summed",
                ),
                Aggregation::Mean | Aggregation::HourlyMean => {
                    (usage.points_per_minute, "data points per minute")
                }
            };
            let dpm_series = to_u64(div_ceil(u128::from(points), u128::from(dpm)));
            if dpm_series > measured {
                (
                    dpm_series,
                    format!(
                        "{} {points_rule} / {dpm} included per series = {} billed series (more than the {} {measured_rule})",
                        group_digits(points),
                        group_digits(dpm_series),
                        group_digits(measured),
                    ),
                )
            } else {
                (
                    measured,
                    format!(
                        "{measured_rule}; {} {points_rule} stay within {dpm} per series",
                        group_digits(points)
                    ),
                )
            }
        }
        _ => (measured, measured_rule),
    };
    let quantity = match model.round_down_to {
        Some(step) if step > 1 => {
            let rounded = quantity - quantity % step;
            quantity_rule = format!(
                "{quantity_rule}; {} rounded down to a whole multiple of {} {unit} as the vendor bills: {}",
                group_digits(quantity),
                group_digits(step),
                group_digits(rounded)
            );
            rounded
        }
        _ => quantity,
    };
    if usage.samples_per_host <= 1 && usage.hosts > 0 {
        let what = if model.meter.counts_series() {
            format!("the {} is that measurement", model.aggregation.describe())
        } else {
            "the month's bytes are extrapolated from it".to_owned()
        };
        quantity_rule = format!(
            "{quantity_rule}; from a single measurement per host, not a distribution over the billing window: {what}"
        );
    }
    let per_host = model.included_per_host.saturating_mul(usage.hosts);
    let included = model.included_per_account.saturating_add(per_host);
    let included_rule = match (model.included_per_account, model.included_per_host) {
        (0, 0) => "no allotment".to_owned(),
        (account, 0) => format!("{} {unit} per account", group_digits(account)),
        (0, host) => format!(
            "{} {unit} per host x {} hosts",
            group_digits(host),
            group_digits(usage.hosts)
        ),
        (account, host) => format!(
            "{} {unit} per account + {} per host x {} hosts",
            group_digits(account),
            group_digits(host),
            group_digits(usage.hosts)
        ),
    };
    let billable = quantity.saturating_sub(included);
    let tiers = apply_tiers(model, billable).ok_or_else(overflow)?;
    let per_month = tiers
        .iter()
        .try_fold(0_i64, |acc, t| acc.checked_add(t.monthly.micros()))
        .map(Money::from_micros)
        .ok_or_else(overflow)?;
    let gross_monthly = apply_tiers(model, quantity)
        .and_then(|t| {
            t.iter()
                .try_fold(0_i64, |acc, t| acc.checked_add(t.monthly.micros()))
        })
        .map(Money::from_micros)
        .ok_or_else(overflow)?;
    let per_minute = per_month
        .mul_div(1, u128::from(MINUTES_PER_MONTH))
        .ok_or_else(overflow)?;
    let per_year = Money::from_micros(
        per_month
            .micros()
            .checked_mul(MONTHS_PER_YEAR)
            .ok_or_else(overflow)?,
    );
    Ok(CostBreakdown {
        price_source: model.price_source(),
        unit: unit.to_owned(),
        usage_basis: usage.basis.clone(),
        hosts: usage.hosts,
        samples_per_host: usage.samples_per_host,
        quantity,
        quantity_rule,
        included,
        included_rule,
        billable,
        tiers,
        gross_monthly,
        per_minute,
        per_month,
        per_year,
    })
}

fn apply_tiers(model: &PricingModel, quantity: u64) -> Option<Vec<TierCharge>> {
    let mut charges = Vec::with_capacity(model.tiers.len());
    let mut lower = 0_u64;
    for tier in &model.tiers {
        let upper = tier.up_to.unwrap_or(u64::MAX);
        let in_band = quantity.min(upper).saturating_sub(lower);
        let monthly = tier
            .price
            .mul_div(u128::from(in_band), u128::from(tier.per))?;
        charges.push(TierCharge {
            from: lower,
            to: tier.up_to,
            quantity: in_band,
            price: tier.price,
            per: tier.per,
            monthly,
        });
        lower = upper;
        if quantity <= upper {
            break;
        }
    }
    Some(charges)
}

/// Baseline against candidate under one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Savings {
    /// The baseline's cost.
    pub baseline: CostBreakdown,
    /// The candidate's cost.
    pub candidate: CostBreakdown,
    /// Baseline minus candidate, per minute (negative: the candidate costs more).
    pub saving_per_minute: Money,
    /// Baseline minus candidate, per month.
    pub saving_per_month: Money,
    /// Baseline minus candidate, per year.
    pub saving_per_year: Money,
    /// Saving as a percentage of the baseline's bill after allotments; `None` when the
    /// baseline bill is zero (everything within the allotment, or nothing measured).
    pub reduction_pct: Option<f64>,
    /// Saving as a percentage of the baseline's list price before allotments (the
    /// marginal saving); `None` when the baseline produced nothing billable.
    pub gross_reduction_pct: Option<f64>,
}

/// Prices both variants and compares them.
pub fn savings(
    model: &PricingModel,
    baseline: &Usage,
    candidate: &Usage,
) -> Result<Savings, CostError> {
    let b = price(model, baseline)?;
    let c = price(model, candidate)?;
    Ok(Savings {
        saving_per_minute: b.per_minute.saturating_sub(c.per_minute),
        saving_per_month: b.per_month.saturating_sub(c.per_month),
        saving_per_year: b.per_year.saturating_sub(c.per_year),
        reduction_pct: reduction_pct(b.per_month, c.per_month),
        gross_reduction_pct: reduction_pct(b.gross_monthly, c.gross_monthly),
        baseline: b,
        candidate: c,
    })
}

/// `(1 - candidate / baseline) x 100`; `None` when the baseline is not positive (the
/// zero-baseline trap: nothing to reduce is not a 100% reduction).
#[must_use]
pub fn reduction_pct(baseline: Money, candidate: Money) -> Option<f64> {
    if baseline.micros() <= 0 {
        return None;
    }
    Some((1.0 - candidate.as_f64_units() / baseline.as_f64_units()) * 100.0)
}

/// Savings of a fleet of `hosts` hosts like the measured ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetProjection {
    /// Hosts measured.
    pub measured_hosts: u64,
    /// Hosts projected to.
    pub fleet_hosts: u64,
    /// How the projection was made, in words.
    pub rule: String,
    /// Both variants priced at fleet size.
    pub savings: Savings,
}

/// Projects measured usage to `hosts` hosts and prices both variants there.
pub fn project_fleet(
    model: &PricingModel,
    baseline: &Usage,
    candidate: &Usage,
    hosts: u64,
) -> Result<FleetProjection, CostError> {
    let b = baseline.scaled_to_hosts(hosts)?;
    let c = candidate.scaled_to_hosts(hosts)?;
    Ok(FleetProjection {
        measured_hosts: baseline.hosts,
        fleet_hosts: hosts,
        rule: format!(
            "per-host usage measured on {} hosts x {} hosts, then priced (allotments and tiers apply to the fleet total)",
            group_digits(baseline.hosts),
            group_digits(hosts)
        ),
        savings: savings(model, &b, &c)?,
    })
}

impl Catalogue {
    /// Prices `usage` under the entry `model_id`.
    pub fn price(&self, model_id: &str, usage: &Usage) -> Result<CostBreakdown, CostError> {
        price(self.get(model_id)?, usage)
    }

    /// Savings of `candidate` over `baseline` under the entry `model_id`.
    pub fn savings(
        &self,
        model_id: &str,
        baseline: &Usage,
        candidate: &Usage,
    ) -> Result<Savings, CostError> {
        savings(self.get(model_id)?, baseline, candidate)
    }

    /// Fleet projection under the entry `model_id`.
    pub fn project_fleet(
        &self,
        model_id: &str,
        baseline: &Usage,
        candidate: &Usage,
        hosts: u64,
    ) -> Result<FleetProjection, CostError> {
        project_fleet(self.get(model_id)?, baseline, candidate, hosts)
    }
}

/// `1234567` -> `1,234,567`.
#[must_use]
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Splits `total` over `weights` exactly (largest remainder): the parts sum to `total`
/// and each is within one micro-unit of its exact share. All zero when the weights are.
#[must_use]
pub fn allocate(total: Money, weights: &[u128]) -> Vec<Money> {
    let parts = allocate_units(total.micros().unsigned_abs().into(), weights);
    parts
        .into_iter()
        .map(|p| {
            let p = i64::try_from(p).unwrap_or(i64::MAX);
            Money::from_micros(if total.is_negative() { -p } else { p })
        })
        .collect()
}

/// Largest-remainder split of `total` units over `weights`.
#[must_use]
pub fn allocate_units(total: u128, weights: &[u128]) -> Vec<u128> {
    let sum: u128 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    // Weights and totals here are far below 2^64 each, so the products fit in u128.
    let mut parts: Vec<u128> = weights
        .iter()
        .map(|&w| w.saturating_mul(total) / sum)
        .collect();
    let assigned: u128 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(weights[i].saturating_mul(total) % sum), i));
    let remaining = usize::try_from(total.saturating_sub(assigned)).unwrap_or(usize::MAX);
    for &i in order.iter().take(remaining) {
        parts[i] += 1;
    }
    parts
}
