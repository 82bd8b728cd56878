//! Command line, environment (`PHOENIX_*`) and TOML file configuration. Precedence:
//! flags, then environment, then the file, then defaults. Unknown file keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::config::ServerConfig;
use crate::store::StoreUrl;

/// Phoenix control plane.
#[derive(Debug, Parser)]
#[command(name = "phoenix-server", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serve options (when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(Box<ServeArgs>),
    /// Development mode: in-memory store, generated tokens, printed URLs.
    Dev(DevArgs),
    /// Print the OpenAPI document and exit.
    Openapi,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Options of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in the configuration guide).
    #[arg(long, env = "PHOENIX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long, env = "PHOENIX_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Second listener serving only the WebSocket (e.g. 0.0.0.0:8081).
    #[arg(long, env = "PHOENIX_WS_LISTEN")]
    pub ws_listen: Option<SocketAddr>,
    /// Store URL: memory:, postgres://..., redis://... [default: memory:].
    #[arg(long, env = "PHOENIX_STORE")]
    pub store: Option<String>,
    /// Key prefix (Redis) or schema (Postgres) for this deployment [default: phoenix].
    #[arg(long, env = "PHOENIX_STORE_NAMESPACE")]
    pub store_namespace: Option<String>,
    /// Bootstrap admin token secret (>= 16 characters).
    #[arg(long, env = "PHOENIX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Agent enrollment token (>= 16 characters).
    #[arg(long, env = "PHOENIX_ENROLLMENT_TOKEN", hide_env_values = true)]
    pub enrollment_token: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "PHOENIX_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info,phoenix_server=debug` [default: info].
    #[arg(long, env = "PHOENIX_LOG")]
    pub log: Option<String>,
    /// Largest request body, bytes [default: 1048576].
    #[arg(long, env = "PHOENIX_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest `POST /agent/metrics` and `POST /pipelines/preview` body (a host's sample),
    /// bytes [default: 33554432].
    #[arg(long, env = "PHOENIX_MAX_METRICS_BODY_BYTES")]
    pub max_metrics_body_bytes: Option<usize>,
    /// Request body bytes held at once by all requests, more are answered 503 [default: 134217728].
    #[arg(long, env = "PHOENIX_MAX_BODIES_IN_FLIGHT_BYTES")]
    pub max_bodies_in_flight_bytes: Option<usize>,
    /// Time a client has to send a whole request body, seconds, else 408 [default: 30].
    #[arg(long, env = "PHOENIX_BODY_READ_TIMEOUT_SECS")]
    pub body_read_timeout_secs: Option<u64>,
    /// Default long-poll wait, seconds [default: 30].
    #[arg(long, env = "PHOENIX_POLL_WAIT_SECS")]
    pub poll_wait_secs: Option<u64>,
    /// Longest long-poll wait a client may ask for, seconds [default: 60].
    #[arg(long, env = "PHOENIX_MAX_POLL_WAIT_SECS")]
    pub max_poll_wait_secs: Option<u64>,
    /// Sustained requests per second per agent [default: 20].
    #[arg(long, env = "PHOENIX_AGENT_RATE_PER_SEC")]
    pub agent_rate_per_sec: Option<f64>,
    /// Request burst per agent [default: 100].
    #[arg(long, env = "PHOENIX_AGENT_RATE_BURST")]
    pub agent_rate_burst: Option<u32>,
    /// Failed authentications per second per client address and agent id, beyond which 429 [default: 1].
    #[arg(long, env = "PHOENIX_FAILED_AUTH_RATE_PER_SEC")]
    pub failed_auth_rate_per_sec: Option<f64>,
    /// Burst of failed authentications above that rate [default: 20].
    #[arg(long, env = "PHOENIX_FAILED_AUTH_BURST")]
    pub failed_auth_burst: Option<u32>,
    /// Do not run the controller loop in this process.
    #[arg(long, env = "PHOENIX_NO_CONTROLLER")]
    pub no_controller: bool,
    /// Controller tick interval, milliseconds [default: 1000].
    #[arg(long, env = "PHOENIX_CONTROLLER_INTERVAL_MS")]
    pub controller_interval_ms: Option<u64>,
    /// Graceful shutdown limit, seconds [default: 30].
    #[arg(long, env = "PHOENIX_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Time a client has to send a request head, and longest idle keep-alive, seconds [default: 30].
    #[arg(long, env = "PHOENIX_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Connections open at once, more are answered 503 [default: the open-file limit less 128].
    #[arg(long, env = "PHOENIX_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address, more are answered 503 [default: 1024].
    #[arg(long, env = "PHOENIX_MAX_CONNECTIONS_PER_CLIENT")]
    pub max_connections_per_client: Option<usize>,
    /// Public base URL (for printed links).
    #[arg(long, env = "PHOENIX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Task lease granted by a claim, seconds (agents extend it while a task runs) [default: 60].
    #[arg(long, env = "PHOENIX_LEASE_SECS")]
    pub lease_secs: Option<u64>,
    /// Expected agent heartbeat interval, seconds (an agent is lost after 3 missed) [default: 10].
    #[arg(long, env = "PHOENIX_AGENT_HEARTBEAT_SECS")]
    pub agent_heartbeat_secs: Option<u64>,
    /// Agents snapshot their inputs' cardinality this often, seconds (told in every
    /// heartbeat answer) [default: 60].
    #[arg(long, env = "PHOENIX_SNAPSHOT_INTERVAL_SECS")]
    pub snapshot_interval_secs: Option<u64>,
    /// A host no longer live (lost, revoked) leaves the fleet's cost and cardinality views
    /// this long after its last snapshot, seconds [default: 900].
    #[arg(long, env = "PHOENIX_SNAPSHOT_RETENTION_SECS")]
    pub snapshot_retention_secs: Option<u64>,
    /// The most the fleet's cost flow, cardinality and recommendations may lag the stored
    /// snapshots, seconds: each replica memoizes them and recomputes in the background
    /// after half of this; 0 computes them on every request [default: 10].
    #[arg(long, env = "PHOENIX_FLEET_VIEW_STALENESS_SECS")]
    pub fleet_view_staleness_secs: Option<u64>,
    /// Cost history: one observation of the fleet per this many seconds, a whole number
    /// of minutes (60 to 3600) [default: 60].
    #[arg(long, env = "PHOENIX_HISTORY_INTERVAL_SECS")]
    pub history_interval_secs: Option<u64>,
    /// Cost history: hourly buckets are kept this many days (1 to 41) [default: 14].
    #[arg(long, env = "PHOENIX_HISTORY_HOURLY_RETENTION_DAYS")]
    pub history_hourly_retention_days: Option<u64>,
    /// Cost history: daily buckets are kept this many days (1 to 3660) [default: 400].
    #[arg(long, env = "PHOENIX_HISTORY_DAILY_RETENTION_DAYS")]
    pub history_daily_retention_days: Option<u64>,
    /// An agent's health history keeps its heartbeats of this long (at most 360 per agent),
    /// seconds [default: 3600].
    #[arg(long, env = "PHOENIX_HEALTH_RETENTION_SECS")]
    pub health_retention_secs: Option<u64>,
    /// Pricing catalogue file (TOML, the built-in format): its entries replace built-ins
    /// with the same `id` and add the others [default: the built-in catalogue].
    #[arg(long, env = "PHOENIX_PRICING_FILE")]
    pub pricing_file: Option<PathBuf>,
}

