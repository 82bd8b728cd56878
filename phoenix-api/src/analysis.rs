//! Measurements turned into answers: experiment KPIs, cost analysis, cardinality and cost
//! flow. Field-for-field mirrors of the core results (see the core docs for each rule).

use chrono::{DateTime, NaiveDate, Utc};
use phoenix_core::cardinality as card;
use phoenix_core::cost;
use phoenix_core::judge;
use phoenix_core::kpi;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::convert::FromCore;
use crate::experiment::{KpiName, Phase, TargetState, Verdict};

mirror_enum! {
    /// Why a KPI has no value.
    Undefined => kpi::Undefined {
        /// No sample was judged.
        NoSamples,
        /// The baseline measured zero: a relative change is undefined.
        ZeroBaseline,
        /// The agents do not report what this KPI needs.
        NotMeasured,
        /// The pricing model is not in the catalogue.
        UnknownPricingModel,
    }
}

mirror_enum! {
    /// How signed-rank p-values were obtained.
    SignedRankMethod => judge::SignedRankMethod {
        /// Exact sign-flip distribution given the observed midranks (up to 50 pairs).
        Exact,
        /// Normal approximation with tie correction, no continuity correction.
        NormalApproximation,
    }
}

mirror_enum! {
    /// What the cost of a flow is proportional to.
    CostDriver => card::CostDriver {
        /// Active series.
        Series,
        /// Series adjusted by data points per minute.
        DpmAdjustedSeries,
        /// Estimated bytes.
        EstimatedBytes,
    }
}

impl FromCore<card::Dimension> for String {
    fn from_core(c: card::Dimension) -> Self {
        c.to_string()
    }
}

wire_struct! {
    /// One KPI's value and where it came from.
    KpiValue <= kpi::KpiValue {
        /// Which KPI.
        kpi: KpiName,
        /// Value in percent; absent when undefined (see `undefined`).
        value: Option<f64>,
        /// The baseline's underlying figure (unit in `basis`).
        baseline: Option<f64>,
        /// The candidate's underlying figure.
        candidate: Option<f64>,
        /// How it was computed, with the figures.
        basis: String,
        /// Why there is no value.
        undefined: Option<Undefined>,
        /// Samples it was computed from.
        samples: u64,
    }
}

wire_struct! {
    /// What happened to the samples read.
    SampleCounts <= kpi::SampleCounts {
        /// Samples read.
        received: u64,
        /// Samples judged.
        judged: u64,
        /// Excluded: in warm-up.
        in_warmup: u64,
        /// Excluded: after the run ended.
        after_end: u64,
        /// Excluded: another experiment's.
        other_experiment: u64,
        /// Excluded: from an agent that is not a target.
        unknown_agent: u64,
        /// Excluded: duplicates.
        duplicates: u64,
    }
}

wire_struct! {
    /// A host.
    HostRef <= kpi::HostRef {
        /// The agent.
        agent_id: Uuid,
        /// Its host name.
        host: String,
    }
}

wire_struct! {
    /// Which hosts reported.
    HostCoverage <= kpi::HostCoverage {
        /// Targets.
        targets: u64,
        /// Targets neither lost nor failed.
        live: u64,
        /// Hosts with a judged sample.
        reporting: u64,
        /// Live targets without a judged sample.
        missing: Vec<HostRef>,
        /// Lost or failed targets (excluded).
        excluded: Vec<HostRef>,
    }
}

wire_struct! {
    /// One variant's aggregates over the judged samples.
    VariantSummary <= kpi::VariantSummary {
        /// Mean series per sample, summed over hosts.
        series_mean: f64,
        /// Sum over hosts of each host's p95 series.
        series_p95: u64,
        /// Data points per minute, all hosts.
        points_per_minute: u64,
        /// Encoded bytes per month (730 h), all hosts.
        bytes_per_month: u64,
        /// Mean fidelity, percent.
        fidelity_pct_mean: Option<f64>,
        /// Lowest critical coverage, percent.
        critical_coverage_min_pct: Option<f64>,
        /// Mean evaluation CPU per sample, ns.
        eval_nanos_mean: f64,
    }
}

wire_struct! {
    /// A critical process or pattern the candidate missed.
    CriticalMiss <= kpi::CriticalMiss {
        /// Name or pattern.
        name: String,
        /// Judged samples missing it.
        samples: u64,
    }
}

