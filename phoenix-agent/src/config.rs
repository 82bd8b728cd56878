//! Configuration: flags, `PHOENIX_AGENT_*` environment variables and a TOML file, in that
//! order of precedence, over built-in defaults.
//!
//! [`AgentArgs`] is the clap definition (flags and environment); `main.rs` parses it, which
//! is the only place the environment is read. [`AgentArgs::resolve`] merges it with the
//! file named by `--config` into an [`AgentConfig`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_core::backoff::{Backoff, Sequence};
use serde::Deserialize;

pub use crate::otlp_receiver::Forward;

/// The agent's retry and reconnect delays: the core [`Backoff`] (doubling, equal jitter:
/// each wait is drawn at random from `[ceiling / 2, ceiling]`) from `initial` up to `max`.
/// `initial` is at least 1 ms, so a zero flag never spins, and `max` at least `initial`.
#[must_use]
pub fn backoff_sequence(initial: Duration, max: Duration) -> Sequence {
    let initial = initial.max(Duration::from_millis(1));
    Backoff::new(initial, max.max(initial)).sequence()
}

/// Which runtime runs the pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// The built-in engine (default).
    #[default]
    Native,
    /// An external OpenTelemetry Collector binary, supervised.
    Otelcol,
}

/// Settings of the otelcol runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct OtelcolConfig {
    /// The collector binary (`otelcol-contrib`).
    pub binary: PathBuf,
    /// Extra arguments before `--config <file>`.
    pub args: Vec<String>,
    /// The health_check extension's URL.
    pub health_url: String,
    /// The collector's own telemetry (Prometheus exposition).
    pub telemetry_url: String,
    /// How long a new config may take to become healthy.
    pub start_timeout: Duration,
    /// How long the collector may take to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// First restart delay after a crash (doubles up to a minute).
    pub restart_backoff: Duration,
}

impl Default for OtelcolConfig {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("otelcol-contrib"),
            args: Vec::new(),
            health_url: "http://127.0.0.1:13133/".to_owned(),
            telemetry_url: "http://127.0.0.1:8888/metrics".to_owned(),
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            restart_backoff: Duration::from_secs(1),
        }
    }
}

