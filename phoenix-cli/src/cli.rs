//! The command line, as clap derive types. Parsing helpers for values that clap checks
//! (so a malformed value is a usage error, exit code 2) live in `args.rs`.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use phoenix_api::experiment::{Criterion, Phase};
use uuid::Uuid;

use crate::args::{self, KeyValue, Param};

/// The `phoenix` command: drive a Phoenix server from a terminal or a script.
///
/// Exit codes: 0 success; 1 the server refused or failed the request or could not be
/// reached, a Collector config is invalid, or (for `status --watch`) the experiment ended
/// stopped, rolled back or failed; 2 usage error (bad flags, unreadable or invalid input
/// file).
#[derive(Debug, Parser)]
#[command(
    name = "phoenix",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Base URL of the Phoenix server.
    #[arg(
        long,
        global = true,
        env = "PHOENIX_SERVER",
        default_value = "http://127.0.0.1:8080",
        value_parser = args::server_url
    )]
    pub server: String,
    /// API token (a user token: viewer, operator or admin).
    #[arg(long, global = true, env = "PHOENIX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format: human tables, or the API's JSON object, pretty-printed.
    #[arg(
        long,
        short = 'o',
        global = true,
        value_enum,
        env = "PHOENIX_OUTPUT",
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns and key/value lists for people.
    Table,
    /// The exact API object, pretty-printed JSON (parses back into the `phoenix-api` types).
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Experiments: create, start, watch, judge, promote or roll back.
    #[command(subcommand, visible_alias = "exp")]
    Experiment(ExperimentCommand),
    /// Pipeline templates, rendering, validation, preview and quick deployments.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// The agent fleet.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Where the money goes: cost flow and cardinality of the fleet's raw series.
    #[command(subcommand)]
    Cost(CostCommand),
    /// The query inventory: alerting and recording rules, dashboards and PromQL lists
    /// that experiments and recommendations must keep answering.
    #[command(subcommand)]
    Queries(QueriesCommand),
    /// Open the dashboard (`<server>/ui/`) in a browser, or print its URL.
    Ui(UiArgs),
    /// Print a shell completion script to standard output.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `phoenix experiment ...`
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Define an experiment from flags or from a YAML/JSON file.
    Create(Box<CreateArgs>),
    /// List experiments, newest first.
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show one experiment: definition, targets, verdict.
    Get(IdArg),
    /// Deploy both pipelines to the matching agents and start measuring.
    Start(IdArg),
    /// Stop an experiment and remove its pipelines.
    Stop(StopArgs),
    /// Remove the candidate and keep the baseline (graceful by default).
    Rollback(RollbackArgs),
    /// Make the candidate the only pipeline.
    Promote(PromoteArgs),
    /// Phase, progress and latest KPIs; `--watch` follows live until the experiment ends.
    Status(StatusArgs),
    /// KPIs, verdict and per-host breakdown.
    Metrics(IdArg),
    /// Both variants priced, projected savings and recommendations.
    Cost(CostAnalysisArgs),
    /// The experiment's event history (transitions, who, why).
    Events(EventsArgs),
    /// Delete an experiment (only when it was never started or has ended).
    #[command(visible_alias = "rm")]
    Delete(IdArg),
}

/// One experiment.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Experiment id.
    pub id: Uuid,
}