wire_struct! {
    /// Where a price comes from.
    PriceSource <= cost::PriceSource {
        /// Catalogue id.
        model_id: String,
        /// Vendor.
        vendor: String,
        /// Product.
        product: String,
        /// SKU.
        sku: String,
        /// Currency.
        currency: String,
        /// Date the price was read (its "as of" date).
        effective_date: NaiveDate,
        /// Source (URL or document).
        source: String,
        /// True only when the price was confirmed on the vendor's own page; false when it
        /// comes from elsewhere and could not be confirmed from the vendor itself.
        price_confirmed: bool,
        /// The vendor's page documenting the billing rule applied.
        rule_source: Option<String>,
        /// When `rule_source` was read.
        rule_read_on: Option<NaiveDate>,
    }
}

wire_struct! {
    /// One tier of a price.
    TierCharge <= cost::TierCharge {
        /// Tier start.
        from: u64,
        /// Tier end.
        to: Option<u64>,
        /// Quantity billed in the tier.
        quantity: u64,
        /// Price per `per` units (decimal string).
        price: String,
        /// Units the price is for.
        per: u64,
        /// Monthly charge (decimal string).
        monthly: String,
    }
}

wire_struct! {
    /// A variant priced under one model. Money is a decimal string in `currency` units.
    CostBreakdown <= cost::CostBreakdown {
        /// The price's source.
        price_source: PriceSource,
        /// Billing unit.
        unit: String,
        /// What usage it is based on.
        usage_basis: String,
        /// Hosts.
        hosts: u64,
        /// Fewest measurements any host's usage came from; 1: a single measurement, not a
        /// distribution over the vendor's billing window (the quantity rule says so).
        samples_per_host: u64,
        /// Measured quantity.
        quantity: u64,
        /// How the quantity was derived.
        quantity_rule: String,
        /// Included (allotment) quantity.
        included: u64,
        /// How the allotment was derived.
        included_rule: String,
        /// Billable quantity.
        billable: u64,
        /// Tier charges.
        tiers: Vec<TierCharge>,
        /// Monthly before allotments.
        gross_monthly: String,
        /// Per minute.
        per_minute: String,
        /// Per month (730 h).
        per_month: String,
        /// Per year.
        per_year: String,
    }
}

wire_struct! {
    /// Both variants priced, and the saving.
    Savings <= cost::Savings {
        /// Baseline.
        baseline: CostBreakdown,
        /// Candidate.
        candidate: CostBreakdown,
        /// Saving per minute.
        saving_per_minute: String,
        /// Saving per month.
        saving_per_month: String,
        /// Saving per year.
        saving_per_year: String,
        /// Net reduction, percent (absent when the baseline costs nothing).
        reduction_pct: Option<f64>,
        /// Reduction before allotments, percent.
        gross_reduction_pct: Option<f64>,
    }
}

wire_struct! {
    /// Savings projected to a fleet.
    FleetProjection <= cost::FleetProjection {
        /// Hosts measured.
        measured_hosts: u64,
        /// Hosts projected to.
        fleet_hosts: u64,
        /// How.
        rule: String,
        /// Both variants priced at fleet scale.
        savings: Savings,
    }
}

wire_struct! {
    /// Cost of the experiment's measured hosts.
    ExperimentCost <= kpi::ExperimentCost {
        /// Both variants priced, with the saving.
        measured: Savings,
    }
}

wire_struct! {
    /// Wilcoxon signed-rank test of candidate against baseline, each sample one pair
    /// (pairs with equal values dropped: zero method `wilcox`).
    SignedRank <= judge::SignedRank {
        /// Pairs given.
        pairs: u64,
        /// Pairs with equal values, dropped.
        zeros: u64,
        /// Pairs ranked.
        n: u64,
        /// Pairs where the candidate is higher.
        candidate_higher: u64,
        /// Rank sum of the pairs where the candidate is higher.
        w_plus: f64,
        /// Rank sum of the pairs where the candidate is lower.
        w_minus: f64,
        /// Whether midranks were used for tied differences.
        ties: bool,
        /// z score, tie-corrected.
        z: Option<f64>,
        /// p of "candidate higher".
        p_greater: f64,
        /// p of "candidate lower".
        p_less: f64,
        /// Two-sided p.
        p_two_sided: f64,
        /// Share of the rank sum on the candidate's side (0.5: no tendency).
        effect: f64,
        /// Method.
        method: SignedRankMethod,
    }
}

