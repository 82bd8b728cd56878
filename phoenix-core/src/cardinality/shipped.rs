//! Raw vs shipped: what the hosts that report their deployed pipeline's output
//! ([`SnapshotSource::Shipped`]) receive as input and what they ship, priced alike.
//!
//! Both sides are computed by the same analysis as the cost flow ([`super::analyze`]) over
//! the **same hosts**: only hosts with a shipped snapshot are compared, their input beside
//! their output, so a host that ships nothing known to Phoenix never counts on one side only.

use std::collections::BTreeSet;

use crate::cost::{CostBreakdown, PricingModel, reduction_pct};
use crate::measure::{CardinalitySnapshot, SnapshotSource};

use super::{AnalysisError, AnalysisOptions, SeriesTable};

/// One side of a [`RawVsShipped`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTotals {
    /// Series (host, metric and labels identify one).
    pub series: u64,
    /// Data points per minute, at each series' own interval.
    pub points_per_minute: u64,
    /// The bill of those series under the model.
    pub cost: CostBreakdown,
}

/// The hosts that report a shipped output: their raw input and what they ship.
#[derive(Debug, Clone, PartialEq)]
pub struct RawVsShipped {
    /// Hosts compared (each has an input and a shipped snapshot).
    pub hosts: u64,
    /// Their input, before any pipeline.
    pub raw: FlowTotals,
    /// What their pipelines ship.
    pub shipped: FlowTotals,
    /// `(1 - shipped / raw) x 100` of the series (`None` when raw has none).
    pub series_reduction_pct: Option<f64>,
    /// The same of the data points per minute.
    pub points_reduction_pct: Option<f64>,
    /// The same of the list price (gross monthly: an allotment is the same for both sides,
    /// as in the experiments' cost reduction).
    pub cost_reduction_pct: Option<f64>,
}

fn pct(raw: u64, shipped: u64) -> Option<f64> {
    (raw > 0).then(|| (1.0 - shipped as f64 / raw as f64) * 100.0)
}

fn totals(table: &SeriesTable, model: &PricingModel) -> Result<FlowTotals, AnalysisError> {
    let options = AnalysisOptions {
        breakdowns: Vec::new(),
        ..AnalysisOptions::default()
    };
    let report = table.analyze(&options, Some(model))?;
    let Some(flow) = report.cost_flow else {
        unreachable!("an analysis given a pricing model prices its series")
    };
    Ok(FlowTotals {
        series: report.total_series,
        points_per_minute: report.points_per_minute,
        cost: flow.cost,
    })
}

/// Compares the input of every host in `shipped` with its shipped output under `model`.
/// `inputs` are the host set's input snapshots, `shipped` the shipped snapshots of hosts of
/// that set (other snapshots are ignored). `None` when no host reports a shipped output.
///
/// # Errors
/// When the snapshots cannot be interned or priced.
pub fn raw_vs_shipped(
    inputs: &[CardinalitySnapshot],
    shipped: &[CardinalitySnapshot],
    model: &PricingModel,
) -> Result<Option<RawVsShipped>, AnalysisError> {
    let input_hosts: BTreeSet<_> = inputs
        .iter()
        .filter(|s| s.source == SnapshotSource::Input)
        .map(|s| s.agent_id)
        .collect();
    let out: Vec<CardinalitySnapshot> = shipped
        .iter()
        .filter(|s| s.source == SnapshotSource::Shipped && input_hosts.contains(&s.agent_id))
        .cloned()
        .collect();
    if out.is_empty() {
        return Ok(None);
    }
    let hosts: BTreeSet<_> = out.iter().map(|s| s.agent_id).collect();
    let raw: Vec<CardinalitySnapshot> = inputs
        .iter()
        .filter(|s| s.source == SnapshotSource::Input && hosts.contains(&s.agent_id))
        .cloned()
        .collect();
    raw_vs_shipped_tables(
        &SeriesTable::from_snapshots(&raw)?,
        &SeriesTable::from_snapshots(&out)?,
        model,
    )
    .map(|r| {
        Some(RawVsShipped {
            hosts: hosts.len() as u64,
            ..r
        })
    })
}

