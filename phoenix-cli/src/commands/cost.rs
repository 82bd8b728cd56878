//! `phoenix cost ...`: the fleet's raw series from the agents' latest snapshots.

use phoenix_api::analysis::{
    Breakdown, CardinalityReport, CostFigure, CostFlow, CostFlowReport, CostHistory, Coverage,
    PriceSource, RawVsShipped, Recommendation,
};
use phoenix_client::HistoryParams;

use crate::Context;
use crate::cli::CostCommand;
use crate::error::CliError;
use crate::output::{opt_time, wire};
use crate::table::{Table, key_values};

pub(crate) async fn run(cx: &Context, command: CostCommand) -> Result<(), CliError> {
    match command {
        CostCommand::Flow {
            pricing_model,
            dimension,
            allow_changed_queries,
        } => {
            let dims: Vec<&str> = dimension.iter().map(String::as_str).collect();
            let report = cx
                .client
                .cost_flow_with(pricing_model.as_deref(), &dims, allow_changed_queries)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&report, flow_view);
            Ok(())
        }
        CostCommand::Cardinality {
            dimension,
            top,
            pricing_model,
        } => {
            let dims: Vec<&str> = dimension.iter().map(String::as_str).collect();
            let report = cx
                .client
                .cardinality(&dims, top, pricing_model.as_deref())
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&report, cardinality_view);
            Ok(())
        }
        CostCommand::History(args) => {
            let history = cx
                .client
                .cost_history(&HistoryParams {
                    granularity: args.granularity,
                    breakdown: args.breakdown,
                    pricing_model: args.pricing_model,
                    from: args.from,
                    to: args.to,
                })
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&history, history_view);
            Ok(())
        }
    }
}

fn figure_line(label: &str, figure: Option<&CostFigure>, currency: &str) -> String {
    match figure {
        Some(f) => format!(
            "{label}: {} {currency} ({}, {} days: {})\n",
            f.amount,
            wire(&f.basis),
            f.days,
            f.note
        ),
        None => format!("{label}: nothing recorded yet\n"),
    }
}

fn history_view(h: &CostHistory) -> String {
    let mut out = format!(
        "Cost history ({}, {} buckets, {}) from {} to {}\n",
        h.pricing_model,
        wire(&h.granularity),
        wire(&h.breakdown),
        crate::output::time(&h.from),
        crate::output::time(&h.to)
    );
    out.push_str(&figure_line("Monthly", h.monthly.as_ref(), &h.currency));
    out.push_str(&figure_line("Yearly", h.yearly.as_ref(), &h.currency));
    out.push_str(&format!(
        "Retention: hourly {} days, daily {} days; one observation every {} s\n\n",
        h.hourly_retention_days, h.daily_retention_days, h.interval_secs
    ));
    let mut t = Table::new(&[
        "START",
        "KEY",
        "SERIES",
        "POINTS/MIN",
        "BYTES/MONTH",
        "MONTHLY",
        "OBS",
        "COVERAGE",
    ]);
    for p in &h.points {
        let cost = |c: &Option<String>| {
            c.as_ref()
                .map_or_else(|| "-".to_owned(), |m| format!("{m} {}", h.currency))
        };
        t.row(vec![
            crate::output::time(&p.start),
            "(total)".to_owned(),
            p.total.series.to_string(),
            p.total.points_per_minute.to_string(),
            p.total.bytes_per_month.to_string(),
            cost(&p.total.monthly_cost),
            p.observations.to_string(),
            crate::output::pct(p.coverage_pct),
        ]);
        for g in &p.groups {
            t.row(vec![
                String::new(),
                g.key.clone(),
                g.series.to_string(),
                g.points_per_minute.to_string(),
                g.bytes_per_month.to_string(),
                cost(&g.monthly_cost),
                String::new(),
                String::new(),
            ]);
        }
    }
    if h.points.is_empty() {
        out.push_str("No recorded data in this range.\n");
    } else {
        out.push_str(&t.render());
    }
    if !h.markers.is_empty() {
        out.push_str("\nPromotions and rollbacks\n");
        let mut m = Table::new(&["AT", "WHAT", "SUBJECT", "NAME", "ID"]);
        for marker in &h.markers {
            m.row(vec![
                crate::output::time(&marker.at),
                wire(&marker.kind),
                wire(&marker.subject),
                marker.name.clone(),
                marker.id.to_string(),
            ]);
        }
        out.push_str(&m.render());
    }
    out
}