wire_struct! {
    /// A variant's figures in one time bucket.
    VariantPoint <= kpi::VariantPoint {
        /// Series.
        series: f64,
        /// Data points.
        points: f64,
        /// Encoded bytes.
        bytes: f64,
    }
}

wire_struct! {
    /// One bucket of the KPI time series.
    TimePoint <= kpi::TimePoint {
        /// Bucket start.
        at: DateTime<Utc>,
        /// Bucket width, seconds.
        width_secs: i64,
        /// In warm-up (not judged).
        in_warmup: bool,
        /// Samples.
        samples: u64,
        /// Hosts.
        hosts: u64,
        /// Baseline.
        baseline: VariantPoint,
        /// Candidate.
        candidate: VariantPoint,
        /// Cardinality reduction, percent.
        cardinality_reduction_pct: Option<f64>,
        /// Data-point reduction, percent.
        data_point_reduction_pct: Option<f64>,
        /// Candidate fidelity, percent.
        fidelity_pct: Option<f64>,
    }
}

wire_struct! {
    /// KPIs of one host.
    HostKpis <= kpi::HostKpis {
        /// The host.
        host: HostRef,
        /// Its target state.
        state: Option<TargetState>,
        /// Judged samples.
        samples: u64,
        /// KPIs, from its own samples only.
        kpis: Vec<KpiValue>,
        /// Signed-rank test of its own evaluation CPU pairs.
        agent_cpu_test: Option<SignedRank>,
    }
}

wire_struct! {
    /// Everything measured about an experiment.
    ExperimentKpis <= kpi::ExperimentKpis {
        /// The experiment.
        experiment_id: Uuid,
        /// Pricing model used.
        pricing_model: String,
        /// Sample accounting.
        samples: SampleCounts,
        /// First judged sample.
        judged_from: Option<DateTime<Utc>>,
        /// Last judged sample.
        judged_to: Option<DateTime<Utc>>,
        /// Host coverage.
        hosts: HostCoverage,
        /// One per KPI.
        kpis: Vec<KpiValue>,
        /// Baseline aggregates.
        baseline: VariantSummary,
        /// Candidate aggregates.
        candidate: VariantSummary,
        /// Signed-rank test of evaluation CPU pairs.
        agent_cpu_test: Option<SignedRank>,
        /// Cost on the measured hosts.
        cost: Option<ExperimentCost>,
        /// Critical processes or patterns missed.
        critical_missing: Vec<CriticalMiss>,
        /// How the experiment's frozen queries fared over the judged samples (each
        /// query's most severe status on any host; broken and changed ones named with
        /// their reasons); absent when the experiment has no query inventory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queries: Option<crate::query::QueriesKept>,
        /// Both variants over time.
        time_series: Vec<TimePoint>,
        /// Per host.
        per_host: Vec<HostKpis>,
    }
}

/// `GET /experiments/{id}/kpis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct KpiReport {
    /// The experiment's phase.
    pub phase: Phase,
    /// The verdict, once judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// KPIs from every sample so far.
    pub kpis: ExperimentKpis,
}

/// A recommended change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct Action {
    /// `drop_label` or `aggregate_by`.
    pub kind: String,
    /// The label to drop (`drop_label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The metrics it is dropped from (`drop_label`; empty: all).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// The resource labels to keep when aggregating (`aggregate_by`).
    #[serde(default)]
    pub resource_labels: Vec<String>,
}

impl FromCore<card::Action> for Action {
    fn from_core(c: card::Action) -> Self {
        match c {
            card::Action::DropLabel { label, metrics } => Self {
                kind: "drop_label".to_owned(),
                label: Some(label),
                metrics,
                resource_labels: Vec::new(),
            },
            card::Action::AggregateBy { resource_labels } => Self {
                kind: "aggregate_by".to_owned(),
                label: None,
                metrics: Vec::new(),
                resource_labels,
            },
        }
    }
}

wire_struct! {
    /// A recommendation with its projected effect.
    Recommendation <= card::Recommendation {
        /// What to do.
        action: Action,
        /// In words.
        summary: String,
        /// Series before.
        series_before: u64,
        /// Series after.
        series_after: u64,
        /// Series affected.
        affected_series: u64,
        /// How the projection was computed.
        method: String,
        /// Monthly cost before.
        monthly_before: String,
        /// Monthly cost after.
        monthly_after: String,
        /// Saving per month.
        saving_per_month: String,
        /// Saving per year.
        saving_per_year: String,
        /// The price's source.
        price_source: PriceSource,
        /// What it does to the query inventory: the queries it keeps and, when changed
        /// queries were allowed, those it changes and how. Absent without an inventory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queries: Option<crate::query::RecommendationQueries>,
    }
}