/// Longest health retention accepted, seconds (a week; the per-agent cap bounds the
/// history anyway).
pub const MAX_HEALTH_RETENTION_SECS: u64 = 7 * 86_400;

/// Options of `dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "PHOENIX_DEV_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Log filter [default: info].
    #[arg(long, env = "PHOENIX_LOG")]
    pub log: Option<String>,
    /// Do not start the local agent and its demo experiment.
    #[arg(long)]
    pub no_agent: bool,
    /// The local agent's exposition listener (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:9460")]
    pub agent_listen: SocketAddr,
    /// How long the demo experiment runs, seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(20..=86_400))]
    pub demo_secs: u64,
    /// What runs the local agent's pipelines: the built-in engine, or a real OpenTelemetry
    /// Collector the agent supervises and measures through its tap.
    #[arg(long, value_enum, default_value = "native")]
    pub runtime: phoenix_agent::RuntimeKind,
    /// The Collector binary of `--runtime otelcol` (default: `otelcol-contrib` on the PATH).
    #[arg(long)]
    pub otelcol_binary: Option<PathBuf>,
}

/// The TOML file: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    listen: Option<SocketAddr>,
    ws_listen: Option<SocketAddr>,
    store: Option<String>,
    store_namespace: Option<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
    admin_token: Option<String>,
    enrollment_token: Option<String>,
    max_body_bytes: Option<usize>,
    max_metrics_body_bytes: Option<usize>,
    max_bodies_in_flight_bytes: Option<usize>,
    body_read_timeout_secs: Option<u64>,
    poll_wait_secs: Option<u64>,
    max_poll_wait_secs: Option<u64>,
    agent_rate_per_sec: Option<f64>,
    agent_rate_burst: Option<u32>,
    failed_auth_rate_per_sec: Option<f64>,
    failed_auth_burst: Option<u32>,
    controller: Option<bool>,
    controller_interval_ms: Option<u64>,
    ws_buffer: Option<usize>,
    ws_max_message_bytes: Option<usize>,
    ws_heartbeat_secs: Option<u64>,
    ws_max_per_token: Option<usize>,
    shutdown_grace_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    public_url: Option<String>,
    lease_secs: Option<u64>,
    agent_heartbeat_secs: Option<u64>,
    snapshot_interval_secs: Option<u64>,
    snapshot_retention_secs: Option<u64>,
    fleet_view_staleness_secs: Option<u64>,
    history_interval_secs: Option<u64>,
    history_hourly_retention_days: Option<u64>,
    history_daily_retention_days: Option<u64>,
    health_retention_secs: Option<u64>,
    pricing_file: Option<PathBuf>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Listen address.
    pub listen: SocketAddr,
    /// WebSocket-only listen address.
    pub ws_listen: Option<SocketAddr>,
    /// Store.
    pub store: StoreUrl,
    /// Store namespace.
    pub store_namespace: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// Server configuration.
    pub server: ServerConfig,
    /// The facade's tunables (lease, heartbeat interval).
    pub phoenix: phoenix_core::PhoenixConfig,
    /// The pricing catalogue (built-ins, with the pricing file's entries applied).
    pub catalogue: std::sync::Arc<phoenix_core::cost::Catalogue>,
}

