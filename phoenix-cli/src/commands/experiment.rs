//! `phoenix experiment ...`

use chrono::Utc;
use phoenix_api::analysis::{CostAnalysis, KpiReport};
use phoenix_api::experiment::{
    EventPage, Experiment, ExperimentPage, KpiName, PromoteRequest, RollbackRequest, TargetState,
    Verdict,
};
use phoenix_api::task::RemovalMode;
use phoenix_client::ExperimentQuery;

use crate::cli::{CreateArgs, ExperimentCommand};
use crate::error::CliError;
use crate::output::{self, opt_time, pct, span, time, wire};
use crate::table::{Table, key_values};
use crate::{Context, experiment_file, watch};

pub(crate) async fn run(cx: &Context, command: ExperimentCommand) -> Result<(), CliError> {
    let client = &cx.client;
    match command {
        ExperimentCommand::Create(args) => create(cx, &args).await,
        ExperimentCommand::List(args) => {
            let mut query = ExperimentQuery {
                phases: args.phase,
                cursor: args.cursor,
                limit: args.limit,
            };
            let mut page = client
                .list_experiments(&query)
                .await
                .map_err(|e| cx.err(e))?;
            while args.all && page.next_cursor.is_some() {
                query.cursor = page.next_cursor.take();
                let next = client
                    .list_experiments(&query)
                    .await
                    .map_err(|e| cx.err(e))?;
                page.items.extend(next.items);
                page.next_cursor = next.next_cursor;
            }
            cx.printer.show(&page, list_view);
            Ok(())
        }
        ExperimentCommand::Get(id) => {
            let e = client.get_experiment(id.id).await.map_err(|e| cx.err(e))?;
            cx.printer.show(&e, detail_view);
            Ok(())
        }
        ExperimentCommand::Start(id) => {
            let e = client
                .start_experiment(id.id)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&e, |e| {
                format!(
                    "{}\nfollow it: phoenix experiment status {} --watch\n",
                    summary(e),
                    e.id
                )
            });
            Ok(())
        }
        ExperimentCommand::Stop(args) => {
            let e = client
                .stop_experiment(args.id, args.reason)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&e, summary);
            Ok(())
        }
        ExperimentCommand::Rollback(args) => {
            let request = RollbackRequest {
                mode: if args.instant {
                    RemovalMode::Instant
                } else {
                    RemovalMode::Graceful
                },
                reason: args.reason,
            };
            let e = client
                .rollback_experiment(args.id, &request)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&e, summary);
            Ok(())
        }
        ExperimentCommand::Promote(args) => {
            let request = PromoteRequest {
                force: args.force,
                reason: args.reason,
            };
            let e = client
                .promote_experiment(args.id, &request)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&e, summary);
            Ok(())
        }
        ExperimentCommand::Status(args) => {
            if args.watch {
                return watch::watch(cx, args.id).await;
            }
            let e = client
                .get_experiment(args.id)
                .await
                .map_err(|e| cx.err(e))?;
            let kpis = if e.started_at.is_some() && !cx.printer.is_json() {
                Some(client.experiment_kpis(e.id).await.map_err(|e| cx.err(e))?)
            } else {
                None
            };
            cx.printer.show(&e, |e| status_view(e, kpis.as_ref()));
            Ok(())
        }
        ExperimentCommand::Metrics(id) => {
            let report = client.experiment_kpis(id.id).await.map_err(|e| cx.err(e))?;
            cx.printer.show(&report, metrics_view);
            Ok(())
        }
        ExperimentCommand::Cost(args) => {
            let analysis = client
                .cost_analysis(args.id, args.fleet_hosts)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&analysis, cost_view);
            Ok(())
        }
        ExperimentCommand::Events(args) => {
            let mut page = client
                .experiment_events(args.id, args.cursor, args.limit)
                .await
                .map_err(|e| cx.err(e))?;
            while args.all && page.next_cursor.is_some() {
                let next = client
                    .experiment_events(args.id, page.next_cursor.take(), args.limit)
                    .await
                    .map_err(|e| cx.err(e))?;
                page.items.extend(next.items);
                page.next_cursor = next.next_cursor;
            }
            cx.printer.show(&page, events_view);
            Ok(())
        }
        ExperimentCommand::Delete(id) => {
            client
                .delete_experiment(id.id)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.note(&format!("deleted experiment {}", id.id));
            Ok(())
        }
    }
}