/// `GET /experiments/{id}/cost-analysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct CostAnalysis {
    /// The experiment.
    pub experiment_id: Uuid,
    /// Pricing model.
    pub pricing_model: String,
    /// Both variants priced on the measured hosts (absent before any judged sample or
    /// with an unknown pricing model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Savings>,
    /// The same usage per host projected to `fleet_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetProjection>,
    /// Changes to the targets' raw series that would save more, best first (from their
    /// cardinality snapshots).
    pub recommendations: Vec<Recommendation>,
    /// The fleet's host set (the default projection size is its `hosts`).
    pub coverage: Coverage,
    /// Why something is missing.
    pub notes: Vec<String>,
}

wire_struct! {
    /// One group of a breakdown.
    GroupStats <= card::GroupStats {
        /// Group value.
        value: String,
        /// Series.
        series: u64,
        /// Data points per minute.
        points_per_minute: u64,
        /// Share of all series, percent.
        share_pct: f64,
    }
}

wire_struct! {
    /// Series grouped by one dimension.
    Breakdown <= card::Breakdown {
        /// `metric`, `host`, `service`, `namespace` or `label:<key>`.
        dimension: String,
        /// The label key the dimension resolved to.
        key: Option<String>,
        /// Distinct groups.
        distinct_groups: u64,
        /// Top groups (the rest summed in `(other)`).
        groups: Vec<GroupStats>,
    }
}

wire_struct! {
    /// One label key.
    LabelKeyStats <= card::LabelKeyStats {
        /// Key.
        key: String,
        /// Distinct values.
        distinct_values: u64,
        /// Series carrying it.
        series: u64,
    }
}

wire_struct! {
    /// One label of one metric.
    MetricLabelStats <= card::MetricLabelStats {
        /// Metric.
        metric: String,
        /// Label key.
        key: String,
        /// Distinct values.
        distinct_values: u64,
        /// Series of the metric carrying it.
        series: u64,
        /// All series of the metric.
        metric_series: u64,
    }
}

wire_struct! {
    /// One group's cost.
    FlowGroup <= card::FlowGroup {
        /// Group value.
        value: String,
        /// Driver quantity.
        driver_quantity: u64,
        /// Monthly cost (decimal string).
        monthly: String,
        /// Share in basis points (sums to 10,000).
        basis_points: u32,
        /// Share, percent.
        share_pct: f64,
    }
}

wire_struct! {
    /// Cost by one dimension.
    FlowBreakdown <= card::FlowBreakdown {
        /// Dimension.
        dimension: String,
        /// Resolved label key.
        key: Option<String>,
        /// Groups.
        groups: Vec<FlowGroup>,
    }
}

wire_struct! {
    /// Where the money goes.
    CostFlow <= card::CostFlow {
        /// The total, priced.
        cost: CostBreakdown,
        /// What cost is proportional to.
        driver: CostDriver,
        /// By dimension.
        flows: Vec<FlowBreakdown>,
        /// Caveats.
        notes: Vec<String>,
    }
}

wire_struct! {
    /// How much of the fleet a view saw. Every fleet view (cost flow, cardinality,
    /// recommendations, fleet projection) reads the same host set: every live agent, plus
    /// agents no longer live whose last snapshot is within the server's snapshot retention.
    Coverage <= phoenix_core::phoenix::Coverage {
        /// Hosts in the host set.
        hosts: u64,
        /// Live agents (healthy or degraded, not revoked).
        live_hosts: u64,
        /// Hosts of the set whose snapshot the view used.
        reporting: u64,
        /// Live agents with a snapshot.
        reporting_live: u64,
        /// `reporting_live / live_hosts`, percent (absent without a live agent).
        percent: Option<f64>,
        /// The oldest snapshot used.
        oldest_snapshot_at: Option<DateTime<Utc>>,
        /// Its age when the view was computed, seconds.
        oldest_snapshot_age_secs: Option<u64>,
        /// Hosts of the set reporting a current shipped output (what the pipeline deployed
        /// or promoted on them ships).
        reporting_shipped: u64,
        /// The instant the view was computed for (the snapshots stored then): fleet views
        /// are memoized per server replica for at most the server's fleet view staleness.
        computed_at: DateTime<Utc>,
    }
}

