//! Server benchmarks; results go to `docs/benchmarks.md` (the generated block of
//! `## phoenix-server`).
//!
//! Run: `scripts/bench-server` (raises the open-file limit, builds in release, runs this).
//!
//! 1. Heartbeat throughput: the server (its own process, memory store) and 64 agents
//!    sending heartbeats back to back over keep-alive connections for a fixed time.
//! 2. Idle long-polls: 10,000 agents each send a heartbeat, then hold one
//!    `GET /api/v1/agent/tasks?wait=110`; the
//!    server process's RSS growth per waiting poll, and its CPU while they wait.
//! 3. With `PHOENIX_TEST_REDIS_URL` / `PHOENIX_TEST_POSTGRES_URL`: two server replicas on
//!    one Redis / one PostgreSQL; an experiment started
//!    through A is delivered to an agent long-polling B (latency from sending `start` to
//!    the poll's answer).
//! 4. Product path (`product.rs`), with `PHOENIX_TEST_POSTGRES_URL` / `PHOENIX_TEST_REDIS_URL`:
//!    one server on the database, 64 simulated agents over HTTP draining a backlog enqueued
//!    through phoenix-core, then heartbeats and measurement reports back to back, each with
//!    server (and database) CPU per 1,000 requests; next to it, in the same repetition,
//!    Phoenix's library drain and apalis 1.0 at its defaults on the same database.
//! 6. Fleet views at scale (`scale.rs`, issue #15 item 4): 1,000 hosts x 5,000 series on
//!    the memory store, PostgreSQL and Redis, the cost flow and cardinality read over HTTP
//!    (cold, quiet, while snapshots are replaced at 1,000/min) and the server's CPU while it
//!    ingests 1,000 snapshots/min; its own block (`server-scale`), written when run alone
//!    (`PHOENIX_BENCH_ONLY=scale`) or in a full run.
//! 5. Fleet scale (`fleet.rs`): `PHOENIX_BENCH_AGENTS` (10,000) simulated agents at the
//!    agent's real cadence against one server on the memory store and two replicas on each
//!    database: time for a `start` to reach all of them, then a sustained window
//!    (`PHOENIX_BENCH_FLEET_SECS`, 60 s) with server CPU and RSS, p99 of each call, errors.
//!
//! Each scenario runs `PHOENIX_BENCH_REPS` times (3 by default), interleaved; the section
//! states min, median and max, the machine and peer versions read at run time, the load
//! average before and after, and a verdict computed from the median against the one
//! `TARGETS` table (through `phoenix-bench`). The hand-written `### Notes` under the block are kept.
//!
//! `PHOENIX_BENCH_POLLS` sets the number of idle polls; `PHOENIX_BENCH_ONLY` (a comma
//! list of `heartbeats`, `idle-polls`, `replicas`, `product`, `fleet`, `scale`) runs only those
//! scenarios and prints their section without touching the docs;
//! `PHOENIX_BENCH_WRAP` runs the server under a profiler (see `ServerProcess::start`).

mod drains;
mod fleet;
mod payload;
mod product;
mod scale;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phoenix_bench::{Bound, Machine, Report, Target, percentile, write_generated};
use phoenix_client::Client;
use phoenix_client::api::agent::{AgentRegistration, Heartbeat};
use phoenix_client::api::experiment::{ExperimentSpec, NewExperiment};
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::token::{NewToken, Role};