/// `experiment create`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("spec_flags").multiple(true)))]
pub struct CreateArgs {
    /// Read the experiment from a YAML or JSON file (`-`: standard input) instead of flags.
    /// JSON is recognised by a `.json` extension or a leading `{`.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "spec_flags")]
    pub file: Option<String>,
    /// Short human name.
    #[arg(long, group = "spec_flags", required_unless_present = "file")]
    pub name: Option<String>,
    /// Longer description.
    #[arg(long, group = "spec_flags")]
    pub description: Option<String>,
    /// Template of the pipeline in use today [default: baseline].
    #[arg(long, value_name = "TEMPLATE", group = "spec_flags")]
    pub baseline: Option<String>,
    /// A baseline template parameter (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = args::param, group = "spec_flags")]
    pub baseline_param: Vec<Param>,
    /// Template of the cheaper pipeline under test (`phoenix pipeline templates` lists them).
    #[arg(
        long,
        value_name = "TEMPLATE",
        group = "spec_flags",
        required_unless_present = "file"
    )]
    pub candidate: Option<String>,
    /// A candidate template parameter (repeatable). VALUE is JSON when it parses as JSON
    /// (`10`, `true`, `["a","b"]`), else a string.
    #[arg(
        long,
        visible_alias = "candidate-param",
        value_name = "KEY=VALUE",
        value_parser = args::param,
        group = "spec_flags"
    )]
    pub param: Vec<Param>,
    /// Target agents must carry this label (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = args::key_value, group = "spec_flags")]
    pub label: Vec<KeyValue>,
    /// Target only this host name or agent id (repeatable).
    #[arg(long, value_name = "HOST", group = "spec_flags")]
    pub host: Vec<String>,
    /// How long both pipelines run side by side (`600`, `90s`, `10m`, `1h30m`).
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = args::duration_secs,
        group = "spec_flags",
        required_unless_present = "file"
    )]
    pub duration: Option<u64>,
    /// Samples in the first part of the run are not judged.
    #[arg(long, value_name = "DURATION", value_parser = args::duration_secs, group = "spec_flags")]
    pub warmup: Option<u64>,
    /// A process that must stay visible: executable name or `*` glob (repeatable).
    #[arg(long, value_name = "NAME", group = "spec_flags")]
    pub critical_process: Vec<String>,
    /// A metric name pattern that must stay visible (repeatable).
    #[arg(long, value_name = "PATTERN", group = "spec_flags")]
    pub critical_metric: Vec<String>,
    /// A success criterion, `KPI>=N` or `KPI<=N`, `:critical` appended to make a miss fail
    /// the verdict (repeatable; replaces the default criteria). KPIs:
    /// cardinality_reduction_pct, data_point_reduction_pct, cost_reduction_pct,
    /// fidelity_pct, critical_coverage_pct, agent_cpu_overhead_pct (agent_rss_overhead_pct
    /// is refused: no agent measures per-variant memory), queries_broken (a count of
    /// inventoried queries; with an inventory, `queries_broken<=0:critical` is added unless
    /// a criterion on it is given).
    #[arg(long, value_name = "CRITERION", value_parser = args::criterion, group = "spec_flags")]
    pub criterion: Vec<Criterion>,
    /// Roll back automatically on a failing verdict.
    #[arg(long, group = "spec_flags")]
    pub auto_rollback: bool,
    /// Promote automatically on a passing verdict.
    #[arg(long, group = "spec_flags")]
    pub auto_promote: bool,
    /// Automatic promotion needs at least N hosts that each meet every critical criterion
    /// on their own values (default 2).
    #[arg(long, value_name = "N", group = "spec_flags")]
    pub auto_promote_min_hosts: Option<u32>,
    /// Pricing catalogue entry the cost is reported in.
    #[arg(long, value_name = "MODEL", group = "spec_flags")]
    pub pricing_model: Option<String>,
    /// Fail when fewer live agents remain.
    #[arg(long, value_name = "N", group = "spec_flags")]
    pub min_agents: Option<u32>,
    /// Agents sample both pipelines this often.
    #[arg(long, value_name = "DURATION", value_parser = args::duration_secs_u32, group = "spec_flags")]
    pub sample_interval: Option<u32>,
    /// Print the request that would be sent (JSON) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `experiment list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only experiments in this phase (repeatable).
    #[arg(long, value_parser = args::phase)]
    pub phase: Vec<Phase>,
    /// Page size.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after this cursor (a previous page's `next_cursor`).
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow cursors and list every page.
    #[arg(long)]
    pub all: bool,
}

/// `experiment stop`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Why (recorded in the event history).
    #[arg(long)]
    pub reason: Option<String>,
}

/// `experiment rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Remove the candidate at once with the highest priority, instead of waiting for every
    /// agent to confirm the baseline alone serves.
    #[arg(long)]
    pub instant: bool,
    /// Why (recorded as rollback provenance).
    #[arg(long)]
    pub reason: Option<String>,
}

/// `experiment promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Promote without a passing verdict (admin only).
    #[arg(long)]
    pub force: bool,
    /// Why.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `experiment status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Follow the experiment live (WebSocket) until it completes, is promoted, or ends;
    /// exit 0 for completed or promoted, 1 for stopped, rolled back or failed.
    #[arg(long, short = 'w')]
    pub watch: bool,
}