wire_struct! {
    /// One side of a raw vs shipped comparison.
    FlowTotals <= card::FlowTotals {
        /// Series.
        series: u64,
        /// Data points per minute, at each series' own interval.
        points_per_minute: u64,
        /// Their bill under the pricing model.
        cost: CostBreakdown,
    }
}

wire_struct! {
    /// The hosts that report a shipped output: their raw input beside what their pipeline
    /// ships, priced under the same model.
    RawVsShipped <= card::RawVsShipped {
        /// Hosts compared (each reports both).
        hosts: u64,
        /// Their input, before any pipeline.
        raw: FlowTotals,
        /// What they ship.
        shipped: FlowTotals,
        /// `(1 - shipped / raw) x 100` of the series (absent when raw has none).
        series_reduction_pct: Option<f64>,
        /// The same of the data points per minute.
        points_reduction_pct: Option<f64>,
        /// The same of the gross monthly list price.
        cost_reduction_pct: Option<f64>,
    }
}

/// `GET /metrics/cardinality`: the fleet's raw series, from the host set's snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct CardinalityReport {
    /// Hosts whose snapshots were analysed.
    pub hosts: u64,
    /// Hosts the report covers.
    pub coverage: Coverage,
    /// Oldest snapshot.
    pub taken_from: Option<DateTime<Utc>>,
    /// Newest snapshot.
    pub taken_to: Option<DateTime<Utc>>,
    /// Series.
    pub total_series: u64,
    /// Data points per minute.
    pub points_per_minute: u64,
    /// Distinct metric names.
    pub distinct_metrics: u64,
    /// Label keys, most values first.
    pub label_keys: Vec<LabelKeyStats>,
    /// (metric, label) pairs, highest cardinality first.
    pub metric_labels: Vec<MetricLabelStats>,
    /// Breakdowns asked for.
    pub breakdowns: Vec<Breakdown>,
    /// Cost flow, when a pricing model was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_flow: Option<CostFlow>,
}

impl From<phoenix_core::phoenix::CardinalityView> for CardinalityReport {
    fn from(view: phoenix_core::phoenix::CardinalityView) -> Self {
        let r = view.report;
        Self {
            hosts: r.hosts,
            coverage: view.coverage.into(),
            taken_from: r.taken_from,
            taken_to: r.taken_to,
            total_series: r.total_series,
            points_per_minute: r.points_per_minute,
            distinct_metrics: r.distinct_metrics,
            label_keys: FromCore::from_core(r.label_keys),
            metric_labels: FromCore::from_core(r.metric_labels),
            breakdowns: FromCore::from_core(r.breakdowns),
            cost_flow: FromCore::from_core(r.cost_flow),
        }
    }
}

/// `POST /fleet/snapshots`: what an on-demand snapshot refresh asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct SnapshotRefresh {
    /// Live agents asked for a snapshot now.
    pub requested: u64,
    /// Live agents with a refresh pending already (not asked twice).
    pub already_pending: u64,
}

impl From<phoenix_core::phoenix::SnapshotRefresh> for SnapshotRefresh {
    fn from(r: phoenix_core::phoenix::SnapshotRefresh) -> Self {
        Self {
            requested: r.requested,
            already_pending: r.already_pending,
        }
    }
}

/// `GET /metrics/cost-flow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(poem_openapi::Object),
    oai(skip_serializing_if_is_none)
)]
pub struct CostFlowReport {
    /// Hosts whose snapshots were analysed.
    pub hosts: u64,
    /// Hosts the flow covers.
    pub coverage: Coverage,
    /// Series.
    pub total_series: u64,
    /// The flow.
    pub cost_flow: CostFlow,
    /// Best savings first.
    pub recommendations: Vec<Recommendation>,
    /// Raw vs shipped on the hosts that report a shipped output (absent when none does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped: Option<RawVsShipped>,
}

mirror_enum! {
    /// Size of a cost history bucket.
    HistoryGranularity => phoenix_core::history::Granularity {
        /// One bucket per UTC hour.
        Hour,
        /// One bucket per UTC day.
        Day,
    }
}

mirror_enum! {
    /// Which rows a cost history point carries besides the total.
    HistoryBreakdown => phoenix_core::history::BreakdownKind {
        /// The total only.
        Total,
        /// Per metric name.
        Metric,
        /// Per service.
        Service,
        /// Per namespace.
        Namespace,
        /// Per host.
        Host,
    }
}