const ADMIN: &str = "phx_user_bench-admin-0123456789abcdef";
const ENROLL: &str = "bench-enrollment-0123456789";

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    fn start(extra: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("exe");
        let server = exe.with_file_name("phoenix-server");
        let port = free_port();
        // `PHOENIX_BENCH_WRAP="valgrind --tool=massif"` runs the server under a profiler
        // (which must keep the server's pid, as valgrind does); it is stopped with SIGTERM
        // so the profiler writes its output.
        let wrap = std::env::var("PHOENIX_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut cmd = Command::new(tool);
                cmd.args(words).arg(server);
                cmd
            }
            None => Command::new(server),
        };
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            ADMIN,
            "--enrollment-token",
            ENROLL,
            "--log",
            "warn",
            "--agent-rate-per-sec",
            "100000",
            "--agent-rate-burst",
            "100000",
            "--max-poll-wait-secs",
            "120",
            // Every simulated agent connects from 127.0.0.1.
            "--max-connections-per-client",
            "1000000",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start phoenix-server (build it first)");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn ready(&self) {
        let client = Client::new(&self.base).expect("client");
        for _ in 0..200 {
            if client.readyz().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if std::env::var_os("PHOENIX_BENCH_WRAP").is_some() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (100 Hz on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

async fn enroll_many(base: &str, n: usize, concurrency: usize) -> Vec<Client> {
    let http = reqwest_client(n);
    enroll(base, n, concurrency, "bench")
        .await
        .into_iter()
        .map(|e| {
            Client::with_http(base, http.clone())
                .expect("client")
                .with_token(e.credential)
        })
        .collect()
}

/// `n` agents enrolled on the server at `base`, hosts named `{prefix}-00000`, ...
async fn enroll(
    base: &str,
    n: usize,
    concurrency: usize,
    prefix: &str,
) -> Vec<phoenix_client::api::agent::EnrollResponse> {
    let http = reqwest_client(concurrency);
    let anon = Client::with_http(base, http).expect("client");
    let mut out = Vec::with_capacity(n);
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut next = 0;
    use futures::StreamExt as _;
    while out.len() < n {
        while next < n && pending.len() < concurrency {
            let anon = anon.clone();
            pending.push(async move {
                anon.enroll(
                    ENROLL,
                    &AgentRegistration {
                        host: format!("{prefix}-{next:05}"),
                        version: "bench".to_owned(),
                        os: "linux".to_owned(),
                        ..AgentRegistration::default()
                    },
                )
                .await
            });
            next += 1;
        }
        out.push(pending.next().await.expect("pending").expect("enroll"));
    }
    out
}

fn reqwest_client(max_idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_idle)
        .build()
        .expect("http client")
}

/// A database the product path and the fleet run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Db {
    Postgres,
    Redis,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis",
        }
    }
}

/// Product-path figures (per database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Product {
    TasksPerSec,
    TaskRequestsPerSec,
    TaskServerCpuMsPerK,
    TaskDbCpuMsPerK,
    HeartbeatsPerSec,
    HeartbeatServerCpuMsPerK,
    HeartbeatDbCpuMsPerK,
    MetricsPerSec,
    MetricsServerCpuMsPerK,
    MetricsDbCpuMsPerK,
    LibraryTasksPerSec,
    ApalisTasksPerSec,
    LibraryOverApalis,
    HttpOverApalis,
}

/// Where a fleet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FleetStore {
    Memory,
    Replicas(Db),
}

impl FleetStore {
    fn describe(self) -> String {
        match self {
            Self::Memory => "one server, memory store".to_owned(),
            Self::Replicas(db) => format!("two replicas on one {}", db.name()),
        }
    }
}

/// Fleet figures (per store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fleet {
    StartToAllSecs,
    DeliveryP99Ms,
    HeartbeatP99Ms,
    TaskReportP99Ms,
    MetricsReportP99Ms,
    EmptyPollLateP99Ms,
    Errors,
    ServerCpuPctOfCore,
    ServerRssMib,
    LoadgenCpuPctOfCore,
}

/// One measured figure of one repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    HeartbeatsPerSec,
    RssPerIdlePollKib,
    IdleCpuPctOfCore,
    RedisDeliveryP99Ms,
    PostgresDeliveryP99Ms,
    Product(Db, Product),
    Fleet(FleetStore, Fleet),
}

/// The configuration the descriptions quote.
struct Setup {
    polls: usize,
    product_agents: usize,
    backlog: usize,
    library_workers: usize,
    fleet_agents: usize,
    fleet_secs: u64,
    snapshot_series: usize,
}