/// `experiment cost`.
#[derive(Debug, Args)]
pub struct CostAnalysisArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Also project the savings to a fleet of this many hosts.
    #[arg(long, value_name = "N")]
    pub fleet_hosts: Option<u64>,
}

/// `experiment events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Experiment id.
    pub id: Uuid,
    /// Page size.
    #[arg(long)]
    pub limit: Option<u32>,
    /// Continue after this cursor.
    #[arg(long, conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow cursors and list every page.
    #[arg(long)]
    pub all: bool,
}

/// `phoenix pipeline ...`
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// List the templates, or show one template's parameters.
    Templates {
        /// Show this template's parameters.
        name: Option<String>,
    },
    /// Render a template to OpenTelemetry Collector YAML (validated).
    Render(PipelineArgs),
    /// Validate an OpenTelemetry Collector config file (`-`: standard input).
    Validate {
        /// The file.
        file: String,
    },
    /// Project a template's effect on a recorded sample (Prometheus text exposition) or on
    /// an agent's recorded snapshot, optionally priced.
    Preview(PreviewArgs),
    /// Roll a pipeline out to the agents of a selector in growing batches.
    Deploy(Box<DeployArgs>),
    /// List quick deployments, or show one with its agents.
    Deployments(DeploymentsArgs),
    /// Pause a deployment: no new batch starts.
    Pause(DeploymentIdArg),
    /// Resume a paused deployment, retrying failed agents.
    Resume(DeploymentIdArg),
    /// Roll a deployment back to the previous pipeline.
    Rollback(DeploymentIdArg),
}

/// A template with parameters and critical sets.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Template name.
    #[arg(long, short = 't')]
    pub template: String,
    /// A template parameter (repeatable); VALUE is JSON when it parses as JSON, else a string.
    #[arg(long, value_name = "KEY=VALUE", value_parser = args::param)]
    pub param: Vec<Param>,
    /// A process that must always pass (repeatable).
    #[arg(long, value_name = "NAME")]
    pub critical_process: Vec<String>,
    /// A metric pattern that must always pass (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub critical_metric: Vec<String>,
}

/// `pipeline preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Template and parameters.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// A recorded sample in Prometheus text exposition format (e.g. saved from an agent's
    /// `/metrics/baseline`; `-`: standard input).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "agent",
        conflicts_with = "agent"
    )]
    pub sample: Option<String>,
    /// Preview on this agent's recorded input instead: the latest cardinality snapshot it
    /// sent the server.
    #[arg(long, value_name = "AGENT_ID")]
    pub agent: Option<uuid::Uuid>,
    /// With `--sample`: the seconds the sample covers (one point per series), needed to
    /// price it.
    #[arg(long, value_name = "SECONDS", conflicts_with = "agent")]
    pub interval: Option<u32>,
    /// Price the input and the output under this pricing model (a catalogue id, e.g.
    /// `grafana_cloud`).
    #[arg(long, value_name = "MODEL")]
    pub pricing_model: Option<String>,
}

/// `pipeline deploy`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true)))]
pub struct DeployArgs {
    /// Human name.
    #[arg(long)]
    pub name: String,
    /// Template to deploy.
    #[arg(long, short = 't', group = "what")]
    pub template: Option<String>,
    /// A template parameter (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = args::param, requires = "template")]
    pub param: Vec<Param>,
    /// Roll out the candidate of this (promoted) experiment.
    #[arg(long, value_name = "ID", group = "what")]
    pub experiment: Option<Uuid>,
    /// Template a rollback restores (default: the experiment's baseline, else `baseline`).
    #[arg(long, value_name = "TEMPLATE")]
    pub rollback_to: Option<String>,
    /// Agents must carry this label (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = args::key_value)]
    pub label: Vec<KeyValue>,
    /// Only this host name or agent id (repeatable).
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Agents in the first batch.
    #[arg(long, value_name = "N")]
    pub initial_batch: Option<u32>,
    /// Each batch is this many times the previous.
    #[arg(long, value_name = "N")]
    pub growth_factor: Option<u32>,
    /// No batch is larger.
    #[arg(long, value_name = "N")]
    pub max_batch: Option<u32>,
}