pub(crate) fn recommendations_table(recommendations: &[Recommendation]) -> String {
    let mut t = Table::new(&[
        "RECOMMENDATION",
        "SERIES BEFORE",
        "SERIES AFTER",
        "SAVING/MONTH",
        "SAVING/YEAR",
    ]);
    for r in recommendations {
        t.row(vec![
            r.summary.clone(),
            r.series_before.to_string(),
            r.series_after.to_string(),
            format!("{} {}", r.saving_per_month, r.price_source.currency),
            format!("{} {}", r.saving_per_year, r.price_source.currency),
        ]);
    }
    let mut out = t.render();
    out.push_str(&recommendation_queries(recommendations));
    out
}

/// Per recommendation with a query inventory: the queries it keeps and those it changes.
fn recommendation_queries(recommendations: &[Recommendation]) -> String {
    let mut out = String::new();
    for (i, r) in recommendations.iter().enumerate() {
        let Some(q) = &r.queries else { continue };
        let listed = q.kept_queries.join(", ");
        let more = (q.kept as usize).saturating_sub(q.kept_queries.len());
        out.push_str(&format!(
            "\n{}. {}\n   queries kept: {}{}{}\n   untouched: {}, unobserved: {}\n",
            i + 1,
            r.summary,
            q.kept,
            if listed.is_empty() {
                String::new()
            } else {
                format!(" ({listed}")
            },
            match (listed.is_empty(), more) {
                (true, _) => String::new(),
                (false, 0) => ")".to_owned(),
                (false, n) => format!(", and {n} more)"),
            },
            q.untouched,
            q.unobserved,
        ));
        for v in &q.changed {
            out.push_str(&format!(
                "   changes {} ({}): {}\n",
                v.name,
                v.location,
                v.reasons.join("; ")
            ));
        }
    }
    out
}

fn flow_tables(flow: &CostFlow, out: &mut String) {
    let currency = &flow.cost.price_source.currency;
    for b in &flow.flows {
        let mut t = Table::new(&["GROUP", "DRIVER", "MONTHLY", "SHARE"]);
        for g in &b.groups {
            t.row(vec![
                g.value.clone(),
                g.driver_quantity.to_string(),
                format!("{} {currency}", g.monthly),
                format!("{:.1}%", g.share_pct),
            ]);
        }
        out.push_str(&format!(
            "\nBy {}{}\n",
            b.dimension,
            b.key
                .as_ref()
                .filter(|k| **k != b.dimension)
                .map(|k| format!(" ({k})"))
                .unwrap_or_default()
        ));
        out.push_str(&t.render());
    }
    for note in &flow.notes {
        out.push_str(&format!("note: {note}\n"));
    }
}

/// The price a figure used, with whether the vendor's own page confirmed it.
pub(crate) fn pricing_line(p: &PriceSource) -> String {
    format!(
        "{} ({} {}, as of {}; {})",
        p.model_id,
        p.vendor,
        p.product,
        p.effective_date,
        if p.price_confirmed {
            "price confirmed on the vendor's page"
        } else {
            "price NOT confirmed by the vendor"
        }
    )
}

/// The vendor page the billing rule follows, and when it was read.
pub(crate) fn rule_line(p: &PriceSource) -> String {
    match (&p.rule_source, p.rule_read_on) {
        (Some(source), Some(read)) => format!("{source} (read {read})"),
        (Some(source), None) => source.clone(),
        (None, _) => "no vendor rule page recorded".to_owned(),
    }
}

/// `2/3 live hosts reporting (66.7 %), 1 host no longer live within retention, oldest
/// snapshot 12 s old`.
fn coverage(c: &Coverage) -> String {
    let mut out = format!("{}/{} live hosts reporting", c.reporting_live, c.live_hosts);
    if let Some(p) = c.percent {
        out.push_str(&format!(" ({p:.1} %)"));
    }
    let gone = c.reporting - c.reporting_live;
    if gone > 0 {
        out.push_str(&format!(", {gone} no longer live within retention"));
    }
    if let Some(age) = c.oldest_snapshot_age_secs {
        out.push_str(&format!(", oldest snapshot {age} s old"));
    }
    if c.reporting_shipped > 0 {
        out.push_str(&format!(
            ", {} reporting a shipped output",
            c.reporting_shipped
        ));
    }
    out
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{p:.1}%"))
}