impl Metric {
    fn describe(self, s: &Setup) -> String {
        let polls = s.polls;
        match self {
            Self::HeartbeatsPerSec => {
                "heartbeat throughput, 64 agents back to back, 10 s, memory store (requests/s)"
                    .to_owned()
            }
            Self::RssPerIdlePollKib => format!(
                "server RSS per idle long-poll, {polls} concurrent polls, memory store (KiB)"
            ),
            Self::IdleCpuPctOfCore => {
                format!("server CPU while {polls} long-polls wait, 20 s window (% of one core)")
            }
            Self::RedisDeliveryP99Ms => "two replicas on one Redis: `start` sent to A -> task received by an agent long-polling B, p99 of 200 runs (ms)".to_owned(),
            Self::PostgresDeliveryP99Ms => "two replicas on one PostgreSQL: `start` sent to A -> task received by an agent long-polling B, p99 of 200 runs (ms)".to_owned(),
            Self::Product(db, p) => {
                let db = db.name();
                let (agents, backlog, workers) = (s.product_agents, s.backlog, s.library_workers);
                match p {
                    Product::TasksPerSec => format!("{db}, product path: {agents} agents over HTTP drain {backlog} tasks, each claimed by long-poll and reported `succeeded` one by one (tasks/s)"),
                    Product::TaskRequestsPerSec => format!("{db}, product path: HTTP requests of that drain, polls + reports (requests/s)"),
                    Product::TaskServerCpuMsPerK => format!("{db}, product path: server CPU per 1,000 requests of the drain (ms)"),
                    Product::TaskDbCpuMsPerK => format!("{db}, product path: database CPU per 1,000 requests of the drain (ms)"),
                    Product::HeartbeatsPerSec => format!("{db}, {agents} agents sending heartbeats back to back, 5 s (requests/s)"),
                    Product::HeartbeatServerCpuMsPerK => format!("{db}, server CPU per 1,000 heartbeats (ms)"),
                    Product::HeartbeatDbCpuMsPerK => format!("{db}, database CPU per 1,000 heartbeats (ms)"),
                    Product::MetricsPerSec => format!("{db}, {agents} agents sending measurement reports (one sample each) back to back, 5 s (requests/s)"),
                    Product::MetricsServerCpuMsPerK => format!("{db}, server CPU per 1,000 measurement reports (ms)"),
                    Product::MetricsDbCpuMsPerK => format!("{db}, database CPU per 1,000 measurement reports (ms)"),
                    Product::LibraryTasksPerSec => format!("{db}, Phoenix library: {workers} workers, claim 16 + `complete_batch`, {backlog} tasks, in process (tasks/s)"),
                    Product::ApalisTasksPerSec => format!("{db}, apalis 1.0 at `Config::default()`: {workers} workers, {backlog} tasks, in process, no HTTP layer (tasks/s)"),
                    Product::LibraryOverApalis => format!("{db}, ratio Phoenix library / apalis library (same repetition)"),
                    Product::HttpOverApalis => format!("{db}, ratio Phoenix product path over HTTP / apalis library (same repetition)"),
                }
            }
            Self::Fleet(store, f) => {
                let (n, secs) = (s.fleet_agents, s.fleet_secs);
                let store = store.describe();
                match f {
                    Fleet::StartToAllSecs => format!("{n} agents, {store}: `start` sent -> the last agent received its deploy task (s)"),
                    Fleet::DeliveryP99Ms => format!("{n} agents, {store}: `start` sent -> deploy task received, p99 over the agents (ms)"),
                    Fleet::HeartbeatP99Ms => format!("{n} agents, {store}: heartbeat p99 (ms)"),
                    Fleet::TaskReportP99Ms => format!("{n} agents, {store}: task report (`succeeded`) p99 (ms)"),
                    Fleet::MetricsReportP99Ms => format!("{n} agents, {store}: measurement report p99 (ms)"),
                    Fleet::EmptyPollLateP99Ms => format!("{n} agents, {store}: empty long-poll answered after its wait, lateness p99 (ms)"),
                    Fleet::Errors => format!("{n} agents, {store}: failed calls, start to end of the {secs} s window"),
                    Fleet::ServerCpuPctOfCore => format!("{n} agents, {store}: server CPU over {secs} s, busiest replica (% of one core)"),
                    Fleet::ServerRssMib => format!("{n} agents, {store}: server RSS at the end, largest replica (MiB)"),
                    Fleet::LoadgenCpuPctOfCore => format!("{n} agents, {store}: load generator CPU over the same window (% of one core)"),
                }
            }
        }
    }
}