async fn create(cx: &Context, args: &CreateArgs) -> Result<(), CliError> {
    let (request, positions) = match &args.file {
        Some(file) => {
            let text = experiment_file::read_input(file)?;
            let name = if file == "-" { "<stdin>" } else { file };
            let (request, positions) = experiment_file::from_file(name, &text)?;
            (request, Some((name.to_owned(), positions)))
        }
        None => (experiment_file::from_flags(args), None),
    };
    if args.dry_run {
        output::out(&output::json(&request));
        return Ok(());
    }
    let created = cx
        .client
        .create_experiment(&request)
        .await
        .map_err(|error| CliError::Client {
            error: Box::new(error),
            server: cx.server.clone(),
            positions,
        })?;
    cx.printer.show(&created, |e| {
        format!(
            "created experiment {} ({}), phase {}\n\nstart it: phoenix experiment start {}\n",
            e.id, e.name, e.phase, e.id
        )
    });
    Ok(())
}

/// One line: id, name, phase.
pub(crate) fn summary(e: &Experiment) -> String {
    let mut out = key_values(&[
        ("id", e.id.to_string()),
        ("name", e.name.clone()),
        ("phase", e.phase.to_string()),
        ("targets", target_counts(e)),
    ]);
    if let Some(reason) = &e.failure_reason {
        out.push_str(&key_values(&[("failure", reason.clone())]));
    }
    out
}

fn list_view(page: &ExperimentPage) -> String {
    if page.items.is_empty() {
        return "no experiments\n".to_owned();
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "PHASE",
        "BASELINE",
        "CANDIDATE",
        "TARGETS",
        "VERDICT",
        "CREATED",
    ]);
    for e in &page.items {
        t.row(vec![
            e.id.to_string(),
            e.name.clone(),
            e.phase.to_string(),
            e.spec.baseline.template.clone(),
            e.spec.candidate.template.clone(),
            e.targets.len().to_string(),
            e.verdict
                .as_ref()
                .map(|v| wire(&v.outcome))
                .unwrap_or_default(),
            time(&e.created_at),
        ]);
    }
    let mut out = t.render();
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("\nmore: --cursor {cursor} (or --all)\n"));
    }
    out
}

fn criterion_text(c: &phoenix_api::experiment::Criterion) -> String {
    let op = match c.comparison {
        phoenix_api::experiment::Comparison::AtLeast => ">=",
        phoenix_api::experiment::Comparison::AtMost => "<=",
    };
    format!(
        "{}{op}{}{}",
        wire(&c.kpi),
        c.threshold,
        if c.critical { ":critical" } else { "" }
    )
}