/// Configuration errors (file unreadable, unknown key, bad value).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("invalid configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the line).
        message: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

impl ServeArgs {
    /// Merges flags/env over `file` over defaults.
    pub fn resolve(&self, file: FileConfig) -> Result<Resolved, CliError> {
        macro_rules! pick {
            ($name:ident) => {
                self.$name.clone().or(file.$name.clone())
            };
        }
        let mut server = ServerConfig::default();
        macro_rules! set {
            ($($name:ident),*) => {$(
                if let Some(v) = pick!($name) { server.$name = v; }
            )*};
        }
        set!(
            max_body_bytes,
            max_metrics_body_bytes,
            max_bodies_in_flight_bytes,
            body_read_timeout_secs,
            poll_wait_secs,
            max_poll_wait_secs,
            agent_rate_per_sec,
            agent_rate_burst,
            failed_auth_rate_per_sec,
            failed_auth_burst,
            controller_interval_ms,
            shutdown_grace_secs,
            header_read_timeout_secs,
            max_connections,
            max_connections_per_client
        );
        server.admin_token = pick!(admin_token);
        server.enrollment_token = pick!(enrollment_token);
        server.public_url = pick!(public_url);
        if let Some(v) = file.ws_buffer {
            server.ws_buffer = v;
        }
        if let Some(v) = file.ws_max_message_bytes {
            server.ws_max_message_bytes = v;
        }
        if let Some(v) = file.ws_max_per_token {
            server.ws_max_per_token = v;
        }
        if let Some(v) = file.ws_heartbeat_secs {
            server.ws_heartbeat_secs = v;
        }
        server.controller = !self.no_controller && file.controller.unwrap_or(true);
        server
            .validate()
            .map_err(|e| CliError::Invalid(e.to_string()))?;
        let catalogue = match pick!(pricing_file) {
            None => phoenix_core::cost::Catalogue::builtin(),
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| CliError::Read {
                    path: path.clone(),
                    source,
                })?;
                phoenix_core::cost::Catalogue::builtin_with_overrides(&text).map_err(|e| {
                    let message = match e {
                        phoenix_core::cost::CatalogueError::Invalid(v) => v
                            .errors
                            .iter()
                            .map(|f| format!("{}: {}", f.path, f.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                        other => other.to_string(),
                    };
                    CliError::Parse { path, message }
                })?
            }
        };
        let store = pick!(store)
            .unwrap_or_else(|| "memory:".to_owned())
            .parse()
            .map_err(CliError::Invalid)?;
        Ok(Resolved {
            listen: pick!(listen).unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080))),
            ws_listen: pick!(ws_listen),
            store,
            store_namespace: pick!(store_namespace),
            log_format: pick!(log_format).unwrap_or_default(),
            log: pick!(log).unwrap_or_else(|| "info".to_owned()),
            server,
            phoenix: {
                let mut phoenix = phoenix_core::PhoenixConfig::default();
                if let Some(secs) = pick!(lease_secs) {
                    if secs == 0 {
                        return Err(CliError::Invalid(
                            "lease_secs must be at least 1".to_owned(),
                        ));
                    }
                    phoenix.lease =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
                }
                if let Some(secs) = pick!(agent_heartbeat_secs) {
                    if secs == 0 {
                        return Err(CliError::Invalid(
                            "agent_heartbeat_secs must be at least 1".to_owned(),
                        ));
                    }
                    phoenix.heartbeat_interval =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
                }
                if let Some(secs) = pick!(snapshot_interval_secs) {
                    if !(1..=86_400).contains(&secs) {
                        return Err(CliError::Invalid(
                            "snapshot_interval_secs must be between 1 and 86400".to_owned(),
                        ));
                    }
                    phoenix.snapshot_interval =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(86_400));
                }
                if let Some(secs) = pick!(snapshot_retention_secs) {
                    if secs == 0 {
                        return Err(CliError::Invalid(
                            "snapshot_retention_secs must be at least 1".to_owned(),
                        ));
                    }
                    phoenix.snapshot_retention =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000));
                }
                if let Some(secs) = pick!(fleet_view_staleness_secs) {
                    if secs > 86_400 {
                        return Err(CliError::Invalid(
                            "fleet_view_staleness_secs must be at most 86400".to_owned(),
                        ));
                    }
                    phoenix.fleet_view_staleness =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(86_400));
                }
                if let Some(secs) = pick!(history_interval_secs) {
                    if !(60..=3600).contains(&secs) || secs % 60 != 0 {
                        return Err(CliError::Invalid(
                            "history_interval_secs must be a whole number of minutes from 60 to 3600"
                                .to_owned(),
                        ));
                    }
                    phoenix.history.interval = chrono::Duration::seconds(secs as i64);
                }
                if let Some(days) = pick!(history_hourly_retention_days) {
                    if !(1..=41).contains(&days) {
                        return Err(CliError::Invalid(
                            "history_hourly_retention_days must be 1 to 41 (at most 1,000 hourly buckets)"
                                .to_owned(),
                        ));
                    }
                    phoenix.history.hourly_retention = chrono::Duration::days(days as i64);
                }
                if let Some(days) = pick!(history_daily_retention_days) {
                    if !(1..=3660).contains(&days) {
                        return Err(CliError::Invalid(
                            "history_daily_retention_days must be 1 to 3660".to_owned(),
                        ));
                    }
                    phoenix.history.daily_retention = chrono::Duration::days(days as i64);
                }
                if let Some(secs) = pick!(health_retention_secs) {
                    if !(1..=MAX_HEALTH_RETENTION_SECS).contains(&secs) {
                        return Err(CliError::Invalid(format!(
                            "health_retention_secs must be between 1 and {MAX_HEALTH_RETENTION_SECS}"
                        )));
                    }
                    phoenix.health_retention =
                        chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0));
                }
                phoenix
            },
            catalogue: std::sync::Arc::new(catalogue),
        })
    }
}