/// The targets, in one table (design sections 6 and 6.1; cross-replica delivery from issue
/// 8). A verdict is computed from the median of the repetitions against these, never
/// written. Figures that [`Metric::targets`] maps to none have no target.
static TARGETS: [Target; 10] = [
    Target {
        id: "idle-poll-rss",
        bound: Bound::AtMost(16.0),
        text: "<= 16 KiB RSS per idle long-poll, design 6",
    },
    Target {
        id: "idle-cpu",
        bound: Bound::Below(5.0),
        text: "idle CPU < 5 % of a core, design 6",
    },
    Target {
        id: "cross-replica",
        bound: Bound::AtMost(50.0),
        text: "cross-replica delivery <= 50 ms p99",
    },
    Target {
        id: "http-vs-apalis",
        bound: Bound::AtLeast(1.0),
        text: "product path >= the apalis library figure at its defaults, design 6.1",
    },
    Target {
        id: "library-2x",
        bound: Bound::AtLeast(2.0),
        text: "library >= 2x apalis, design 6",
    },
    Target {
        id: "fleet-cpu",
        bound: Bound::Below(25.0),
        text: "10,000 agents on one replica: < 25 % of a core, design 6.1",
    },
    Target {
        id: "fleet-start-secs",
        bound: Bound::Below(5.0),
        text: "a start reaches all 10,000 in < 5 s, design 6.1",
    },
    Target {
        id: "fleet-start-ms",
        bound: Bound::Below(5_000.0),
        text: "a start reaches all 10,000 in < 5 s, design 6.1",
    },
    Target {
        id: "fleet-call-p99",
        bound: Bound::Below(50.0),
        text: "p99 of every call < 50 ms, design 6.1",
    },
    Target {
        id: "fleet-errors",
        bound: Bound::AtMost(0.0),
        text: "sustained without errors",
    },
];

impl Metric {
    /// The targets this figure is checked against.
    fn targets(self) -> Vec<&'static Target> {
        let ids: &[&str] = match self {
            Self::RssPerIdlePollKib => &["idle-poll-rss"],
            Self::IdleCpuPctOfCore => &["idle-cpu"],
            Self::RedisDeliveryP99Ms | Self::PostgresDeliveryP99Ms => &["cross-replica"],
            Self::Product(_, Product::HttpOverApalis) => &["http-vs-apalis"],
            Self::Product(_, Product::LibraryOverApalis) => &["library-2x"],
            Self::Fleet(FleetStore::Memory, Fleet::ServerCpuPctOfCore) => &["fleet-cpu"],
            Self::Fleet(FleetStore::Memory, Fleet::StartToAllSecs) => &["fleet-start-secs"],
            Self::Fleet(FleetStore::Memory, Fleet::DeliveryP99Ms) => &["fleet-start-ms"],
            Self::Fleet(
                FleetStore::Memory,
                Fleet::HeartbeatP99Ms
                | Fleet::TaskReportP99Ms
                | Fleet::MetricsReportP99Ms
                | Fleet::EmptyPollLateP99Ms,
            ) => &["fleet-call-p99"],
            Self::Fleet(_, Fleet::Errors) => &["fleet-errors"],
            _ => &[],
        };
        ids.iter().map(|id| Target::find(&TARGETS, id)).collect()
    }
}

/// Every repetition's figures, and the detail lines worth showing beside them.
#[derive(Default)]
struct Results {
    figures: std::collections::BTreeMap<Metric, Vec<f64>>,
    details: Vec<String>,
}