/// `pipeline deployments`.
#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    /// Show this deployment with its agents.
    pub id: Option<Uuid>,
    /// Page size.
    #[arg(long, conflicts_with = "id")]
    pub limit: Option<u32>,
    /// Continue after this cursor.
    #[arg(long, conflicts_with_all = ["id", "all"])]
    pub cursor: Option<String>,
    /// Follow cursors and list every page.
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
}

/// One deployment.
#[derive(Debug, Args)]
pub struct DeploymentIdArg {
    /// Deployment id.
    pub id: Uuid,
}

/// `phoenix fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Agents, health, versions, active pipelines.
    Status,
    /// Ask every live agent for a cardinality snapshot of its inputs now (agents also
    /// send one on the server's schedule).
    Snapshot,
}

/// `phoenix queries ...`
#[derive(Debug, Subcommand)]
pub enum QueriesCommand {
    /// Import files into the inventory (a file imported again under the same name replaces
    /// its earlier import).
    Import {
        /// Prometheus rule files (YAML), Grafana dashboard exports (JSON) or PromQL lists
        /// (one query a line, `#` comments).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
        /// What the files are [default: from the extension, then the content].
        #[arg(long, value_enum)]
        kind: Option<QuerySourceKind>,
        /// The source's name [default: the file name]; only with one file.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the imported sources (with `--queries`, every query and what it needs).
    #[command(visible_alias = "ls")]
    List {
        /// List every query with its metrics and needed labels.
        #[arg(long)]
        queries: bool,
    },
    /// Remove an imported source.
    Delete {
        /// Source id.
        id: Uuid,
    },
}

/// What a query source file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuerySourceKind {
    /// A Prometheus rule file (YAML).
    RuleFile,
    /// A Grafana dashboard export (JSON).
    GrafanaDashboard,
    /// Plain PromQL, one query a line.
    PromqlList,
}

/// `phoenix cost ...`
#[derive(Debug, Subcommand)]
pub enum CostCommand {
    /// Cost by metric, service, namespace and host, with recommendations.
    Flow {
        /// Pricing catalogue entry [server default: grafana-cloud-pro].
        #[arg(long, value_name = "MODEL")]
        pricing_model: Option<String>,
        /// A breakdown: metric, host, service, namespace or label:<key> (repeatable).
        #[arg(long, value_name = "DIMENSION")]
        dimension: Vec<String>,
        /// Also recommend actions under which an inventoried query answers differently
        /// (groups merge, output series lose a label); never one that breaks a query.
        #[arg(long)]
        allow_changed_queries: bool,
    },
    /// Series by namespace, service, metric and label.
    Cardinality {
        /// A breakdown: metric, host, service, namespace or label:<key> (repeatable).
        #[arg(long, value_name = "DIMENSION")]
        dimension: Vec<String>,
        /// Top groups per breakdown.
        #[arg(long, value_name = "N")]
        top: Option<u32>,
        /// Also price the flow under this catalogue entry.
        #[arg(long, value_name = "MODEL")]
        pricing_model: Option<String>,
    },
    /// The fleet's cost over time (hourly or daily), promotions and rollbacks in the
    /// range, and what a month and a year cost, measured or projected.
    History(HistoryArgs),
}

/// `phoenix cost history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Bucket size: hour or day [server default: hour].
    #[arg(long, value_name = "GRANULARITY", value_parser = crate::args::history_granularity)]
    pub granularity: Option<phoenix_api::analysis::HistoryGranularity>,
    /// Rows besides the total: total, metric, service, namespace or host [server default:
    /// total].
    #[arg(long, value_name = "BREAKDOWN", value_parser = crate::args::history_breakdown)]
    pub breakdown: Option<phoenix_api::analysis::HistoryBreakdown>,
    /// Pricing catalogue entry [server default: grafana-cloud-pro].
    #[arg(long, value_name = "MODEL")]
    pub pricing_model: Option<String>,
    /// Start, RFC 3339 (`2026-06-01T00:00:00Z`) [server default: 7 days (hours) or 90
    /// days (days) before the end].
    #[arg(long, value_name = "TIME")]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// End, exclusive, RFC 3339 [server default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// `phoenix ui`.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Only print the URL.
    #[arg(long)]
    pub print: bool,
}