mirror_enum! {
    /// Whether a figure covers its whole window with recorded data.
    FigureBasis => phoenix_core::history::FigureBasis {
        /// Every day of the window was recorded: the mean of the recorded days.
        Measured,
        /// Less than a full window: the trend of the recorded hours, extended.
        Projected,
    }
}

mirror_enum! {
    /// What a history marker marks.
    MarkerKind => phoenix_core::phoenix::MarkerKind {
        /// An experiment promoted, or a quick deployment completed.
        Promoted,
        /// An experiment or a quick deployment rolled back.
        RolledBack,
    }
}

mirror_enum! {
    /// What a history marker is about.
    MarkerSubject => phoenix_core::phoenix::MarkerSubject {
        /// An experiment.
        Experiment,
        /// A quick deployment.
        Deployment,
    }
}

wire_struct! {
    /// One key's means over a bucket. Money is a decimal string in the history's currency.
    HistoryRow <= phoenix_core::history::HistoryRow {
        /// The key (metric, service, namespace or host; `(other)` sums the keys past the
        /// top, `(none)` series without the label; empty for the total).
        key: String,
        /// Series.
        series: u64,
        /// Data points per minute.
        points_per_minute: u64,
        /// Bytes per month, estimated from the exposition size.
        bytes_per_month: u64,
        /// Monthly cost under the pricing model (absent when it was not priced then).
        monthly_cost: Option<String>,
    }
}

wire_struct! {
    /// One hourly or daily bucket: the means of its observations.
    HistoryPoint <= phoenix_core::history::HistoryPoint {
        /// Start of the bucket.
        start: DateTime<Utc>,
        /// Observations in it (one per recording interval).
        observations: u64,
        /// Mean hosts observed.
        hosts: u64,
        /// Live agents with a snapshot over live agents, percent (absent without live agents).
        coverage_pct: Option<f64>,
        /// The whole fleet.
        total: HistoryRow,
        /// The breakdown's top keys, then `(other)` and `(none)` (empty for `total`).
        groups: Vec<HistoryRow>,
    }
}

wire_struct! {
    /// A monthly or yearly cost and how it was obtained.
    CostFigure <= phoenix_core::history::CostFigure {
        /// `measured` (every day of the window recorded) or `projected` (from the trend).
        basis: FigureBasis,
        /// The cost of the period.
        amount: String,
        /// Days of recorded data it comes from.
        days: f64,
        /// First bucket used.
        from: DateTime<Utc>,
        /// End of the last bucket used.
        to: DateTime<Utc>,
        /// How, in words.
        note: String,
    }
}

wire_struct! {
    /// A promotion or a rollback within the range.
    HistoryMarker <= phoenix_core::phoenix::HistoryMarker {
        /// When it took effect.
        at: DateTime<Utc>,
        /// Promoted or rolled back.
        kind: MarkerKind,
        /// Experiment or quick deployment.
        subject: MarkerSubject,
        /// Its id.
        id: Uuid,
        /// Its name.
        name: String,
    }
}

wire_struct! {
    /// `GET /cost/history`: the fleet's cost over time, with promotions and rollbacks.
    CostHistory <= phoenix_core::phoenix::HistoryView {
        /// Hour or day.
        granularity: HistoryGranularity,
        /// Rows besides the total.
        breakdown: HistoryBreakdown,
        /// The catalogue entry the costs are under.
        pricing_model: String,
        /// Its currency.
        currency: String,
        /// Start of the range (the start of its first bucket).
        from: DateTime<Utc>,
        /// End of the range, exclusive.
        to: DateTime<Utc>,
        /// One per recorded bucket, oldest first; a bucket without a recording is absent.
        points: Vec<HistoryPoint>,
        /// Promotions and rollbacks in the range, oldest first.
        markers: Vec<HistoryMarker>,
        /// What a month costs: measured over the last 30 complete days, or projected.
        monthly: Option<CostFigure>,
        /// What a year costs: measured over the last 365 complete days, or projected.
        yearly: Option<CostFigure>,
        /// Hourly buckets are kept this many days.
        hourly_retention_days: u64,
        /// Daily buckets are kept this many days.
        daily_retention_days: u64,
        /// One observation per this many seconds.
        interval_secs: u64,
    }
}