impl Results {
    fn record(&mut self, metric: Metric, value: f64, detail: String) {
        println!("{metric:?}: {value:.2} ({detail})");
        self.figures.entry(metric).or_default().push(value);
        if !detail.is_empty() {
            self.details.push(detail);
        }
    }
}

async fn heartbeats(results: &mut Results) {
    let server = ServerProcess::start(&["--store", "memory:", "--no-controller"]);
    server.ready().await;
    let agents = enroll_many(&server.base, 64, 64).await;
    let done = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs(10);
    let start = Instant::now();
    let mut handles = Vec::new();
    for agent in agents {
        let done = done.clone();
        handles.push(tokio::spawn(async move {
            let hb = Heartbeat::default();
            while start.elapsed() < run_for {
                agent.heartbeat(&hb).await.expect("heartbeat");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for h in handles {
        h.await.expect("join");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    results.record(
        Metric::HeartbeatsPerSec,
        n as f64 / elapsed,
        format!("{n} heartbeats in {elapsed:.1} s"),
    );
}

async fn idle_polls(results: &mut Results, n: usize) {
    let server = ServerProcess::start(&["--store", "memory:", "--no-controller"]);
    server.ready().await;
    let agents = enroll_many(&server.base, n, 256).await;
    // Let the allocator settle after enrollment before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(server.pid());
    let metrics = Client::new(&server.base).expect("client");
    let mut polls = Vec::with_capacity(n);
    for agent in &agents {
        let agent = agent.clone();
        polls.push(tokio::spawn(async move {
            // As a running agent does: a heartbeat, then the poll (so connections have
            // answered a request before, as they have in a fleet's steady state).
            agent
                .heartbeat(&Heartbeat::default())
                .await
                .expect("heartbeat");
            agent.poll_tasks(Some(Duration::from_secs(110)), None).await
        }));
    }
    // Wait until every poll is registered on the server.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiting = 0;
    loop {
        let text = metrics.server_metrics().await.unwrap_or_default();
        waiting = text
            .lines()
            .find_map(|l| l.strip_prefix("phoenix_long_polls_waiting "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(waiting);
        if waiting >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        waiting >= n,
        "only {waiting} of {n} polls were waiting after 120 s: the figures would be wrong"
    );
    let during = rss_kib(server.pid());
    let ticks0 = cpu_ticks(server.pid());
    let window = Duration::from_secs(20);
    tokio::time::sleep(window).await;
    let ticks1 = cpu_ticks(server.pid());
    let cpu_pct = (ticks1 - ticks0) as f64 / window.as_secs_f64(); // 100 ticks/s = 100 %
    let per_poll = (during.saturating_sub(before)) as f64 / n as f64;
    results.record(
        Metric::RssPerIdlePollKib,
        per_poll,
        format!("server RSS {before} KiB before, {during} KiB with {n} polls waiting"),
    );
    results.record(
        Metric::IdleCpuPctOfCore,
        cpu_pct,
        format!("{} clock ticks in {} s", ticks1 - ticks0, window.as_secs()),
    );
    for p in polls {
        p.abort();
    }
}

async fn replicas(results: &mut Results, url: &str, metric: Metric) {
    // A fresh namespace (Redis key prefix, PostgreSQL schema) per run.
    static RUN: AtomicU64 = AtomicU64::new(0);
    let prefix = format!(
        "bench_{}_{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let a = ServerProcess::start(&["--store", url, "--store-namespace", &prefix]);
    let b = ServerProcess::start(&["--store", url, "--store-namespace", &prefix]);
    a.ready().await;
    b.ready().await;
    let admin_a = Client::new(&a.base).expect("client").with_token(ADMIN);
    let operator = admin_a
        .create_token(&NewToken {
            name: "bench".to_owned(),
            role: Role::Operator,
        })
        .await
        .expect("token");
    let operator = Client::new(&a.base)
        .expect("client")
        .with_token(operator.secret);
    let agent = enroll_many(&b.base, 1, 1).await.remove(0);
    agent
        .heartbeat(&Heartbeat::default())
        .await
        .expect("heartbeat");
    let mut latencies = Vec::new();
    for i in 0..200 {
        let exp = operator
            .create_experiment(&NewExperiment {
                name: format!("bench {i}"),
                description: String::new(),
                spec: ExperimentSpec::new(
                    PipelineRef::new("baseline"),
                    PipelineRef::new("topk"),
                    600,
                ),
            })
            .await
            .expect("create");
        let poller = agent.clone();
        let poll = tokio::spawn(async move {
            let tasks = poller
                .poll_tasks(Some(Duration::from_secs(30)), None)
                .await
                .expect("poll");
            (Instant::now(), tasks)
        });
        // Give the poll time to register on B before starting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t0 = Instant::now();
        operator.start_experiment(exp.id).await.expect("start");
        let (t1, tasks) = poll.await.expect("join");
        assert_eq!(tasks.len(), 1);
        latencies.push((t1 - t0).as_secs_f64() * 1000.0);
        agent.complete_task(&tasks[0], None).await.expect("ack");
        operator.stop_experiment(exp.id, None).await.expect("stop");
        let teardown = agent
            .poll_tasks(Some(Duration::from_secs(5)), None)
            .await
            .expect("poll");
        for t in &teardown {
            agent.complete_task(t, None).await.expect("ack");
        }
    }
    latencies.sort_by(f64::total_cmp);
    let p99 = percentile(&latencies, 99.0);
    results.record(
        metric,
        p99,
        format!(
            "{metric:?}: p50 {:.2} ms, p99 {p99:.2} ms, max {:.2} ms",
            percentile(&latencies, 50.0),
            latencies.last().copied().unwrap_or(f64::NAN)
        ),
    );
}

fn render_section(
    results: &Results,
    machine: &Machine,
    reps: usize,
    fleet_reps: usize,
    setup: &Setup,
) -> String {
    let mut report = Report::new();
    for (metric, values) in &results.figures {
        report.row(metric.describe(setup), values.clone(), 2, &metric.targets());
    }
    let mut out = format!(
        "{machine}\n\nRelease build; the server runs as its own process, the load generator in \
the bench process over loopback HTTP/1.1 keep-alive; per-agent rate limit raised out of the \
way. {reps} repetitions of each scenario, interleaved ({fleet_reps} of the fleet).\n\n\
{product}\n\n{fleet}\n\n{table}",
        machine = machine.describe(),
        product = product::describe(setup),
        fleet = fleet::describe(setup),
        table = report.render(),
    );
    out.push_str("\nEach repetition:\n\n");
    for d in &results.details {
        out.push_str(&format!("- {d}\n"));
    }
    out
}

fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The command as run, with the settings that differ from the defaults.
fn command_line() -> String {
    let mut words: Vec<String> = [
        "PHOENIX_BENCH_REPS",
        "PHOENIX_BENCH_FLEET_REPS",
        "PHOENIX_BENCH_POLLS",
        "PHOENIX_BENCH_AGENTS",
        "PHOENIX_BENCH_FLEET_SECS",
        "PHOENIX_BENCH_TASKS",
    ]
    .iter()
    .filter_map(|var| std::env::var(var).ok().map(|v| format!("{var}={v}")))
    .collect();
    words.push("scripts/bench-server".to_owned());
    words.join(" ")
}

#[tokio::main]
async fn main() {
    let reps = env_usize("PHOENIX_BENCH_REPS", 3).max(1);
    let fleet_reps = env_usize("PHOENIX_BENCH_FLEET_REPS", reps).max(1);
    let only = std::env::var("PHOENIX_BENCH_ONLY").ok();
    let selected = |name: &str| {
        only.as_deref()
            .is_none_or(|list| list.split(',').any(|s| s.trim() == name))
    };
    let needs_payload = selected("product") || selected("fleet");
    let payload = needs_payload.then(|| Arc::new(payload::HostPayload::read()));
    let setup = Setup {
        polls: env_usize("PHOENIX_BENCH_POLLS", 10_000),
        product_agents: 64,
        // apalis-redis cannot promote more than about 8,000 due jobs in one call (see the
        // store bench): the same backlog for everyone, below that.
        backlog: env_usize("PHOENIX_BENCH_TASKS", 5_000),
        library_workers: 8,
        fleet_agents: env_usize("PHOENIX_BENCH_AGENTS", 10_000),
        fleet_secs: env_usize("PHOENIX_BENCH_FLEET_SECS", 60) as u64,
        snapshot_series: payload.as_ref().map_or(0, |p| p.snapshot_series),
    };
    let mut results = Results::default();
    let mut machine = Machine::read();
    let postgres = std::env::var("PHOENIX_TEST_POSTGRES_URL").ok();
    let redis = std::env::var("PHOENIX_TEST_REDIS_URL").ok();
    if let Some(url) = &postgres {
        machine.with_postgres(url);
    }
    if let Some(url) = &redis {
        machine.with_redis(url);
    }
    if needs_payload {
        machine.with_peer("apalis-postgres 1.0, apalis-redis 1.0");
    }
    // A database of the bench's own on the PostgreSQL server, recreated for this run.
    let bench_pg = match (&postgres, needs_payload) {
        (Some(url), true) => Some(product::bench_database(url).await),
        _ => None,
    };
    // Scenarios interleaved, repetition by repetition, so that a change in the machine's
    // load shows in every figure's spread rather than in one scenario's.
    for rep in 1..=reps {
        println!("repetition {rep} of {reps}");
        if selected("heartbeats") {
            heartbeats(&mut results).await;
        }
        if selected("idle-polls") {
            idle_polls(&mut results, setup.polls).await;
        }
        if selected("replicas") {
            for (url, metric) in [
                (&redis, Metric::RedisDeliveryP99Ms),
                (&postgres, Metric::PostgresDeliveryP99Ms),
            ] {
                match url {
                    Some(url) => replicas(&mut results, url, metric).await,
                    None if rep == 1 => {
                        eprintln!(
                            "SKIPPED: no database URL; no cross-replica figure for {metric:?}"
                        );
                    }
                    None => {}
                }
            }
        }
        if let Some(payload) = &payload {
            if selected("product") {
                for (db, url) in [(Db::Postgres, &bench_pg), (Db::Redis, &redis)] {
                    match url {
                        Some(url) => {
                            product::product(&mut results, db, url, &setup, payload).await;
                        }
                        None if rep == 1 => {
                            eprintln!("SKIPPED: no {} URL; no product-path figures", db.name());
                        }
                        None => {}
                    }
                }
            }
            if selected("fleet") && rep <= fleet_reps {
                fleet::fleet(&mut results, FleetStore::Memory, None, &setup, payload).await;
                for (db, url) in [(Db::Postgres, &bench_pg), (Db::Redis, &redis)] {
                    if let Some(url) = url {
                        fleet::fleet(
                            &mut results,
                            FleetStore::Replicas(db),
                            Some(url),
                            &setup,
                            payload,
                        )
                        .await;
                    }
                }
            }
        }
    }
    // Fleet views at scale: once (its figures are percentiles over many requests), into
    // its own block.
    if selected("scale") {
        let mut machine = Machine::read();
        if let Some(url) = &postgres {
            machine.with_postgres(url);
        }
        if let Some(url) = &redis {
            machine.with_redis(url);
        }
        let section = scale::scale(
            &scale::ScaleSetup::from_env(),
            &mut machine,
            postgres.as_deref(),
            redis.as_deref(),
        )
        .await;
        print!("{section}");
        if only.as_deref().is_none_or(|o| o.trim() == "scale") {
            scale::write(&section);
        }
        if only.as_deref().is_some_and(|o| o.trim() == "scale") {
            return;
        }
    }
    machine.finish();
    let section = render_section(&results, &machine, reps, fleet_reps, &setup);
    print!("{section}");
    if only.is_none() {
        write_generated("server", &command_line(), &section);
    } else {
        // A look at some figures while working on them; docs/benchmarks.md is left alone.
        println!("(PHOENIX_BENCH_ONLY set: docs/benchmarks.md not written)");
    }
}