/// Everything the agent needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// Base URL of the Phoenix server.
    pub server_url: String,
    /// Enrollment token (needed only until the agent has a credential).
    pub enrollment_token: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Host name reported (default: the OS host name).
    pub host_name: Option<String>,
    /// Labels for target selection.
    pub labels: BTreeMap<String, String>,
    /// The exposition listener (`127.0.0.1:9460` by default; `None` disables it).
    pub listen: Option<SocketAddr>,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// otelcol runtime settings.
    pub otelcol: OtelcolConfig,
    /// Heartbeat interval (keep it below the server's `agent_heartbeat_secs`: three missed intervals there mark the agent lost).
    pub heartbeat_interval: Duration,
    /// Long-poll wait.
    pub poll_wait: Duration,
    /// Tasks run at once.
    pub max_concurrent_tasks: usize,
    /// Samples per metrics request.
    pub report_batch_size: usize,
    /// Samples buffered while the server is unreachable.
    pub report_buffer: usize,
    /// Prometheus scrape targets that are inputs of this host (`host:port`, scraped at
    /// `/metrics`, or a full `http(s)://` URL), reported in every cardinality snapshot.
    pub scrape: Vec<String>,
    /// The scrape interval of those targets (their points per minute in snapshots).
    pub scrape_interval: Duration,
    /// The collection interval of the host's processes (hostmetrics shape) when no pipeline
    /// sets one (their points per minute in snapshots).
    pub host_interval: Duration,
    /// How often to snapshot until the server says (every heartbeat answer does).
    pub snapshot_interval: Duration,
    /// OTLP/HTTP endpoint every pipeline also exports to.
    pub otlp_endpoint: Option<String>,
    /// The OTLP/HTTP metrics receiver's address (`None`: no receiver, the default). What it
    /// receives is an input of the host, in every cardinality snapshot.
    pub otlp_receiver: Option<SocketAddr>,
    /// Where the receiver passes what it accepts (required with a receiver: a base URL, or
    /// [`Forward::Off`] for a measurement-only sink).
    pub otlp_receiver_forward: Option<Forward>,
    /// First backoff delay after a failed call.
    pub backoff_initial: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// How long tasks may finish at shutdown before their leases are released.
    pub shutdown_grace: Duration,
    /// How long a deploy may take to serve before it fails.
    pub deploy_timeout: Duration,
    /// Timeout of scrapes and exports.
    pub io_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            server_url: "http://127.0.0.1:8080".to_owned(),
            enrollment_token: None,
            state_dir: PathBuf::from("/var/lib/phoenix-agent"),
            host_name: None,
            labels: BTreeMap::new(),
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9460))),
            runtime: RuntimeKind::Native,
            otelcol: OtelcolConfig::default(),
            heartbeat_interval: Duration::from_secs(10),
            poll_wait: Duration::from_secs(30),
            max_concurrent_tasks: 4,
            report_batch_size: 100,
            report_buffer: 8_640,
            scrape: Vec::new(),
            scrape_interval: Duration::from_secs(15),
            host_interval: Duration::from_secs(10),
            snapshot_interval: Duration::from_secs(60),
            otlp_endpoint: None,
            otlp_receiver: None,
            otlp_receiver_forward: None,
            backoff_initial: Backoff::default().initial(),
            backoff_max: Backoff::default().max(),
            shutdown_grace: Duration::from_secs(10),
            deploy_timeout: Duration::from_secs(120),
            io_timeout: Duration::from_secs(5),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A value is invalid.
    #[error("invalid setting `{key}`: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The TOML file: every key optional, same names as the flags (with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    server: Option<String>,
    enrollment_token: Option<String>,
    state_dir: Option<PathBuf>,
    host_name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    listen: Option<String>,
    runtime: Option<RuntimeKind>,
    heartbeat_interval_secs: Option<u64>,
    poll_wait_secs: Option<u64>,
    max_concurrent_tasks: Option<usize>,
    report_batch_size: Option<usize>,
    report_buffer: Option<usize>,
    #[serde(default)]
    scrape: Vec<String>,
    scrape_interval_secs: Option<u64>,
    host_interval_secs: Option<u64>,
    otlp_endpoint: Option<String>,
    otlp_receiver: Option<String>,
    otlp_receiver_forward: Option<String>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    deploy_timeout_secs: Option<u64>,
    io_timeout_ms: Option<u64>,
    #[serde(default)]
    otelcol: FileOtelcol,
}

/// `[otelcol]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOtelcol {
    binary: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    health_url: Option<String>,
    telemetry_url: Option<String>,
    start_timeout_secs: Option<u64>,
    stop_timeout_secs: Option<u64>,
    restart_backoff_ms: Option<u64>,
}

