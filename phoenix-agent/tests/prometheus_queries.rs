//! Phoenix's query classification checked against a real Prometheus.
//!
//! The real server (in-process on 127.0.0.1:0) and a real `phoenix-agent` run an
//! experiment: `baseline` against `aggregate` (processes summed by executable name), both
//! scraping the same two Prometheus targets and no live processes: a real node_exporter
//! (Debian's `prometheus-node-exporter`) and the recorded web-01 host's processes served as
//! the agent's own exposition writes them (a fixed input, so both variants and both
//! Prometheus servers see the same series at every instant). Two real Prometheus servers
//! (Debian's `prometheus`) scrape the agent, one `/metrics/baseline`, the other
//! `/metrics/candidate`, under the same job name and instance, so a query runs unmodified
//! on each and their answers compare label set for label set.
//!
//! The inventory is imported through the API: the rule files and dashboards of Debian
//! packages (node_exporter's example rules, Ceph's alerts and dashboards, gathered by
//! `scripts/prometheus`) and `tests/data/process-rules.yml`. Phoenix classifies every query
//! from the two endpoints (`phoenix_core::queries::evaluate`), Prometheus answers it under
//! each variant (instant queries), and every classification must agree with the answers:
//!
//! - broken: the candidate returns nothing where the baseline returned something, or
//!   other label sets;
//! - changed: the candidate answers, with other label sets;
//! - answered: the same label sets (values may differ: sums over fewer, larger series);
//! - unobserved: the baseline returns nothing (or both return the same constant, as
//!   `absent()` and `or vector(0)` do).
//!
//! Prometheus needs: `PHOENIX_PROMETHEUS`, `PHOENIX_PROMTOOL`, `PHOENIX_QUERY_CORPUS`
//! (`eval "$(scripts/prometheus)"` installs and gathers them) and node_exporter
//! (`PHOENIX_NODE_EXPORTER` or `/usr/bin/prometheus-node-exporter`). Without them the test
//! skips loudly, or fails under `PHOENIX_REQUIRE_PROMETHEUS=1`.
//!
//! The experiment then runs to its verdict: its inventory, frozen when it was created, is
//! evaluated by the agent on every sample, and the "queries kept" KPI names exactly the
//! queries Prometheus confirmed broken and changed; the verdict fails on the default
//! critical criterion (`queries_broken <= 0`), naming a broken alert. A second experiment,
//! top-K with K above the host's process count, keeps every query: Prometheus answers
//! each under it as under the baseline, and the criterion passes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use phoenix_api::query::{NewQuerySource, SourceKind};
use phoenix_client::Client;
use phoenix_core::experiment::{ExperimentSpec, TargetSelector};
use phoenix_core::ids::ExperimentId;
use phoenix_core::pipeline::encode::write_prometheus_text;
use phoenix_core::pipeline::exposition::sample_from_exposition;
use phoenix_core::pipeline::spec::MAX_TOPK;
use phoenix_core::pipeline::{ParamValue, PipelineRef, ProcessRecord, Sample};
use phoenix_core::queries::{InventoryQuery, QueryStatus, Series, evaluate, series_of};
use phoenix_core::{Phoenix, PhoenixConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

mod support;
use support::harness::free_port;
use support::stand::{self, eventually};

/// The job name both Prometheus servers scrape their variant under.
const JOB: &str = "phoenix";
/// Prometheus's scrape interval, seconds.
const SCRAPE_SECS: u64 = 1;
/// The experiment's sample interval (the agent re-scrapes its inputs this often), seconds.
const SAMPLE_SECS: u32 = 2;
/// The experiment's run: longer than the wait for a consistent view of both variants in
/// both Prometheus servers (at most 30 tries of a few scrapes).
const EXPERIMENT_SECS: u64 = 150;
/// What a dashboard template variable becomes inside a quoted label value in an
/// inventoried query (`phoenix_core::queries::needs`): "this label, any value".
const VARIABLE_MARKER: &str = "__phoenix_var__";
const OWN_RULES: &str = include_str!("data/process-rules.yml");
const WEB_01: &str = include_str!("../../phoenix-core/testdata/processes/web-01.json");

// --- What the test needs --------------------------------------------------------------

struct Tools {
    prometheus: PathBuf,
    promtool: PathBuf,
    corpus: PathBuf,
    node_exporter: PathBuf,
}

fn tools() -> Option<Tools> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let node_exporter = var("PHOENIX_NODE_EXPORTER")
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-node-exporter"));
    let found = match (
        var("PHOENIX_PROMETHEUS"),
        var("PHOENIX_PROMTOOL"),
        var("PHOENIX_QUERY_CORPUS"),
    ) {
        (Some(prometheus), Some(promtool), Some(corpus))
            if prometheus.exists()
                && promtool.exists()
                && corpus.is_dir()
                && node_exporter.exists() =>
        {
            Some(Tools {
                prometheus,
                promtool,
                corpus,
                node_exporter,
            })
        }
        _ => None,
    };
    if found.is_some() {
        return found;
    }
    let what = "PHOENIX_PROMETHEUS, PHOENIX_PROMTOOL, PHOENIX_QUERY_CORPUS (eval \"$(scripts/prometheus)\") and node_exporter";
    assert!(
        std::env::var("PHOENIX_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
        "Prometheus is required (PHOENIX_REQUIRE_PROMETHEUS=1) but {what} are not all there"
    );
    eprintln!("SKIPPED: {what} not all there; the query check against a real Prometheus not run");
    None
}

// --- Inputs ---------------------------------------------------------------------------

/// Serves `body` as a Prometheus exposition at every path of a loopback port until
/// dropped; returns `host:port`.
async fn serve_exposition(body: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let body = Arc::new(body);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, task)
}

