//! `phoenix pipeline ...`

use phoenix_api::deployment::{Deployment, DeploymentPage, NewDeployment, RolloutStrategy};
use phoenix_api::experiment::TargetSelector;
use phoenix_api::pipeline::{
    PipelineRef, Preview, PreviewRequest, RenderRequest, RenderResponse, TemplateInfo,
    TemplateList, ValidationResult,
};
use phoenix_client::DeploymentCommand;

use crate::Context;
use crate::cli::{DeployArgs, PipelineArgs, PipelineCommand};
use crate::error::CliError;
use crate::experiment_file::{pipeline_ref, read_input};
use crate::output::{self, bytes, pct, time, wire};
use crate::table::{Table, key_values};

pub(crate) async fn run(cx: &Context, command: PipelineCommand) -> Result<(), CliError> {
    let client = &cx.client;
    match command {
        PipelineCommand::Templates { name } => {
            let list = client.templates().await.map_err(|e| cx.err(e))?;
            match name {
                None => cx.printer.show(&list, templates_view),
                Some(name) => {
                    let Some(template) = list.items.into_iter().find(|t| t.name == name) else {
                        return Err(CliError::Unsuccessful(format!(
                            "no template `{name}` (`phoenix pipeline templates` lists them)"
                        )));
                    };
                    cx.printer.show(&template, template_view);
                }
            }
            Ok(())
        }
        PipelineCommand::Render(args) => {
            let response = client
                .render_pipeline(&render_request(&args))
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&response, |r: &RenderResponse| {
                r.rendered.collector_yaml.clone()
            });
            if !cx.printer.is_json() {
                eprintln!("config hash: {}", response.rendered.config_hash);
            }
            invalid_is_failure(&response.validation)
        }
        PipelineCommand::Validate { file } => {
            let text = read_input(&file)?;
            let result = client
                .validate_pipeline(&text)
                .await
                .map_err(|e| cx.err(e))?;
            let name = if file == "-" {
                "<stdin>"
            } else {
                file.as_str()
            };
            cx.printer.show(&result, |r| validation_view(name, r));
            invalid_is_failure(&result)
        }
        PipelineCommand::Preview(args) => {
            let exposition = args.sample.as_deref().map(read_input).transpose()?;
            let request = PreviewRequest {
                pipeline: pipeline_ref(&args.pipeline.template, &args.pipeline.param),
                critical_processes: args.pipeline.critical_process.clone(),
                critical_metrics: args.pipeline.critical_metric.clone(),
                exposition,
                interval_secs: args.interval,
                agent_id: args.agent,
                pricing_model: args.pricing_model.clone(),
            };
            let preview = client
                .preview_pipeline(&request)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&preview, preview_view);
            Ok(())
        }
        PipelineCommand::Deploy(args) => {
            let deployment = client
                .create_deployment(&new_deployment(&args))
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.show(&deployment, deployment_view);
            Ok(())
        }
        PipelineCommand::Deployments(args) => {
            if let Some(id) = args.id {
                let d = client.get_deployment(id).await.map_err(|e| cx.err(e))?;
                cx.printer.show(&d, deployment_view);
                return Ok(());
            }
            let mut page = client
                .list_deployments(args.cursor, args.limit)
                .await
                .map_err(|e| cx.err(e))?;
            while args.all && page.next_cursor.is_some() {
                let next = client
                    .list_deployments(page.next_cursor.take(), args.limit)
                    .await
                    .map_err(|e| cx.err(e))?;
                page.items.extend(next.items);
                page.next_cursor = next.next_cursor;
            }
            cx.printer.show(&page, deployments_view);
            Ok(())
        }
        PipelineCommand::Pause(id) => deployment_command(cx, id.id, DeploymentCommand::Pause).await,
        PipelineCommand::Resume(id) => {
            deployment_command(cx, id.id, DeploymentCommand::Resume).await
        }
        PipelineCommand::Rollback(id) => {
            deployment_command(cx, id.id, DeploymentCommand::Rollback).await
        }
    }
}

async fn deployment_command(
    cx: &Context,
    id: uuid::Uuid,
    verb: DeploymentCommand,
) -> Result<(), CliError> {
    let d = cx
        .client
        .deployment_command(id, verb)
        .await
        .map_err(|e| cx.err(e))?;
    cx.printer.show(&d, deployment_view);
    Ok(())
}