/// Flags, each also read from `PHOENIX_AGENT_<NAME>`.
#[derive(Debug, Default, Clone, clap::Parser)]
#[command(
    name = "phoenix-agent",
    version,
    about = "Phoenix host agent: runs baseline and candidate pipelines side by side and reports what each produces."
)]
pub struct AgentArgs {
    /// TOML config file (flags and environment override it).
    #[arg(long, env = "PHOENIX_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Phoenix server base URL.
    #[arg(long, env = "PHOENIX_AGENT_SERVER")]
    pub server: Option<String>,
    /// Enrollment token (only needed until the agent has enrolled).
    #[arg(long, env = "PHOENIX_AGENT_ENROLLMENT_TOKEN", hide_env_values = true)]
    pub enrollment_token: Option<String>,
    /// State directory (credential, last-known-good pipelines).
    #[arg(long, env = "PHOENIX_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Host name to report.
    #[arg(long, env = "PHOENIX_AGENT_HOST_NAME")]
    pub host_name: Option<String>,
    /// A label `key=value` (repeatable; comma-separated in the environment).
    #[arg(long = "label", env = "PHOENIX_AGENT_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Exposition listener address (`off` disables it).
    #[arg(long, env = "PHOENIX_AGENT_LISTEN")]
    pub listen: Option<String>,
    /// Pipeline runtime.
    #[arg(long, env = "PHOENIX_AGENT_RUNTIME", value_enum)]
    pub runtime: Option<RuntimeKind>,
    /// Collector binary for the otelcol runtime.
    #[arg(long, env = "PHOENIX_AGENT_OTELCOL_BINARY")]
    pub otelcol_binary: Option<PathBuf>,
    /// Collector health_check URL.
    #[arg(long, env = "PHOENIX_AGENT_OTELCOL_HEALTH_URL")]
    pub otelcol_health_url: Option<String>,
    /// Collector self-telemetry URL.
    #[arg(long, env = "PHOENIX_AGENT_OTELCOL_TELEMETRY_URL")]
    pub otelcol_telemetry_url: Option<String>,
    /// Heartbeat interval, seconds.
    #[arg(long, env = "PHOENIX_AGENT_HEARTBEAT_INTERVAL_SECS")]
    pub heartbeat_interval_secs: Option<u64>,
    /// Long-poll wait, seconds.
    #[arg(long, env = "PHOENIX_AGENT_POLL_WAIT_SECS")]
    pub poll_wait_secs: Option<u64>,
    /// Tasks run at once.
    #[arg(long, env = "PHOENIX_AGENT_MAX_CONCURRENT_TASKS")]
    pub max_concurrent_tasks: Option<usize>,
    /// Samples buffered while the server is unreachable.
    #[arg(long, env = "PHOENIX_AGENT_REPORT_BUFFER")]
    pub report_buffer: Option<usize>,
    /// A Prometheus scrape target that is an input of this host (`host:port` or a URL),
    /// reported in its cardinality snapshots; repeatable (adds to the file's `scrape`).
    #[arg(long = "scrape", env = "PHOENIX_AGENT_SCRAPE", value_delimiter = ',')]
    pub scrape: Vec<String>,
    /// Scrape interval of those targets, seconds [default: 15].
    #[arg(long, env = "PHOENIX_AGENT_SCRAPE_INTERVAL_SECS")]
    pub scrape_interval_secs: Option<u64>,
    /// Collection interval of the host's processes when no pipeline sets one, seconds
    /// [default: 10].
    #[arg(long, env = "PHOENIX_AGENT_HOST_INTERVAL_SECS")]
    pub host_interval_secs: Option<u64>,
    /// OTLP/HTTP endpoint every pipeline also exports to.
    #[arg(long, env = "PHOENIX_AGENT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// OTLP/HTTP metrics receiver address (`host:port`; `off`, the default, disables it):
    /// what applications send there is an input of this host in its cardinality snapshots.
    #[arg(long, env = "PHOENIX_AGENT_OTLP_RECEIVER")]
    pub otlp_receiver: Option<String>,
    /// Where the OTLP receiver passes what it accepts, unchanged: the upstream's base URL
    /// (posted to `<url>/v1/metrics`), or `off` for a measurement-only sink that forwards
    /// nothing. Required with `--otlp-receiver`.
    #[arg(long, env = "PHOENIX_AGENT_OTLP_RECEIVER_FORWARD")]
    pub otlp_receiver_forward: Option<String>,
    /// First backoff delay, milliseconds.
    #[arg(long, env = "PHOENIX_AGENT_BACKOFF_INITIAL_MS")]
    pub backoff_initial_ms: Option<u64>,
    /// Longest backoff delay, milliseconds.
    #[arg(long, env = "PHOENIX_AGENT_BACKOFF_MAX_MS")]
    pub backoff_max_ms: Option<u64>,
    /// Seconds tasks may take to finish at shutdown.
    #[arg(long, env = "PHOENIX_AGENT_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

fn parse_label(s: &str) -> Result<(String, String), ConfigError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(ConfigError::Invalid {
            key: "label",
            message: format!("`{s}` is not key=value"),
        }),
    }
}

fn parse_listen(s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    parse_address("listen", s)
}

fn parse_address(key: &'static str, s: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if s.eq_ignore_ascii_case("off") || s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| ConfigError::Invalid {
        key,
        message: format!("`{s}` is not host:port (an IP address and a port) or `off`"),
    })
}

fn parse_forward(s: &str) -> Forward {
    if s.eq_ignore_ascii_case("off") {
        Forward::Off
    } else {
        Forward::To(s.to_owned())
    }
}

impl AgentArgs {
    /// Reads the TOML file named by `--config`, if any.
    ///
    /// # Errors
    /// When it cannot be read or parsed.
    pub fn file(&self) -> Result<FileConfig, ConfigError> {
        match &self.config {
            Some(path) => load_file(path),
            None => Ok(FileConfig::default()),
        }
    }