/// Raw vs shipped on the hosts that report a shipped output.
fn shipped_table(s: &RawVsShipped, out: &mut String) {
    let cur = &s.raw.cost.price_source.currency;
    let mut t = Table::new(&["", "SERIES", "POINTS/MIN", "LIST/MONTH", "COST/MONTH"]);
    for (name, side) in [("raw", &s.raw), ("shipped", &s.shipped)] {
        t.row(vec![
            name.to_owned(),
            side.series.to_string(),
            side.points_per_minute.to_string(),
            format!("{} {cur}", side.cost.gross_monthly),
            format!("{} {cur}", side.cost.per_month),
        ]);
    }
    t.row(vec![
        "reduction".to_owned(),
        pct(s.series_reduction_pct),
        pct(s.points_reduction_pct),
        pct(s.cost_reduction_pct),
        String::new(),
    ]);
    out.push_str(&format!(
        "\nRaw vs shipped ({} host{} reporting a shipped output)\n",
        s.hosts,
        if s.hosts == 1 { "" } else { "s" }
    ));
    out.push_str(&t.render());
}

fn flow_view(r: &CostFlowReport) -> String {
    let c = &r.cost_flow.cost;
    let mut out = key_values(&[
        ("hosts", r.hosts.to_string()),
        ("coverage", coverage(&r.coverage)),
        ("series", r.total_series.to_string()),
        ("pricing", pricing_line(&c.price_source)),
        ("billing rule", rule_line(&c.price_source)),
        ("quantity", c.quantity_rule.clone()),
        (
            "cost",
            format!(
                "{} {cur}/month, {} {cur}/year",
                c.per_month,
                c.per_year,
                cur = c.price_source.currency
            ),
        ),
        ("driver", wire(&r.cost_flow.driver)),
    ]);
    match &r.shipped {
        Some(s) => shipped_table(s, &mut out),
        None => out.push_str("\nRaw vs shipped: no host reports a shipped output\n"),
    }
    flow_tables(&r.cost_flow, &mut out);
    if !r.recommendations.is_empty() {
        out.push_str("\nRecommendations\n");
        out.push_str(&recommendations_table(&r.recommendations));
    }
    out
}

fn breakdown_table(b: &Breakdown) -> String {
    let mut t = Table::new(&["GROUP", "SERIES", "POINTS/MIN", "SHARE"]);
    for g in &b.groups {
        t.row(vec![
            g.value.clone(),
            g.series.to_string(),
            g.points_per_minute.to_string(),
            format!("{:.1}%", g.share_pct),
        ]);
    }
    t.render()
}

fn cardinality_view(r: &CardinalityReport) -> String {
    let mut out = key_values(&[
        ("hosts", r.hosts.to_string()),
        ("coverage", coverage(&r.coverage)),
        (
            "snapshots",
            format!(
                "{} .. {}",
                opt_time(r.taken_from.as_ref()),
                opt_time(r.taken_to.as_ref())
            ),
        ),
        ("series", r.total_series.to_string()),
        ("points/min", r.points_per_minute.to_string()),
        ("metrics", r.distinct_metrics.to_string()),
    ]);
    if !r.label_keys.is_empty() {
        let mut t = Table::new(&["LABEL", "DISTINCT VALUES", "SERIES"]);
        for k in &r.label_keys {
            t.row(vec![
                k.key.clone(),
                k.distinct_values.to_string(),
                k.series.to_string(),
            ]);
        }
        out.push_str("\nLabels\n");
        out.push_str(&t.render());
    }
    if !r.metric_labels.is_empty() {
        let mut t = Table::new(&["METRIC", "LABEL", "DISTINCT VALUES", "SERIES"]);
        for m in &r.metric_labels {
            t.row(vec![
                m.metric.clone(),
                m.key.clone(),
                m.distinct_values.to_string(),
                format!("{}/{}", m.series, m.metric_series),
            ]);
        }
        out.push_str("\nMetric labels\n");
        out.push_str(&t.render());
    }
    for b in &r.breakdowns {
        out.push_str(&format!(
            "\nBy {} ({} groups)\n",
            b.dimension, b.distinct_groups
        ));
        out.push_str(&breakdown_table(b));
    }
    if let Some(flow) = &r.cost_flow {
        out.push_str(&format!(
            "\ncost: {} {}/month\n",
            flow.cost.per_month, flow.cost.price_source.currency
        ));
        flow_tables(flow, &mut out);
    }
    out
}