/// Parses a TOML configuration file's text.
pub fn parse_file(path: &std::path::Path, text: &str) -> Result<FileConfig, CliError> {
    toml::from_str(text).map_err(|e| CliError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_unknown_keys_fail() {
        let path = std::path::Path::new("phoenix.toml");
        let file = parse_file(
            path,
            "listen = \"127.0.0.1:9000\"\npoll_wait_secs = 10\nstore = \"memory:\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            poll_wait_secs: Some(5),
            ..ServeArgs::default()
        };
        let resolved = args.resolve(file).unwrap();
        assert_eq!(resolved.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(resolved.server.poll_wait_secs, 5);
        assert_eq!(resolved.store, StoreUrl::Memory);
        assert!(matches!(
            parse_file(path, "listne = \"x\"\n"),
            Err(CliError::Parse { .. })
        ));
        let short = ServeArgs {
            admin_token: Some("short".to_owned()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            short.resolve(FileConfig::default()),
            Err(CliError::Invalid(_))
        ));
    }

    #[test]
    fn dev_mode_agent_listener_and_demo_length() {
        use clap::Parser as _;
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["phoenix-server", "dev"].iter().chain(args)).map(|c| c.command)
        };
        let Ok(Some(Command::Dev(dev))) = parse(&[]) else {
            panic!("dev parses without flags");
        };
        assert_eq!(dev.agent_listen, "127.0.0.1:9460".parse().unwrap());
        assert_eq!(dev.demo_secs, 60);
        let Ok(Some(Command::Dev(dev))) =
            parse(&["--agent-listen", "127.0.0.1:0", "--demo-secs", "45"])
        else {
            panic!("dev parses its flags");
        };
        assert_eq!(dev.agent_listen.port(), 0);
        assert_eq!(dev.demo_secs, 45);
        assert_eq!(dev.runtime, phoenix_agent::RuntimeKind::Native);
        let Ok(Some(Command::Dev(dev))) = parse(&[
            "--runtime",
            "otelcol",
            "--otelcol-binary",
            "/opt/otelcol-phoenix",
        ]) else {
            panic!("dev parses the runtime");
        };
        assert_eq!(dev.runtime, phoenix_agent::RuntimeKind::Otelcol);
        assert_eq!(
            dev.otelcol_binary,
            Some(PathBuf::from("/opt/otelcol-phoenix"))
        );
        assert!(parse(&["--runtime", "wasm"]).is_err());
        // Shorter than the warm-up plus a few samples: refused, not silently useless.
        assert!(parse(&["--demo-secs", "5"]).is_err());
        assert!(parse(&["--agent-listen", "nowhere"]).is_err());
    }

    #[test]
    fn a_pricing_file_extends_the_catalogue_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("pricing.toml");
        std::fs::write(
            &good,
            r#"
[[model]]
id = "internal-chargeback"
vendor = "Example Corp"
product = "Platform metrics chargeback"
sku = "series-month"
meter = "active_series"
aggregation = "mean"
currency = "USD"
included_per_account = 0
included_per_host = 0
tiers = [{ price = "2.00", per = 1_000 }]
effective_date = "2026-11-01"
source = "internal rate card"
billing = "mean active series per month"
"#,
        )
        .unwrap();
        let args = ServeArgs {
            pricing_file: Some(good),
            ..ServeArgs::default()
        };
        let resolved = args.resolve(FileConfig::default()).unwrap();
        assert!(resolved.catalogue.get("internal-chargeback").is_ok());
        assert!(
            resolved.catalogue.get("datadog-pro").is_ok(),
            "built-ins kept"
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[[model]]\nid = \"x\"\n").unwrap();
        let args = ServeArgs {
            pricing_file: Some(bad),
            ..ServeArgs::default()
        };
        let Err(CliError::Parse { message, .. }) = args.resolve(FileConfig::default()) else {
            panic!("a bad catalogue is refused");
        };
        assert!(!message.is_empty());
        let missing = ServeArgs {
            pricing_file: Some(dir.path().join("missing.toml")),
            ..ServeArgs::default()
        };
        assert!(matches!(
            missing.resolve(FileConfig::default()),
            Err(CliError::Read { .. })
        ));
    }
}