    /// Merges flags/environment over the file over the defaults.
    ///
    /// # Errors
    /// A file or value problem.
    pub fn resolve(&self) -> Result<AgentConfig, ConfigError> {
        let file = self.file()?;
        let d = AgentConfig::default();
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut labels = file.labels;
        for l in &self.labels {
            let (k, v) = parse_label(l)?;
            labels.insert(k, v);
        }
        let listen = match self.listen.as_deref().or(file.listen.as_deref()) {
            Some(s) => parse_listen(s)?,
            None => d.listen,
        };
        let otlp_receiver = match self
            .otlp_receiver
            .as_deref()
            .or(file.otlp_receiver.as_deref())
        {
            Some(s) => parse_address("otlp_receiver", s)?,
            None => None,
        };
        let otlp_receiver_forward = self
            .otlp_receiver_forward
            .as_deref()
            .or(file.otlp_receiver_forward.as_deref())
            .map(parse_forward);
        let config = AgentConfig {
            server_url: self.server.clone().or(file.server).unwrap_or(d.server_url),
            enrollment_token: self.enrollment_token.clone().or(file.enrollment_token),
            state_dir: self
                .state_dir
                .clone()
                .or(file.state_dir)
                .unwrap_or(d.state_dir),
            host_name: self.host_name.clone().or(file.host_name),
            labels,
            listen,
            runtime: self.runtime.or(file.runtime).unwrap_or_default(),
            otelcol: OtelcolConfig {
                binary: self
                    .otelcol_binary
                    .clone()
                    .or(file.otelcol.binary)
                    .unwrap_or(d.otelcol.binary),
                args: file.otelcol.args,
                health_url: self
                    .otelcol_health_url
                    .clone()
                    .or(file.otelcol.health_url)
                    .unwrap_or(d.otelcol.health_url),
                telemetry_url: self
                    .otelcol_telemetry_url
                    .clone()
                    .or(file.otelcol.telemetry_url)
                    .unwrap_or(d.otelcol.telemetry_url),
                start_timeout: file
                    .otelcol
                    .start_timeout_secs
                    .map_or(d.otelcol.start_timeout, secs),
                stop_timeout: file
                    .otelcol
                    .stop_timeout_secs
                    .map_or(d.otelcol.stop_timeout, secs),
                restart_backoff: file
                    .otelcol
                    .restart_backoff_ms
                    .map_or(d.otelcol.restart_backoff, ms),
            },
            heartbeat_interval: self
                .heartbeat_interval_secs
                .or(file.heartbeat_interval_secs)
                .map_or(d.heartbeat_interval, secs),
            poll_wait: self
                .poll_wait_secs
                .or(file.poll_wait_secs)
                .map_or(d.poll_wait, secs),
            max_concurrent_tasks: self
                .max_concurrent_tasks
                .or(file.max_concurrent_tasks)
                .unwrap_or(d.max_concurrent_tasks),
            report_batch_size: file.report_batch_size.unwrap_or(d.report_batch_size),
            report_buffer: self
                .report_buffer
                .or(file.report_buffer)
                .unwrap_or(d.report_buffer),
            scrape: file
                .scrape
                .into_iter()
                .chain(self.scrape.iter().cloned())
                .collect(),
            scrape_interval: self
                .scrape_interval_secs
                .or(file.scrape_interval_secs)
                .map_or(d.scrape_interval, secs),
            host_interval: self
                .host_interval_secs
                .or(file.host_interval_secs)
                .map_or(d.host_interval, secs),
            snapshot_interval: d.snapshot_interval,
            otlp_endpoint: self.otlp_endpoint.clone().or(file.otlp_endpoint),
            otlp_receiver,
            otlp_receiver_forward,
            backoff_initial: self
                .backoff_initial_ms
                .or(file.backoff_initial_ms)
                .map_or(d.backoff_initial, ms),
            backoff_max: self
                .backoff_max_ms
                .or(file.backoff_max_ms)
                .map_or(d.backoff_max, ms),
            shutdown_grace: self
                .shutdown_grace_secs
                .or(file.shutdown_grace_secs)
                .map_or(d.shutdown_grace, secs),
            deploy_timeout: file.deploy_timeout_secs.map_or(d.deploy_timeout, secs),
            io_timeout: file.io_timeout_ms.map_or(d.io_timeout, ms),
        };
        config.validate()?;
        Ok(config)
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

impl AgentConfig {
    /// Checks values that would otherwise fail later.
    ///
    /// # Errors
    /// The first invalid value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if !(self.server_url.starts_with("http://") || self.server_url.starts_with("https://")) {
            return invalid("server", "must be an http:// or https:// URL");
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("heartbeat_interval_secs", "must be at least 1");
        }
        if self.max_concurrent_tasks == 0 {
            return invalid("max_concurrent_tasks", "must be at least 1");
        }
        if self.report_buffer == 0 || self.report_batch_size == 0 {
            return invalid("report_buffer", "buffer and batch size must be at least 1");
        }
        if self.labels.len() > 64 {
            return invalid("labels", "at most 64 labels");
        }
        if self.scrape_interval.is_zero() || self.host_interval.is_zero() {
            return invalid(
                "scrape_interval_secs",
                "scrape and host intervals must be at least 1 second",
            );
        }
        if self.scrape.len() > 64 {
            return invalid("scrape", "at most 64 scrape targets");
        }
        if self.scrape.iter().any(|t| t.trim().is_empty()) {
            return invalid("scrape", "a scrape target is empty");
        }
        if let Some(e) = &self.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return invalid("otlp_endpoint", "must be an http:// or https:// URL");
        }
        match (self.otlp_receiver, &self.otlp_receiver_forward) {
            (None, None) => {}
            (None, Some(_)) => {
                return invalid(
                    "otlp_receiver_forward",
                    "has no effect without otlp_receiver: set the receiver's address too",
                );
            }
            (Some(_), None) => {
                return invalid(
                    "otlp_receiver_forward",
                    "required with otlp_receiver: the base URL of the OTLP receiver the applications' data goes on to (a tee that loses nothing), or `off` for a measurement-only sink that drops what it measured",
                );
            }
            (Some(_), Some(Forward::Off)) => {}
            (Some(addr), Some(Forward::To(url))) => {
                let parsed = reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
                let Some(parsed) = parsed else {
                    return invalid(
                        "otlp_receiver_forward",
                        "must be an http:// or https:// URL, or `off`",
                    );
                };
                let host = parsed
                    .host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']']);
                if parsed.port_or_known_default() == Some(addr.port())
                    && host.parse::<std::net::IpAddr>().ok() == Some(addr.ip())
                {
                    return invalid(
                        "otlp_receiver_forward",
                        "points at the receiver itself: requests would loop",
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn flags_override_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            r#"
server = "http://file:1"
state_dir = "/tmp/from-file"
listen = "127.0.0.1:9999"
heartbeat_interval_secs = 3
runtime = "otelcol"
[labels]
env = "prod"
role = "web"
[otelcol]
binary = "/opt/otelcol"
"#,
        )
        .unwrap();
        let args = AgentArgs::parse_from([
            "phoenix-agent",
            "--config",
            path.to_str().unwrap(),
            "--server",
            "http://flag:2",
            "--label",
            "role=db",
            "--label",
            "zone=a",
        ]);
        let c = args.resolve().unwrap();
        assert_eq!(c.server_url, "http://flag:2");
        assert_eq!(c.state_dir, PathBuf::from("/tmp/from-file"));
        assert_eq!(c.listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.runtime, RuntimeKind::Otelcol);
        assert_eq!(c.otelcol.binary, PathBuf::from("/opt/otelcol"));
        assert_eq!(c.labels["env"], "prod");
        assert_eq!(c.labels["role"], "db");
        assert_eq!(c.labels["zone"], "a");
        assert_eq!(c.poll_wait, AgentConfig::default().poll_wait);
    }

