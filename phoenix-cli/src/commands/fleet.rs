//! `phoenix fleet ...`

use phoenix_api::agent::FleetStatus;

use crate::Context;
use crate::cli::FleetCommand;
use crate::error::CliError;
use crate::output::{bytes, labels, time, wire};
use crate::table::{Table, key_values};

pub(crate) async fn run(cx: &Context, command: FleetCommand) -> Result<(), CliError> {
    match command {
        FleetCommand::Status => {
            let status = cx.client.fleet_status().await.map_err(|e| cx.err(e))?;
            cx.printer.show(&status, fleet_view);
            Ok(())
        }
        FleetCommand::Snapshot => {
            let refresh = cx.client.refresh_snapshots().await.map_err(|e| cx.err(e))?;
            cx.printer.show(&refresh, |r| {
                format!(
                    "snapshot requested from {} live agents ({} had one pending already)\n",
                    r.requested, r.already_pending
                )
            });
            Ok(())
        }
    }
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `2 (1 healthy, 1 starting)`: names are long (`experiment/<id>/candidate`), see JSON.
fn pipelines(pipelines: &[phoenix_api::agent::ActivePipeline]) -> String {
    if pipelines.is_empty() {
        return "0".to_owned();
    }
    let mut by_health = std::collections::BTreeMap::<String, usize>::new();
    for p in pipelines {
        *by_health.entry(wire(&p.health)).or_default() += 1;
    }
    let parts: Vec<String> = by_health.iter().map(|(h, n)| format!("{n} {h}")).collect();
    format!("{} ({})", pipelines.len(), parts.join(", "))
}

fn fleet_view(f: &FleetStatus) -> String {
    let s = &f.summary;
    let mut out = key_values(&[
        (
            "agents",
            format!(
                "{} ({} healthy, {} degraded, {} lost, {} revoked)",
                s.total, s.healthy, s.degraded, s.lost, s.revoked
            ),
        ),
        ("versions", counts(&s.versions)),
        ("pipelines", counts(&s.pipelines_by_template)),
        ("unhealthy pipelines", s.unhealthy_pipelines.to_string()),
        (
            "refused reports",
            format!(
                "{} (from {} agent(s))",
                s.refused_reports, s.agents_with_refused_reports
            ),
        ),
        ("active experiments", s.active_experiments.to_string()),
        ("promoted experiments", s.promoted_experiments.to_string()),
    ]);
    if f.agents.is_empty() {
        out.push_str("\nno agents\n");
        return out;
    }
    let mut t = Table::new(&[
        "ID",
        "HOST",
        "STATUS",
        "VERSION",
        "LAST HEARTBEAT",
        "CPU",
        "AGENT RSS",
        "PIPELINES",
        "REFUSED",
        "LABELS",
    ]);
    for a in &f.agents {
        t.row(vec![
            a.id.to_string(),
            a.host.clone(),
            wire(&a.status),
            a.version.clone(),
            time(&a.last_heartbeat),
            format!("{:.1}%", a.resources.cpu_pct),
            bytes(a.resources.agent_rss_bytes),
            pipelines(&a.pipelines),
            a.refused_reports.to_string(),
            labels(&a.labels),
        ]);
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}