fn target_counts(e: &Experiment) -> String {
    if e.targets.is_empty() {
        return String::new();
    }
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for t in &e.targets {
        *counts.entry(wire(&t.state)).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("{} ({})", e.targets.len(), parts.join(", "))
}

fn verdict_text(v: Option<&Verdict>) -> String {
    v.map(|v| {
        format!(
            "{} on {} samples: {}",
            wire(&v.outcome),
            v.samples,
            v.reasons.join("; ")
        )
    })
    .unwrap_or_default()
}

fn detail_view(e: &Experiment) -> String {
    let s = &e.spec;
    let mut pairs = vec![
        ("id", e.id.to_string()),
        ("name", e.name.clone()),
        ("description", e.description.clone()),
        ("owner", e.owner.clone()),
        ("phase", e.phase.to_string()),
        (
            "actions",
            e.allowed_actions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("version", e.version.to_string()),
        ("created", time(&e.created_at)),
        ("updated", time(&e.updated_at)),
        ("baseline", output::pipeline(&s.baseline)),
        ("candidate", output::pipeline(&s.candidate)),
        ("target labels", output::labels(&s.targets.labels)),
        ("target hosts", s.targets.hosts.join(",")),
        (
            "duration",
            span(i64::try_from(s.duration_secs).unwrap_or(i64::MAX)),
        ),
        (
            "warm-up",
            span(i64::try_from(s.warmup_secs).unwrap_or(i64::MAX)),
        ),
        ("critical processes", s.critical_processes.join(",")),
        ("critical metrics", s.critical_metrics.join(",")),
        (
            "queries",
            if e.queries == 0 {
                "none (no query inventory when created)".to_owned()
            } else {
                format!("{} frozen from the inventory", e.queries)
            },
        ),
        (
            "criteria",
            s.criteria
                .iter()
                .map(criterion_text)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("auto rollback", s.auto_rollback.to_string()),
        ("auto promote", s.auto_promote.to_string()),
        (
            "auto promote min hosts",
            s.auto_promote_min_hosts.to_string(),
        ),
        ("pricing model", s.pricing_model.clone()),
        ("min agents", s.min_agents.to_string()),
        ("sample interval", format!("{}s", s.sample_interval_secs)),
        ("started", opt_time(e.started_at.as_ref())),
        ("running since", opt_time(e.running_since.as_ref())),
        ("warm-up until", opt_time(e.warmup_until.as_ref())),
        ("ends", opt_time(e.ends_at.as_ref())),
        ("finished", opt_time(e.finished_at.as_ref())),
        ("verdict", verdict_text(e.verdict.as_ref())),
    ];
    if let Some(reason) = &e.failure_reason {
        pairs.push(("failure", reason.clone()));
    }
    if let Some(r) = &e.rollback {
        pairs.push((
            "rollback",
            format!(
                "{} by {} from {} at {}{}",
                wire(&r.mode),
                r.actor.name,
                r.from,
                time(&r.requested_at),
                r.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let mut out = key_values(&pairs);
    if !e.targets.is_empty() {
        let mut t = Table::new(&["AGENT", "HOST", "STATE", "UPDATED", "DETAIL"]);
        for target in &e.targets {
            t.row(vec![
                target.agent_id.to_string(),
                target.host.clone(),
                wire(&target.state),
                time(&target.updated_at),
                target.detail.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("\nTargets\n");
        out.push_str(&t.render());
    }
    if let Some(v) = &e.verdict {
        out.push_str("\nCriteria\n");
        out.push_str(&criteria_table(v));
    }
    out
}

fn criteria_table(v: &Verdict) -> String {
    let mut t = Table::new(&["CRITERION", "MEASURED", "PASSED", "REASON"]);
    for c in &v.criteria {
        t.row(vec![
            criterion_text(&c.criterion),
            c.measured
                .map(|m| kpi_value(c.criterion.kpi, m))
                .unwrap_or_default(),
            c.passed.map(|p| p.to_string()).unwrap_or_default(),
            c.reason.clone(),
        ]);
    }
    t.render()
}

/// A KPI's value in its unit: a percentage with two decimals, a count as a whole number.
fn kpi_value(kpi: KpiName, value: f64) -> String {
    match kpi {
        KpiName::QueriesBroken => format!("{value}"),
        _ => format!("{value:.2}"),
    }
}

/// Elapsed and remaining time of the run, by the local clock.
pub(crate) fn progress(e: &Experiment) -> String {
    let now = Utc::now();
    match (e.running_since, e.ends_at, e.finished_at) {
        (_, _, Some(finished)) => format!("finished {}", time(&finished)),
        (Some(since), Some(ends), None) => format!(
            "elapsed {}, remaining {}",
            span((now - since).num_seconds()),
            span((ends - now).num_seconds())
        ),
        _ => match e.started_at {
            Some(started) => format!("{} since start", span((now - started).num_seconds())),
            None => "not started".to_owned(),
        },
    }
}

/// A KPI in a few characters, for one-line summaries: reductions as signed changes
/// (`series -73.4%`), the others as they are (`fidelity 98.5%`).
fn short_kpi(kpi: KpiName, value: f64) -> String {
    let (name, change) = match kpi {
        KpiName::CardinalityReductionPct => ("series", true),
        KpiName::DataPointReductionPct => ("points", true),
        KpiName::CostReductionPct => ("cost", true),
        KpiName::FidelityPct => ("fidelity", false),
        KpiName::CriticalCoveragePct => ("critical", false),
        KpiName::AgentCpuOverheadPct => ("cpu overhead", false),
        KpiName::AgentRssOverheadPct => ("rss overhead", false),
        KpiName::QueriesBroken => return format!("queries broken {value}"),
    };
    if change {
        format!("{name} {:+.1}%", -value)
    } else {
        format!("{name} {value:.1}%")
    }
}

/// `series -90.0%, fidelity 98.5%, ...` for the KPIs that have a value.
pub(crate) fn kpi_line(report: &KpiReport) -> String {
    let parts: Vec<String> = report
        .kpis
        .kpis
        .iter()
        .filter_map(|k| k.value.map(|v| short_kpi(k.kpi, v)))
        .collect();
    if parts.is_empty() {
        format!("none yet ({} samples judged)", report.kpis.samples.judged)
    } else {
        parts.join(", ")
    }
}

fn status_view(e: &Experiment, kpis: Option<&KpiReport>) -> String {
    key_values(&[
        ("id", e.id.to_string()),
        ("name", e.name.clone()),
        ("phase", e.phase.to_string()),
        ("progress", progress(e)),
        ("targets", target_counts(e)),
        (
            "deployed",
            format!(
                "{}/{}",
                e.targets
                    .iter()
                    .filter(|t| t.state == TargetState::Deployed)
                    .count(),
                e.targets.len()
            ),
        ),
        ("kpis", kpis.map(kpi_line).unwrap_or_default()),
        ("verdict", verdict_text(e.verdict.as_ref())),
        ("failure", e.failure_reason.clone().unwrap_or_default()),
    ])
}

fn metrics_view(r: &KpiReport) -> String {
    let k = &r.kpis;
    let mut out = key_values(&[
        ("experiment", k.experiment_id.to_string()),
        ("phase", r.phase.to_string()),
        ("verdict", verdict_text(r.verdict.as_ref())),
        (
            "samples",
            format!(
                "{} judged of {} received",
                k.samples.judged, k.samples.received
            ),
        ),
        (
            "hosts",
            format!(
                "{} reporting of {} live, {} targets",
                k.hosts.reporting, k.hosts.live, k.hosts.targets
            ),
        ),
        (
            "judged",
            format!(
                "{} .. {}",
                opt_time(k.judged_from.as_ref()),
                opt_time(k.judged_to.as_ref())
            ),
        ),
        ("pricing model", k.pricing_model.clone()),
        (
            "saving",
            k.cost
                .as_ref()
                .map(|c| saving(&c.measured))
                .unwrap_or_default(),
        ),
    ]);
    let mut t = Table::new(&["KPI", "VALUE", "BASELINE", "CANDIDATE", "SAMPLES", "BASIS"]);
    for v in &k.kpis {
        t.row(vec![
            wire(&v.kpi),
            match (v.value, &v.undefined) {
                (Some(value), _) if v.kpi == KpiName::QueriesBroken => format!("{value}"),
                (Some(value), _) => pct(Some(value)),
                (None, Some(why)) => format!("({})", wire(why)),
                (None, None) => String::new(),
            },
            v.baseline.map(|b| format!("{b:.1}")).unwrap_or_default(),
            v.candidate.map(|c| format!("{c:.1}")).unwrap_or_default(),
            v.samples.to_string(),
            v.basis.clone(),
        ]);
    }
    out.push_str("\nKPIs\n");
    out.push_str(&t.render());
    if !k.per_host.is_empty() {
        let mut t = Table::new(&["HOST", "STATE", "SAMPLES", "CARDINALITY", "FIDELITY"]);
        for h in &k.per_host {
            let find =
                |name: KpiName| pct(h.kpis.iter().find(|v| v.kpi == name).and_then(|v| v.value));
            t.row(vec![
                h.host.host.clone(),
                h.state.as_ref().map(wire).unwrap_or_default(),
                h.samples.to_string(),
                find(KpiName::CardinalityReductionPct),
                find(KpiName::FidelityPct),
            ]);
        }
        out.push_str("\nPer host\n");
        out.push_str(&t.render());
    }
    if !k.critical_missing.is_empty() {
        let mut t = Table::new(&["CRITICAL MISSING", "SAMPLES"]);
        for m in &k.critical_missing {
            t.row(vec![m.name.clone(), m.samples.to_string()]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if let Some(q) = &k.queries {
        out.push_str(&format!(
            "\nQueries: {} answered, {} changed, {} broken, {} unobserved\n",
            q.answered, q.changed, q.broken, q.unobserved
        ));
        if !q.affected.is_empty() {
            let mut t = Table::new(&["STATUS", "QUERY", "WHERE", "REASONS"]);
            for a in &q.affected {
                t.row(vec![
                    wire(&a.status),
                    a.name.clone(),
                    a.location.clone(),
                    a.reasons.join("; "),
                ]);
            }
            out.push_str(&t.render());
        }
    }
    if let Some(v) = &r.verdict {
        out.push_str("\nCriteria\n");
        out.push_str(&criteria_table(v));
    }
    out
}

fn cost_view(c: &CostAnalysis) -> String {
    let mut pairs = vec![
        ("experiment", c.experiment_id.to_string()),
        ("pricing model", c.pricing_model.clone()),
    ];
    if let Some(m) = &c.measured {
        let currency = &m.baseline.price_source.currency;
        pairs.push((
            "pricing",
            crate::commands::cost::pricing_line(&m.baseline.price_source),
        ));
        pairs.push((
            "billing rule",
            crate::commands::cost::rule_line(&m.baseline.price_source),
        ));
        pairs.push(("baseline quantity", m.baseline.quantity_rule.clone()));
        pairs.push((
            "baseline",
            format!("{} {currency}/month", m.baseline.per_month),
        ));
        pairs.push((
            "candidate",
            format!("{} {currency}/month", m.candidate.per_month),
        ));
        pairs.push(("saving", saving(m)));
    }
    if let Some(f) = &c.fleet {
        pairs.push((
            "fleet",
            format!(
                "{} hosts (from {} measured): saving {}",
                f.fleet_hosts,
                f.measured_hosts,
                saving(&f.savings)
            ),
        ));
    }
    let mut out = key_values(&pairs);
    if !c.recommendations.is_empty() {
        out.push_str("\nRecommendations\n");
        out.push_str(&crate::commands::cost::recommendations_table(
            &c.recommendations,
        ));
    }
    for note in &c.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// `12.50 USD/month, 150.00 USD/year (73.4% less)`.
fn saving(s: &phoenix_api::analysis::Savings) -> String {
    let currency = &s.baseline.price_source.currency;
    let mut out = format!(
        "{} {currency}/month, {} {currency}/year",
        s.saving_per_month, s.saving_per_year
    );
    if let Some(p) = s.reduction_pct {
        out.push_str(&format!(" ({} less)", pct(Some(p))));
    }
    out
}

fn events_view(page: &EventPage) -> String {
    if page.items.is_empty() {
        return "no events\n".to_owned();
    }
    let mut t = Table::new(&["SEQ", "AT", "FROM", "TO", "CAUSE", "ACTOR", "REASON"]);
    for e in &page.items {
        t.row(vec![
            e.seq.to_string(),
            time(&e.at),
            e.from.to_string(),
            e.to.to_string(),
            wire(&e.cause),
            format!("{}:{}", wire(&e.actor.kind), e.actor.name),
            e.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut out = t.render();
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("\nmore: --cursor {cursor} (or --all)\n"));
    }
    out
}