fn invalid_is_failure(v: &ValidationResult) -> Result<(), CliError> {
    if v.valid {
        Ok(())
    } else {
        Err(CliError::Unsuccessful(format!(
            "the Collector config is invalid ({} issue{})",
            v.issues.len(),
            if v.issues.len() == 1 { "" } else { "s" }
        )))
    }
}

fn render_request(args: &PipelineArgs) -> RenderRequest {
    RenderRequest {
        pipeline: pipeline_ref(&args.template, &args.param),
        critical_processes: args.critical_process.clone(),
        critical_metrics: args.critical_metric.clone(),
    }
}

fn new_deployment(args: &DeployArgs) -> NewDeployment {
    let defaults = RolloutStrategy::default();
    NewDeployment {
        name: args.name.clone(),
        pipeline: args
            .template
            .as_deref()
            .map(|t| pipeline_ref(t, &args.param)),
        rollback_to: args.rollback_to.as_deref().map(PipelineRef::new),
        selector: TargetSelector {
            labels: args
                .label
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect(),
            hosts: args.host.clone(),
        },
        experiment_id: args.experiment,
        strategy: RolloutStrategy {
            initial_batch: args.initial_batch.unwrap_or(defaults.initial_batch),
            growth_factor: args.growth_factor.unwrap_or(defaults.growth_factor),
            max_batch: args.max_batch.unwrap_or(defaults.max_batch),
        },
    }
}

fn templates_view(list: &TemplateList) -> String {
    let mut t = Table::new(&["NAME", "PARAMS", "DESCRIPTION"]);
    for template in &list.items {
        t.row(vec![
            template.name.clone(),
            template.params.len().to_string(),
            template.description.clone(),
        ]);
    }
    let mut out = t.render();
    out.push_str("\nparameters of one: phoenix pipeline templates NAME\n");
    out
}