    #[test]
    fn defaults_listen_on_loopback_only() {
        let c = AgentArgs::parse_from(["phoenix-agent"]).resolve().unwrap();
        assert!(c.listen.unwrap().ip().is_loopback());
        let off = AgentArgs::parse_from(["phoenix-agent", "--listen", "off"])
            .resolve()
            .unwrap();
        assert_eq!(off.listen, None);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let bad_label = AgentArgs::parse_from(["phoenix-agent", "--label", "novalue"]).resolve();
        assert!(matches!(
            bad_label,
            Err(ConfigError::Invalid { key: "label", .. })
        ));
        let bad_listen = AgentArgs::parse_from(["phoenix-agent", "--listen", "nowhere"]).resolve();
        assert!(matches!(
            bad_listen,
            Err(ConfigError::Invalid { key: "listen", .. })
        ));
        let bad_server = AgentArgs::parse_from(["phoenix-agent", "--server", "ftp://x"]).resolve();
        assert!(matches!(
            bad_server,
            Err(ConfigError::Invalid { key: "server", .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "unknown_key = 1\n").unwrap();
        let bad_file =
            AgentArgs::parse_from(["phoenix-agent", "--config", path.to_str().unwrap()]).resolve();
        assert!(matches!(bad_file, Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn the_otlp_receiver_needs_an_explicit_forward_choice() {
        let off = AgentArgs::parse_from(["phoenix-agent"]).resolve().unwrap();
        assert_eq!(off.otlp_receiver, None);
        let parse =
            |args: &[&str]| AgentArgs::parse_from(["phoenix-agent"].iter().chain(args)).resolve();
        let tee = parse(&[
            "--otlp-receiver",
            "127.0.0.1:4318",
            "--otlp-receiver-forward",
            "http://collector:4318",
        ])
        .unwrap();
        assert_eq!(tee.otlp_receiver, Some("127.0.0.1:4318".parse().unwrap()));
        assert_eq!(
            tee.otlp_receiver_forward,
            Some(Forward::To("http://collector:4318".to_owned()))
        );
        let sink = parse(&[
            "--otlp-receiver",
            "0.0.0.0:4318",
            "--otlp-receiver-forward",
            "off",
        ])
        .unwrap();
        assert_eq!(sink.otlp_receiver_forward, Some(Forward::Off));
        for bad in [
            &["--otlp-receiver", "127.0.0.1:4318"][..],
            &["--otlp-receiver-forward", "http://collector:4318"],
            &[
                "--otlp-receiver",
                "nowhere",
                "--otlp-receiver-forward",
                "off",
            ],
            &[
                "--otlp-receiver",
                "127.0.0.1:4318",
                "--otlp-receiver-forward",
                "collector:4318",
            ],
            &[
                "--otlp-receiver",
                "127.0.0.1:4318",
                "--otlp-receiver-forward",
                "http://127.0.0.1:4318/",
            ],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ConfigError::Invalid {
                        key: "otlp_receiver" | "otlp_receiver_forward",
                        ..
                    }
                ),
                "{bad:?}: {e}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "otlp_receiver = \"127.0.0.1:4318\"\notlp_receiver_forward = \"off\"\n",
        )
        .unwrap();
        let file = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(file.otlp_receiver_forward, Some(Forward::Off));
    }

    #[test]
    fn backoff_flags_drive_the_core_policy() {
        let defaults = AgentArgs::parse_from(["phoenix-agent"]).resolve().unwrap();
        assert_eq!(defaults.backoff_initial, Backoff::default().initial());
        assert_eq!(defaults.backoff_max, Backoff::default().max());
        let c = AgentArgs::parse_from([
            "phoenix-agent",
            "--backoff-initial-ms",
            "100",
            "--backoff-max-ms",
            "1000",
        ])
        .resolve()
        .unwrap();
        assert_eq!(c.backoff_initial, Duration::from_millis(100));
        assert_eq!(c.backoff_max, Duration::from_millis(1000));
        let mut seq = backoff_sequence(c.backoff_initial, c.backoff_max);
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let delay = seq.next_delay();
            let ceiling = seq.ceiling();
            // Equal jitter: never below half the ceiling, never above it.
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} vs {ceiling:?}"
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        // A zero initial delay is raised to 1 ms rather than spinning.
        let mut zero = backoff_sequence(Duration::ZERO, Duration::ZERO);
        assert!(zero.next_delay() >= Duration::from_micros(500));
        assert_eq!(zero.ceiling(), Duration::from_millis(1));
        // A max below the initial delay is raised to it.
        let mut inverted = backoff_sequence(Duration::from_secs(2), Duration::from_secs(1));
        inverted.next_delay();
        assert_eq!(inverted.ceiling(), Duration::from_secs(2));
    }
}