/// [`raw_vs_shipped`] on interned tables: `raw` holds the inputs of exactly the hosts whose
/// shipped outputs `shipped` holds, one snapshot per host each (the fleet cache merges them
/// from its per-host tables).
///
/// # Errors
/// When the series cannot be priced.
pub fn raw_vs_shipped_tables(
    raw: &SeriesTable,
    shipped: &SeriesTable,
    model: &PricingModel,
) -> Result<RawVsShipped, AnalysisError> {
    let hosts = shipped.hosts() as u64;
    let raw = totals(raw, model)?;
    let shipped = totals(shipped, model)?;
    Ok(RawVsShipped {
        hosts,
        series_reduction_pct: pct(raw.series, shipped.series),
        points_reduction_pct: pct(raw.points_per_minute, shipped.points_per_minute),
        cost_reduction_pct: reduction_pct(raw.cost.gross_monthly, shipped.cost.gross_monthly),
        raw,
        shipped,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::*;
    use crate::cost::Catalogue;
    use crate::ids::AgentId;
    use crate::measure::SnapshotSeries;

    fn snap(agent: AgentId, source: SnapshotSource, pids: u32, points: u64) -> CardinalitySnapshot {
        CardinalitySnapshot {
            agent_id: agent,
            source,
            host: format!("host-{agent}"),
            taken_at: Utc::now(),
            interval_secs: 60,
            series: (0..pids)
                .map(|pid| SnapshotSeries {
                    metric: "process.memory.usage".to_owned(),
                    labels: BTreeMap::from([("process.pid".to_owned(), pid.to_string())]),
                    points,
                    value: None,
                })
                .collect(),
        }
    }

    #[test]
    fn compares_only_the_hosts_that_ship_and_prices_both_sides_alike() {
        let catalogue = Catalogue::builtin();
        let model = catalogue.get("generic-per-million").unwrap();
        let (a, b) = (AgentId::new(), AgentId::new());
        let inputs = [
            snap(a, SnapshotSource::Input, 400, 6),
            snap(b, SnapshotSource::Input, 1_000, 6),
        ];
        // `a` ships 100 series at one point a minute; `b` reports no shipped output.
        let shipped = [snap(a, SnapshotSource::Shipped, 100, 1)];
        let r = raw_vs_shipped(&inputs, &shipped, model).unwrap().unwrap();
        assert_eq!(r.hosts, 1);
        assert_eq!(r.raw.series, 400);
        assert_eq!(r.raw.points_per_minute, 400 * 6);
        assert_eq!(r.shipped.series, 100);
        assert_eq!(r.shipped.points_per_minute, 100);
        assert_eq!(r.series_reduction_pct, Some(75.0));
        // 2,400 points a minute in, 100 out.
        assert!((r.points_reduction_pct.unwrap() - 95.833_333_333).abs() < 1e-6);
        // $50 per million series: 400 -> $0.02, 100 -> $0.005.
        assert_eq!(r.raw.cost.gross_monthly.micros(), 20_000);
        assert_eq!(r.shipped.cost.gross_monthly.micros(), 5_000);
        assert_eq!(r.cost_reduction_pct, Some(75.0));
        assert_eq!(r.raw.cost.hosts, 1);
    }

    #[test]
    fn nothing_shipped_or_shipped_without_input_is_no_comparison() {
        let catalogue = Catalogue::builtin();
        let model = catalogue.get("generic-per-million").unwrap();
        let (a, b) = (AgentId::new(), AgentId::new());
        let inputs = [snap(a, SnapshotSource::Input, 10, 1)];
        assert_eq!(raw_vs_shipped(&inputs, &[], model).unwrap(), None);
        let orphan = [snap(b, SnapshotSource::Shipped, 5, 1)];
        assert_eq!(raw_vs_shipped(&inputs, &orphan, model).unwrap(), None);
    }

    #[test]
    fn an_empty_raw_input_has_no_reduction() {
        let catalogue = Catalogue::builtin();
        let model = catalogue.get("generic-per-million").unwrap();
        let a = AgentId::new();
        let r = raw_vs_shipped(
            &[snap(a, SnapshotSource::Input, 0, 1)],
            &[snap(a, SnapshotSource::Shipped, 0, 1)],
            model,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.series_reduction_pct, None);
        assert_eq!(r.cost_reduction_pct, None);
    }
}