fn template_view(template: &TemplateInfo) -> String {
    let mut out = key_values(&[
        ("template", template.name.clone()),
        ("description", template.description.clone()),
        ("collector notes", template.collector_notes.clone()),
    ]);
    let mut t = Table::new(&["PARAMETER", "TYPE", "DEFAULT", "ALLOWED", "DESCRIPTION"]);
    for p in &template.params {
        let mut allowed = Vec::new();
        if p.min.is_some() || p.max.is_some() {
            allowed.push(format!(
                "{}..{}",
                p.min.map(|v| v.to_string()).unwrap_or_default(),
                p.max.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
        if let Some(values) = &p.values {
            allowed.push(values.join("|"));
        }
        if let Some(len) = p.max_len {
            allowed.push(format!("<= {len} bytes"));
        }
        if p.min_items.is_some() || p.max_items.is_some() {
            allowed.push(format!(
                "{}..{} items",
                p.min_items.unwrap_or(0),
                p.max_items.map(|v| v.to_string()).unwrap_or_default()
            ));
        }
        t.row(vec![
            p.name.clone(),
            wire(&p.kind),
            p.default.to_string(),
            allowed.join(" "),
            p.description.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

fn validation_view(name: &str, r: &ValidationResult) -> String {
    if r.valid {
        let mut t = Table::new(&["PIPELINE", "RECEIVERS", "PROCESSORS", "EXPORTERS"]);
        for p in &r.pipelines {
            t.row(vec![
                p.name.clone(),
                p.receivers.join(","),
                p.processors.join(","),
                p.exporters.join(","),
            ]);
        }
        format!("{name}: valid\n\n{}", t.render())
    } else {
        let mut t = Table::new(&["LOCATION", "PATH", "ISSUE"]);
        for i in &r.issues {
            t.row(vec![
                match (i.line, i.column) {
                    (Some(l), Some(c)) => format!("{name}:{l}:{c}"),
                    (Some(l), None) => format!("{name}:{l}"),
                    _ => name.to_owned(),
                },
                i.path.clone(),
                i.message.clone(),
            ]);
        }
        t.render()
    }
}

fn preview_view(p: &Preview) -> String {
    let mut out = key_values(&[
        ("template", p.template.clone()),
        (
            "params",
            output::pipeline(&PipelineRef {
                template: String::new(),
                params: p.params.clone(),
            })
            .trim_start()
            .to_owned(),
        ),
        ("critical coverage", pct(Some(p.critical_coverage_pct))),
        (
            "fidelity",
            format!(
                "cpu {}, memory {}",
                pct(p.fidelity.cpu_pct),
                pct(p.fidelity.memory_pct)
            ),
        ),
    ]);
    let mut t = Table::new(&["MEASURE", "INPUT", "OUTPUT", "REDUCTION"]);
    t.row(vec![
        "series".to_owned(),
        p.input.series.to_string(),
        p.output.series.to_string(),
        pct(Some(p.series_reduction_pct)),
    ]);
    t.row(vec![
        "data points".to_owned(),
        p.input.points.to_string(),
        p.output.points.to_string(),
        pct(Some(p.points_reduction_pct)),
    ]);
    t.row(vec![
        "bytes".to_owned(),
        bytes(p.input.bytes),
        bytes(p.output.bytes),
        pct(Some(p.bytes_reduction_pct)),
    ]);
    t.row(vec![
        "process series".to_owned(),
        String::new(),
        String::new(),
        pct(Some(p.process_series_reduction_pct)),
    ]);
    out.push('\n');
    out.push_str(&t.render());
    if let Some(s) = &p.snapshot {
        out.push_str(&format!(
            "\non agent {} ({})'s snapshot of {} ({} s)\n",
            s.agent_id,
            s.host,
            time(&s.taken_at),
            s.interval_secs
        ));
    }
    if let Some(c) = &p.cost {
        let mut t = Table::new(&["COST", "PER MONTH", "PER YEAR", "BILLED QUANTITY"]);
        for (what, b) in [("input", &c.input), ("output", &c.output)] {
            t.row(vec![
                what.to_owned(),
                b.per_month.clone(),
                b.per_year.clone(),
                format!("{} {}", b.quantity, b.unit),
            ]);
        }
        out.push_str(&format!(
            "\ncost under {} ({} {}): saving {} per month{}\n{}",
            c.pricing_model,
            c.input.price_source.vendor,
            c.input.price_source.currency,
            c.saving_per_month,
            c.reduction_pct
                .map(|r| format!(" ({})", pct(Some(r))))
                .unwrap_or_default(),
            t.render()
        ));
    }
    if let Some(q) = &p.queries {
        out.push_str(&format!(
            "\nqueries kept: {} answered, {} changed, {} broken, {} unobserved\n",
            q.answered, q.changed, q.broken, q.unobserved
        ));
        for v in &q.affected {
            out.push_str(&format!(
                "  {} {} ({}): {}\n",
                wire(&v.status),
                v.name,
                v.location,
                v.reasons.join("; ")
            ));
        }
    }
    out
}

fn deployment_view(d: &Deployment) -> String {
    let p = &d.progress;
    let mut out = key_values(&[
        ("id", d.id.to_string()),
        ("name", d.name.clone()),
        ("pipeline", output::pipeline(&d.pipeline)),
        ("state", wire(&d.state)),
        (
            "progress",
            format!(
                "{} agents: {} completed, {} in progress, {} pending, {} errors, {} rolled back",
                p.total, p.completed, p.in_progress, p.pending, p.errors, p.rolled_back
            ),
        ),
        (
            "experiment",
            d.experiment_id.map(|e| e.to_string()).unwrap_or_default(),
        ),
        (
            "created",
            format!("{} by {}", time(&d.created_at), d.created_by),
        ),
        ("last error", d.last_error.clone().unwrap_or_default()),
    ]);
    if !d.targets.is_empty() {
        let mut t = Table::new(&["AGENT", "HOST", "STATE", "BATCH", "DETAIL"]);
        for target in &d.targets {
            t.row(vec![
                target.agent_id.to_string(),
                target.host.clone(),
                wire(&target.state),
                target.batch.map(|b| b.to_string()).unwrap_or_default(),
                target.detail.clone().unwrap_or_default(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out
}

fn deployments_view(page: &DeploymentPage) -> String {
    if page.items.is_empty() {
        return "no deployments\n".to_owned();
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "TEMPLATE",
        "STATE",
        "AGENTS",
        "COMPLETED",
        "ERRORS",
        "CREATED",
    ]);
    for d in &page.items {
        t.row(vec![
            d.id.to_string(),
            d.name.clone(),
            d.pipeline.template.clone(),
            wire(&d.state),
            d.progress.total.to_string(),
            d.progress.completed.to_string(),
            d.progress.errors.to_string(),
            time(&d.created_at),
        ]);
    }
    let mut out = t.render();
    if let Some(cursor) = &page.next_cursor {
        out.push_str(&format!("\nmore: --cursor {cursor} (or --all)\n"));
    }
    out
}