/// The recorded web-01 host's processes as Phoenix's agent writes them.
fn web_01_exposition() -> String {
    #[derive(serde::Deserialize)]
    struct HostFile {
        taken_at_ms: i64,
        processes: Vec<ProcessRecord>,
    }
    let file: HostFile = serde_json::from_str(WEB_01).expect("corpus file parses");
    let sample = Sample::from_processes(file.taken_at_ms, &file.processes);
    let mut text = String::new();
    write_prometheus_text(&sample, &mut text).unwrap();
    text
}

// --- The stand: server, agent, inputs -------------------------------------------------

/// The real server in-process and one real agent process, with the inputs its pipelines
/// scrape.
struct Stand {
    phoenix: Phoenix,
    client: Client,
    /// The agent's exposition listener (`host:port`).
    agent_listen: String,
    label: String,
    /// The Prometheus targets of every pipeline (`host:port`).
    targets: Vec<String>,
    server: stand::Stand,
    _agent: Child,
    _node_exporter: Child,
    _replay: tokio::task::JoinHandle<()>,
    _dirs: tempfile::TempDir,
}

impl Stand {
    async fn start(node_exporter: &Path) -> Self {
        let port = free_port();
        let node_exporter = Command::new(node_exporter)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node_exporter starts");
        let node = format!("127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("node_exporter to serve /metrics", 30, async || {
            http.get(format!("http://{node}/metrics"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        let (replay, replay_task) = serve_exposition(web_01_exposition()).await;

        let server = stand::Stand::start(PhoenixConfig {
            heartbeat_interval: chrono::Duration::seconds(1),
            safety_poll: chrono::Duration::milliseconds(200),
            ..PhoenixConfig::default()
        })
        .await;
        let (phoenix, client) = (server.phoenix.clone(), server.client.clone());
        let dirs = tempfile::tempdir().unwrap();
        let state_dir = dirs.path().join("agent");
        let label = uuid::Uuid::new_v4().to_string();
        let agent = server
            .agent(&state_dir, "prom-check")
            .listen("127.0.0.1:0")
            .args(["--label", &format!("prom={label}")])
            .spawn();
        let listen_file = state_dir.join("listen.addr");
        let agent_listen = eventually("the agent to listen", 30, async || {
            std::fs::read_to_string(&listen_file).ok()
        })
        .await;
        Self {
            phoenix,
            client,
            agent_listen,
            label,
            targets: vec![node, replay],
            server,
            _agent: agent,
            _node_exporter: node_exporter,
            _replay: replay_task,
            _dirs: dirs,
        }
    }

    /// `template` with the stand's inputs: the Prometheus targets, no live processes.
    fn pipeline(&self, template: &str) -> PipelineRef {
        PipelineRef::new(template)
            .with_param("process_metrics", ParamValue::Bool(false))
            .with_param("prometheus_targets", ParamValue::List(self.targets.clone()))
            .with_param(
                "collection_interval",
                ParamValue::String(format!("{SAMPLE_SECS}s")),
            )
    }

    /// An experiment of `baseline` against `candidate` on the stand's agent.
    fn spec(&self, baseline: &str, candidate: &str, duration_secs: u64) -> ExperimentSpec {
        let mut spec = ExperimentSpec::new(
            self.pipeline(baseline),
            self.pipeline(candidate),
            duration_secs,
        );
        spec.targets = TargetSelector {
            labels: BTreeMap::from([("prom".to_owned(), self.label.clone())]),
            hosts: Vec::new(),
        };
        spec.sample_interval_secs = SAMPLE_SECS;
        spec
    }

    /// Creates and starts an experiment, and waits until the agent serves both variants.
    async fn run_experiment(&self, name: &str, spec: ExperimentSpec) -> ExperimentId {
        let e = self
            .client
            .create_experiment(&phoenix_api::experiment::NewExperiment {
                name: name.to_owned(),
                description: String::new(),
                spec: spec.into(),
            })
            .await
            .expect("created");
        let e = self.client.start_experiment(e.id).await.expect("started");
        eventually("the agent to serve both variants", 120, async || {
            let (b, c) = (
                self.exposition("baseline").await?,
                self.exposition("candidate").await?,
            );
            (b.contains("process_memory_usage") && c.contains("process_memory_usage")).then_some(())
        })
        .await;
        ExperimentId(e.id)
    }

    /// What the agent serves at `/metrics/<variant>`.
    async fn exposition(&self, variant: &str) -> Option<String> {
        let r = reqwest::get(format!("http://{}/metrics/{variant}", self.agent_listen))
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

// --- Prometheus -----------------------------------------------------------------------

/// A real Prometheus scraping one of the agent's endpoints, killed when dropped.
struct Prometheus {
    base: String,
    http: reqwest::Client,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `http://<target><path>` every second as job [`JOB`], on a
    /// free loopback port with its own data directory, and waits until it is ready.
    async fn start(binary: &Path, target: &str, path: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: {SCRAPE_SECS}s\n  scrape_timeout: {SCRAPE_SECS}s\n\
                 scrape_configs:\n  - job_name: '{JOB}'\n    metrics_path: '{path}'\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let mut p = Self {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            child,
            log,
            _dir: dir,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log());
            }
            let ready = p
                .http
                .get(format!("{}/-/ready", p.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query at `time` (Unix seconds): the `data` of the answer, or
    /// Prometheus's error.
    async fn query_raw(&self, promql: &str, time: f64) -> Result<serde_json::Value, String> {
        let response = self
            .http
            .post(format!("{}/api/v1/query", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("query", promql), ("time", &format!("{time:.3}"))]))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].take())
    }

    /// An instant query at `time`: the label sets of the result (a scalar is one empty
    /// label set), or Prometheus's error.
    async fn query(&self, promql: &str, time: f64) -> Result<LabelSets, String> {
        let data = self.query_raw(promql, time).await?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    r["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .collect()),
            Some("scalar" | "string") => Ok(BTreeSet::from([BTreeMap::new()])),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }

    /// Waits until Prometheus scraped its target successfully `scrapes` times.
    async fn wait_scrapes(&self, scrapes: u32) {
        eventually("Prometheus to scrape the agent", 120, async || {
            let data = self
                .query_raw("sum_over_time(up[10m])", unix_now())
                .await
                .ok()?;
            let value: f64 = data["result"][0]["value"][1].as_str()?.parse().ok()?;
            (value >= f64::from(scrapes)).then_some(())
        })
        .await;
    }
}

type LabelSets = BTreeSet<BTreeMap<String, String>>;

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [k, v].iter().enumerate() {
            if j > 0 {
                out.push('=');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// --- The inventory --------------------------------------------------------------------

/// Imports the corpus (`rules/*.yml` as rule files, `dashboards/*.json` as Grafana
/// dashboards) and Phoenix's own rule file through the API, and returns the rule files
/// (for promtool) and the inventory as stored, each query with its source's name.
async fn import_corpus(
    stand: &Stand,
    corpus: &Path,
    own_rules: &Path,
) -> (Vec<PathBuf>, Vec<(String, InventoryQuery)>) {
    let mut files: Vec<(PathBuf, SourceKind)> = Vec::new();
    for (folder, kind) in [
        ("rules", SourceKind::RuleFile),
        ("dashboards", SourceKind::GrafanaDashboard),
    ] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(corpus.join(folder))
            .unwrap_or_else(|e| panic!("{}/{folder}: {e}", corpus.display()))
            .map(|e| e.unwrap().path())
            .collect();
        found.sort();
        assert!(!found.is_empty(), "no {folder} in {}", corpus.display());
        files.extend(found.into_iter().map(|p| (p, kind)));
    }
    files.push((own_rules.to_path_buf(), SourceKind::RuleFile));
    for (path, kind) in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        stand
            .client
            .import_query_source(&NewQuerySource {
                name: name.clone(),
                kind: *kind,
                content: std::fs::read_to_string(path).unwrap(),
            })
            .await
            .unwrap_or_else(|e| panic!("Phoenix refuses {name}, which Prometheus loads: {e}"));
    }
    let rule_files = files
        .iter()
        .filter(|(_, k)| *k == SourceKind::RuleFile)
        .map(|(p, _)| p.clone())
        .collect();
    let inventory = stand
        .phoenix
        .query_sources()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|s| {
            let name = s.name;
            s.queries.into_iter().map(move |q| (name.clone(), q))
        })
        .collect();
    (rule_files, inventory)
}

/// `promql` as it is sent to Prometheus. A matcher on a dashboard template variable
/// (`instance=~"$host"`, inventoried as a placeholder) becomes `instance=~".+"`: "this
/// label, any value", which is what Phoenix checks it as. Every comparison gets `bool`, so
/// that a rule's expression answers with every series it watches, not only those past its
/// threshold now (a filter's outcome depends on values, which the classification does not
/// speak about): `x > 0.9` is sent as `x > bool 0.9`. Nothing else changes.
fn for_prometheus(promql: &str) -> String {
    let chars: Vec<char> = promql.chars().collect();
    let mut out = String::with_capacity(promql.len() + 16);
    let mut braces = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' && c != '`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let literal: String = chars[start..i].iter().collect();
            if braces > 0 && literal.contains(VARIABLE_MARKER) {
                out.truncate(out.trim_end().len());
                for op in ["=~", "!~", "!=", "="] {
                    if let Some(rest) = out.strip_suffix(op) {
                        out.truncate(rest.len());
                        break;
                    }
                }
                out.push_str("=~\".+\"");
            } else {
                out.push_str(&literal);
            }
            continue;
        }
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            _ => {}
        }
        if braces == 0 {
            let next = chars.get(i + 1).copied();
            let len = match (c, next) {
                ('=' | '!' | '>' | '<', Some('=')) => 2,
                ('>' | '<', _) => 1,
                _ => 0,
            };
            if len > 0 {
                out.extend(&chars[i..i + len]);
                i += len;
                let rest: String = chars[i..].iter().collect();
                let rest = rest.trim_start();
                let has_bool = rest.strip_prefix("bool").is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                });
                if !has_bool {
                    out.push_str(" bool");
                }
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

// --- Phoenix's view of what Prometheus scrapes ----------------------------------------

/// The series Prometheus holds after scraping `text` as job [`JOB`] at `instance`: the
/// exposition's series as Phoenix names them (`series_of`, what template previews and
/// the agent use) with the target's `job` and `instance` labels, and the series
/// Prometheus adds for every scrape (`up`, `scrape_*`).
fn scraped_series(text: &str, instance: &str) -> Vec<Series> {
    let sample =
        sample_from_exposition(text, 0, Vec::<(String, String)>::new()).expect("exposition");
    let target = [("job", JOB), ("instance", instance)];
    let mut series = series_of(&sample);
    for s in &mut series {
        for (k, v) in target {
            s.labels.insert(k.to_owned(), v.to_owned());
        }
    }
    for name in [
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    ] {
        series.push(Series::new(name, target));
    }
    series
}

fn label_sets(series: &[Series]) -> LabelSets {
    series
        .iter()
        .map(|s| {
            let mut labels = s.labels.clone();
            labels.insert("__name__".to_owned(), s.metric.clone());
            labels
        })
        .collect()
}

/// Reads both endpoints until the series Phoenix sees in them are exactly the series each
/// Prometheus holds (every series, by name and labels), and returns them with the time
/// the two Prometheus servers were asked at.
async fn consistent_view(
    stand: &Stand,
    baseline: &Prometheus,
    candidate: &Prometheus,
) -> (Vec<Series>, Vec<Series>, f64) {
    let mut last = String::new();
    for _ in 0..30 {
        let (Some(b_text), Some(c_text)) = (
            stand.exposition("baseline").await,
            stand.exposition("candidate").await,
        ) else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        // Past the scrape that follows the read.
        tokio::time::sleep(Duration::from_secs(2 * SCRAPE_SECS)).await;
        let time = unix_now();
        let b = scraped_series(&b_text, &stand.agent_listen);
        let c = scraped_series(&c_text, &stand.agent_listen);
        let all = "{__name__=~\".+\"}";
        let (Ok(pb), Ok(pc)) = (
            baseline.query(all, time).await,
            candidate.query(all, time).await,
        ) else {
            continue;
        };
        let (sb, sc) = (label_sets(&b), label_sets(&c));
        if sb == pb && sc == pc {
            return (b, c, time);
        }
        last = String::new();
        for (variant, phoenix, prometheus) in [("baseline", &sb, &pb), ("candidate", &sc, &pc)] {
            for s in phoenix.difference(prometheus).take(5) {
                let _ = writeln!(last, "{variant}: only Phoenix sees {s:?}");
            }
            for s in prometheus.difference(phoenix).take(5) {
                let _ = writeln!(last, "{variant}: only Prometheus holds {s:?}");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the series Phoenix reads never matched what Prometheus holds:\n{last}")
}

// --- The check ------------------------------------------------------------------------

/// Whether Prometheus's answers under the baseline (`b`) and the candidate (`c`) are what
/// `status` claims; `Ok` says how they agree, `Err` how they do not.
fn check(status: QueryStatus, b: &LabelSets, c: &LabelSets) -> Result<&'static str, String> {
    let (nb, nc) = (b.len(), c.len());
    match status {
        QueryStatus::Broken if !b.is_empty() && c.is_empty() => Ok("no data under the candidate"),
        QueryStatus::Broken if b != c => Ok("other label sets under the candidate"),
        QueryStatus::Broken => Err(format!("the same {nb} label sets under both")),
        QueryStatus::Changed if c.is_empty() => Err(format!(
            "no data under the candidate ({nb} under the baseline)"
        )),
        QueryStatus::Changed if b == c => Err(format!("the same {nb} label sets under both")),
        QueryStatus::Changed => Ok("other label sets under the candidate"),
        QueryStatus::Answered if b == c && b.is_empty() => Ok("no data under either"),
        QueryStatus::Answered if b == c => Ok("the same label sets"),
        QueryStatus::Answered => Err(format!(
            "{nb} label sets under the baseline, {nc} under the candidate, {} in common",
            b.intersection(c).count()
        )),
        QueryStatus::Unobserved if b.is_empty() => Ok("no data under the baseline"),
        // `absent(...)`, `vector(0)`: a constant, not a scraped series (those carry
        // `instance`).
        QueryStatus::Unobserved if b == c && b.iter().all(|l| !l.contains_key("instance")) => {
            Ok("the same constant under both")
        }
        QueryStatus::Unobserved => Err(format!("{nb} label sets under the baseline")),
    }
}

fn status_name(status: QueryStatus) -> &'static str {
    match status {
        QueryStatus::Answered => "answered",
        QueryStatus::Changed => "changed",
        QueryStatus::Broken => "broken",
        QueryStatus::Unobserved => "unobserved",
    }
}

/// One query's outcome.
struct Outcome {
    source: String,
    query: InventoryQuery,
    status: QueryStatus,
    agreement: Result<&'static str, String>,
    /// Wrong statuses the check would have refused, for this query's answers.
    refuted: usize,
}

async fn classify(
    inventory: &[(String, InventoryQuery)],
    (baseline, candidate): (&[Series], &[Series]),
    (prom_b, prom_c): (&Prometheus, &Prometheus),
    time: f64,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (source, query) in inventory {
        let verdict = evaluate(query, baseline, candidate);
        let sent = for_prometheus(&query.promql);
        let parsed = phoenix_core::queries::needs_of(&sent)
            .unwrap_or_else(|e| panic!("{sent} (from {}) does not parse: {e}", query.promql));
        assert_eq!(
            parsed.selectors.len(),
            query.needs.selectors.len(),
            "{sent} selects otherwise than {}",
            query.promql
        );
        let (b, c) = (
            prom_b.query(&sent, time).await,
            prom_c.query(&sent, time).await,
        );
        let (agreement, refuted) = match (b, c) {
            (Ok(b), Ok(c)) => {
                let agreement = check(verdict.status, &b, &c)
                    .map_err(|e| format!("{e}; Phoenix's reasons: {:?}", verdict.reasons));
                let refuted = [
                    QueryStatus::Answered,
                    QueryStatus::Changed,
                    QueryStatus::Broken,
                    QueryStatus::Unobserved,
                ]
                .into_iter()
                .filter(|s| *s != verdict.status && check(*s, &b, &c).is_err())
                .count();
                (agreement, refuted)
            }
            (b, c) => (
                Err(format!(
                    "Prometheus refused `{sent}`: {:?} / {:?}",
                    b.err(),
                    c.err()
                )),
                0,
            ),
        };
        out.push(Outcome {
            source: source.clone(),
            query: query.clone(),
            status: verdict.status,
            agreement,
            refuted,
        });
    }
    out
}

fn promtool_check_rules(promtool: &Path, files: &[PathBuf]) -> String {
    let output = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .args(files)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool check rules:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phoenix_classifies_queries_as_a_real_prometheus_answers_them() {
    let Some(tools) = tools() else {
        return;
    };
    let stand = Stand::start(&tools.node_exporter).await;
    let own = tempfile::tempdir().unwrap();
    let own_rules = own.path().join("phoenix-process-rules.yml");
    std::fs::write(&own_rules, OWN_RULES).unwrap();

    // promtool accepts every rule file of the corpus.
    let (rule_files, inventory) = import_corpus(&stand, &tools.corpus, &own_rules).await;
    let promtool = promtool_check_rules(&tools.promtool, &rule_files);
    assert_eq!(
        promtool.matches("SUCCESS").count(),
        rule_files.len(),
        "{promtool}"
    );

    // Long enough for both Prometheus servers to hold a consistent view of both variants;
    // then the experiment ends and is judged, its inventory frozen at creation.
    let experiment = stand
        .run_experiment(
            "aggregate under Prometheus",
            stand.spec("baseline", "aggregate", EXPERIMENT_SECS),
        )
        .await;
    let prom_b =
        Prometheus::start(&tools.prometheus, &stand.agent_listen, "/metrics/baseline").await;
    let prom_c =
        Prometheus::start(&tools.prometheus, &stand.agent_listen, "/metrics/candidate").await;
    // Enough scrapes for rates over any window.
    prom_b.wait_scrapes(5).await;
    prom_c.wait_scrapes(5).await;
    let (baseline, candidate, time) = consistent_view(&stand, &prom_b, &prom_c).await;
    let outcomes = classify(
        &inventory,
        (&baseline, &candidate),
        (&prom_b, &prom_c),
        time,
    )
    .await;

    // The counts, by source and overall.
    let mut by_source: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    let mut how: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for o in &outcomes {
        let i = match o.status {
            QueryStatus::Answered => 0,
            QueryStatus::Changed => 1,
            QueryStatus::Broken => 2,
            QueryStatus::Unobserved => 3,
        };
        by_source.entry(&o.source).or_default()[i] += 1;
        match &o.agreement {
            Ok(why) => *how.entry((status_name(o.status), why)).or_default() += 1,
            Err(e) => disagreements.push(format!(
                "{} {} ({}): Phoenix says {}, Prometheus: {e}\n  {}",
                o.source,
                o.query.name,
                o.query.location,
                status_name(o.status),
                o.query.promql
            )),
        }
    }
    let mut table = String::from(
        "| Source | Queries | Answered | Changed | Broken | Unobserved |\n|---|---|---|---|---|---|\n",
    );
    let mut total = [0usize; 4];
    for (source, counts) in &by_source {
        let _ = writeln!(
            table,
            "| {source} | {} | {} | {} | {} | {} |",
            counts.iter().sum::<usize>(),
            counts[0],
            counts[1],
            counts[2],
            counts[3]
        );
        for (t, c) in total.iter_mut().zip(counts) {
            *t += c;
        }
    }
    let _ = writeln!(
        table,
        "| **all** | **{}** | **{}** | **{}** | **{}** | **{}** |",
        total.iter().sum::<usize>(),
        total[0],
        total[1],
        total[2],
        total[3]
    );
    let mut agreements = String::new();
    for ((status, why), n) in &how {
        let _ = writeln!(agreements, "- {status}: {why}: {n}");
    }
    // What agrees without data on either side, to be read, not only counted.
    for o in &outcomes {
        if matches!(
            o.agreement,
            Ok("no data under either" | "the same constant under both")
        ) {
            let _ = writeln!(
                agreements,
                "  - {} ({}) {}: {}",
                status_name(o.status),
                o.source,
                o.query.name,
                o.query.promql
            );
        }
    }
    let refuted: usize = outcomes.iter().map(|o| o.refuted).sum();
    let informative = outcomes.iter().filter(|o| o.refuted > 0).count();
    println!("{table}\nAgreements with Prometheus:\n{agreements}");
    println!(
        "{} queries, {} disagreements; on {informative} queries Prometheus's answers refute {refuted} wrong statuses",
        outcomes.len(),
        disagreements.len()
    );
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/prometheus-queries.md"),
        format!("{table}\n{agreements}"),
    )
    .ok();

    assert!(
        disagreements.is_empty(),
        "{} of {} classifications disagree with Prometheus:\n{}",
        disagreements.len(),
        outcomes.len(),
        disagreements.join("\n")
    );
    // Every status occurs, and the corpus is not all unobserved.
    for (i, status) in ["answered", "changed", "broken", "unobserved"]
        .iter()
        .enumerate()
    {
        assert!(total[i] > 0, "no {status} query:\n{table}");
    }
    let corpus_answered = outcomes
        .iter()
        .filter(|o| {
            o.source != "phoenix-process-rules.yml"
                && o.status == QueryStatus::Answered
                && o.agreement == Ok("the same label sets")
        })
        .count();
    assert!(
        corpus_answered >= 50,
        "only {corpus_answered} corpus queries answered with data:\n{table}"
    );
    // Phoenix's own rules: each group is named after the status Phoenix must give its
    // rules under `aggregate`.
    for o in outcomes
        .iter()
        .filter(|o| o.source == "phoenix-process-rules.yml")
    {
        assert!(
            o.query
                .location
                .contains(&format!("group \"{}\"", status_name(o.status))),
            "{} ({}) is {}",
            o.query.name,
            o.query.location,
            status_name(o.status)
        );
    }
    // Every changed or broken query, and every answered one with data, has answers that
    // a wrong status would not have agreed with.
    for o in &outcomes {
        let informative = matches!(o.status, QueryStatus::Changed | QueryStatus::Broken)
            || o.agreement == Ok("the same label sets");
        assert!(
            !informative || o.refuted > 0,
            "{}: no wrong status would have been caught",
            o.query.name
        );
    }

    // The experiment's "queries kept" KPI, from the agent's evaluation of every sample,
    // names exactly the queries Prometheus confirmed broken and changed, and its verdict
    // fails on them, naming the broken alert.
    let confirmed = |status: QueryStatus| -> BTreeSet<(String, String)> {
        outcomes
            .iter()
            .filter(|o| o.status == status)
            // An experiment's frozen copy places a query in its source.
            .map(|o| {
                (
                    o.query.name.clone(),
                    format!("{}: {}", o.source, o.query.location),
                )
            })
            .collect()
    };
    let done = eventually(
        "the experiment's verdict",
        EXPERIMENT_SECS + 180,
        async || {
            let e = stand.phoenix.experiment(experiment).await.ok()?;
            e.verdict.is_some().then_some(e)
        },
    )
    .await;
    let kpis = stand
        .client
        .experiment_kpis(experiment.0)
        .await
        .expect("the experiment's KPIs");
    let kept = kpis
        .kpis
        .queries
        .expect("the experiment froze the inventory");
    let named = |status: phoenix_api::query::QueryStatus| -> BTreeSet<(String, String)> {
        kept.affected
            .iter()
            .filter(|v| v.status == status)
            .map(|v| (v.name.clone(), v.location.clone()))
            .collect()
    };
    assert_eq!(
        named(phoenix_api::query::QueryStatus::Broken),
        confirmed(QueryStatus::Broken),
        "the KPI's broken queries are those Prometheus confirmed"
    );
    assert_eq!(
        named(phoenix_api::query::QueryStatus::Changed),
        confirmed(QueryStatus::Changed),
        "the KPI's changed queries are those Prometheus confirmed"
    );
    let verdict = done.verdict.expect("judged");
    assert_eq!(
        verdict.outcome,
        phoenix_core::judge::VerdictOutcome::Fail,
        "{verdict:#?}"
    );
    let criterion = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == phoenix_core::judge::KpiName::QueriesBroken)
        .expect("the default queries kept criterion");
    assert!(criterion.criterion.critical);
    assert_eq!(criterion.passed, Some(false), "{criterion:#?}");
    let broken_alert = outcomes
        .iter()
        .find(|o| o.status == QueryStatus::Broken && o.query.location.contains("alert \""))
        .expect("a broken alert");
    assert!(
        criterion
            .reason
            .contains(&format!("`{}`", broken_alert.query.name)),
        "the verdict names the broken alert {}: {}",
        broken_alert.query.name,
        criterion.reason
    );
    println!(
        "verdict: {:?}; queries kept: {}",
        verdict.outcome, criterion.reason
    );

    // A candidate that keeps every query: top-K with K above the host's process count
    // keeps every process with all its labels. Prometheus answers every query under it as
    // under the baseline, and the experiment's queries kept criterion passes.
    let mut spec = stand.spec("baseline", "topk", EXPERIMENT_SECS);
    spec.candidate = spec
        .candidate
        .with_param("k", ParamValue::Int(i64::from(MAX_TOPK)));
    let keeper = stand
        .run_experiment("top-K keeps every query under Prometheus", spec)
        .await;
    // The agent serves the new candidate (the aggregate's candidate had no pids).
    eventually("the top-K candidate served", 120, async || {
        let c = stand.exposition("candidate").await?;
        c.contains("process_pid=").then_some(())
    })
    .await;
    let (baseline, candidate, time) = consistent_view(&stand, &prom_b, &prom_c).await;
    let outcomes = classify(
        &inventory,
        (&baseline, &candidate),
        (&prom_b, &prom_c),
        time,
    )
    .await;
    let disagreements: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            let e = o.agreement.as_ref().err()?;
            Some(format!(
                "{} {}: Phoenix says {}, Prometheus: {e}",
                o.source,
                o.query.name,
                status_name(o.status)
            ))
        })
        .collect();
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    let affected: Vec<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.status, QueryStatus::Broken | QueryStatus::Changed))
        .map(|o| o.query.name.as_str())
        .collect();
    assert!(affected.is_empty(), "top-K affects {affected:?}");
    let answered = outcomes
        .iter()
        .filter(|o| o.status == QueryStatus::Answered && o.agreement == Ok("the same label sets"))
        .count();
    assert!(answered >= 50, "only {answered} queries answered with data");
    let done = eventually("the keeper's verdict", EXPERIMENT_SECS + 180, async || {
        let e = stand.phoenix.experiment(keeper).await.ok()?;
        e.verdict.is_some().then_some(e)
    })
    .await;
    let verdict = done.verdict.expect("judged");
    let criterion = verdict
        .criteria
        .iter()
        .find(|c| c.criterion.kpi == phoenix_core::judge::KpiName::QueriesBroken)
        .expect("the default queries kept criterion");
    assert_eq!(
        (criterion.passed, criterion.measured),
        (Some(true), Some(0.0)),
        "{criterion:#?}"
    );
    println!(
        "top-K: {answered} queries answered with the same label sets under both Prometheus servers; queries kept: {}",
        criterion.reason
    );
    stand.stop().await;
}

#[test]
fn queries_sent_to_prometheus_keep_their_selectors_and_relax_only_filters() {
    assert_eq!(for_prometheus("up == 0"), "up == bool 0");
    assert_eq!(for_prometheus("a > bool 1"), "a > bool 1");
    assert_eq!(
        for_prometheus("x{a!=\"b\",c=~\"d\"} >= on (a) y"),
        "x{a!=\"b\",c=~\"d\"} >= bool on (a) y"
    );
    assert_eq!(
        for_prometheus(&format!(
            "node_load1{{instance=~\"{VARIABLE_MARKER}([\\\\.:].*)?\", job!=\"{VARIABLE_MARKER}\"}} < 2 # note"
        )),
        "node_load1{instance=~\".+\", job=~\".+\"} < bool 2 "
    );
    assert_eq!(
        for_prometheus("label_replace(a, \"x\", \"$1\", \"y\", \"(.*)>\") < boolean_metric"),
        "label_replace(a, \"x\", \"$1\", \"y\", \"(.*)>\") < bool boolean_metric"
    );
    // Each status refutes the others on answers that tell them apart.
    let set = |labels: &[(&str, &str)]| -> LabelSets {
        BTreeSet::from([labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()])
    };
    let (pid, name, none) = (
        set(&[("instance", "h"), ("pid", "1")]),
        set(&[("instance", "h")]),
        LabelSets::new(),
    );
    assert!(check(QueryStatus::Broken, &pid, &none).is_ok());
    assert!(check(QueryStatus::Changed, &pid, &none).is_err());
    assert!(check(QueryStatus::Answered, &pid, &none).is_err());
    assert!(check(QueryStatus::Changed, &pid, &name).is_ok());
    assert!(check(QueryStatus::Answered, &pid, &name).is_err());
    assert!(check(QueryStatus::Answered, &pid, &pid).is_ok());
    assert!(check(QueryStatus::Broken, &pid, &pid).is_err());
    assert!(check(QueryStatus::Changed, &pid, &pid).is_err());
    assert!(check(QueryStatus::Unobserved, &pid, &pid).is_err());
    assert!(check(QueryStatus::Unobserved, &none, &none).is_ok());
    let constant = BTreeSet::from([BTreeMap::new()]);
    assert!(check(QueryStatus::Unobserved, &constant, &constant).is_ok());
}
