//! Server benchmarks; results go to `docs/benchmarks.md` (section `## phoenix-server`).
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
//! 5. Fleet scale (`fleet.rs`): `PHOENIX_BENCH_AGENTS` (10,000) simulated agents at the
//!    agent's real cadence against one server on the memory store and two replicas on each
//!    database: time for a `start` to reach all of them, then a sustained window
//!    (`PHOENIX_BENCH_FLEET_SECS`, 60 s) with server CPU and RSS, p99 of each call, errors.
//!
//! Each scenario runs `PHOENIX_BENCH_REPS` times (3 by default), interleaved; the section
//! states min, median and max, the machine and peer versions read at run time, the load
//! average before and after, and a verdict computed from the median against the one
//! `TARGETS` table. The hand-written `### Notes` under the section are kept.
//!
//! `PHOENIX_BENCH_POLLS` sets the number of idle polls; `PHOENIX_BENCH_ONLY` (a comma
//! list of `heartbeats`, `idle-polls`, `replicas`, `product`, `fleet`) runs only those
//! scenarios and prints their section without touching the docs;
//! `PHOENIX_BENCH_WRAP` runs the server under a profiler (see `ServerProcess::start`).

mod drains;
mod fleet;
mod payload;
mod product;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

/// Which way a figure must lie relative to its target.
#[derive(Debug, Clone, Copy)]
enum Bound {
    AtMost(f64),
    Below(f64),
    AtLeast(f64),
}

/// The targets, in one table (design sections 6 and 6.1; cross-replica delivery from issue
/// 8). A verdict is computed from the median of the repetitions against these, never
/// written. Figures without a row have no target.
const TARGETS: &[(Metric, Bound, &str)] = &[
    (
        Metric::RssPerIdlePollKib,
        Bound::AtMost(16.0),
        "<= 16 KiB RSS per idle long-poll",
    ),
    (
        Metric::IdleCpuPctOfCore,
        Bound::Below(5.0),
        "idle CPU < 5 % of a core",
    ),
    (
        Metric::RedisDeliveryP99Ms,
        Bound::AtMost(50.0),
        "cross-replica delivery <= 50 ms p99",
    ),
    (
        Metric::PostgresDeliveryP99Ms,
        Bound::AtMost(50.0),
        "cross-replica delivery <= 50 ms p99",
    ),
    (
        Metric::Product(Db::Postgres, Product::HttpOverApalis),
        Bound::AtLeast(1.0),
        "product path >= apalis library at its defaults",
    ),
    (
        Metric::Product(Db::Redis, Product::HttpOverApalis),
        Bound::AtLeast(1.0),
        "product path >= apalis library at its defaults",
    ),
    (
        Metric::Product(Db::Postgres, Product::LibraryOverApalis),
        Bound::AtLeast(2.0),
        "library >= 2x apalis",
    ),
    (
        Metric::Product(Db::Redis, Product::LibraryOverApalis),
        Bound::AtLeast(2.0),
        "library >= 2x apalis",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::ServerCpuPctOfCore),
        Bound::Below(25.0),
        "10,000 agents on one replica: < 25 % of a core",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::StartToAllSecs),
        Bound::Below(5.0),
        "a start reaches all 10,000 in < 5 s",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::DeliveryP99Ms),
        Bound::Below(5000.0),
        "a start reaches all 10,000 in < 5 s",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::HeartbeatP99Ms),
        Bound::Below(50.0),
        "p99 of every call < 50 ms",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::TaskReportP99Ms),
        Bound::Below(50.0),
        "p99 of every call < 50 ms",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::MetricsReportP99Ms),
        Bound::Below(50.0),
        "p99 of every call < 50 ms",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::EmptyPollLateP99Ms),
        Bound::Below(50.0),
        "p99 of every call < 50 ms",
    ),
    (
        Metric::Fleet(FleetStore::Memory, Fleet::Errors),
        Bound::AtMost(0.0),
        "sustained without errors",
    ),
    (
        Metric::Fleet(FleetStore::Replicas(Db::Postgres), Fleet::Errors),
        Bound::AtMost(0.0),
        "sustained without errors",
    ),
    (
        Metric::Fleet(FleetStore::Replicas(Db::Redis), Fleet::Errors),
        Bound::AtMost(0.0),
        "sustained without errors",
    ),
];

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

/// Facts about the machine and the peers, read when the benchmark runs.
struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
    load_before: String,
    load_after: String,
    postgres: String,
    redis: String,
}

fn read_or(path: &str, default: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| default.to_owned())
}

fn load_average() -> String {
    read_or("/proc/loadavg", "unknown")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A peer's version as its own command-line client reports it, or "not measured".
fn peer_version(program: &str, args: &[&str], pick: impl Fn(&str) -> Option<String>) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| pick(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_else(|| "not measured".to_owned())
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = read_or("/proc/cpuinfo", "");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map_or("unknown", |v| v.trim_start_matches([' ', '\t', ':']))
            .to_owned();
        let memory_kib: f64 = read_or("/proc/meminfo", "")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let postgres = std::env::var("PHOENIX_TEST_POSTGRES_URL").map_or_else(
            |_| "not used".to_owned(),
            |url| {
                peer_version("psql", &[&url, "-Atqc", "show server_version"], |out| {
                    out.lines()
                        .next()
                        .map(|l| format!("PostgreSQL {}", l.trim()))
                })
            },
        );
        let redis = std::env::var("PHOENIX_TEST_REDIS_URL").map_or_else(
            |_| "not used".to_owned(),
            |url| {
                peer_version("redis-cli", &["-u", &url, "INFO", "server"], |out| {
                    out.lines()
                        .find_map(|l| l.strip_prefix("redis_version:"))
                        .map(|v| format!("Redis {}", v.trim()))
                })
            },
        );
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel: read_or("/proc/sys/kernel/osrelease", "unknown")
                .trim()
                .to_owned(),
            load_before: load_average(),
            load_after: String::new(),
            postgres,
            redis,
        }
    }
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn verdict(metric: Metric, median: f64) -> String {
    match TARGETS.iter().find(|(m, _, _)| *m == metric) {
        None => "no target".to_owned(),
        Some((_, bound, text)) => {
            let met = match bound {
                Bound::AtMost(t) => median <= *t,
                Bound::Below(t) => median < *t,
                Bound::AtLeast(t) => median >= *t,
            };
            format!("{} ({text})", if met { "met" } else { "**missed**" })
        }
    }
}

fn render_section(
    results: &Results,
    machine: &Machine,
    command: &str,
    reps: usize,
    fleet_reps: usize,
    setup: &Setup,
) -> String {
    let mut out = String::from("## phoenix-server\n\n");
    out.push_str(&format!(
        "Generated by `{command}`; everything in this section comes from that run. Machine: \
{cpu}, {cores} logical cores, {mem:.1} GiB RAM, Linux {kernel}; load average (1, 5, 15 min) \
{before} before and {after} after the run. Peers: {pg}; {redis}. Release build; the server \
runs as its own process, the load generator in the bench process over loopback HTTP/1.1 \
keep-alive; per-agent rate limit raised out of the way. {reps} repetitions of each \
scenario, interleaved ({fleet_reps} of the fleet).\n\n{product}\n\n{fleet}\n\n| Scenario | min | median | max | target |\n|---|---|---|---|---|\n",
        cpu = machine.cpu,
        cores = machine.cores,
        mem = machine.memory_gib,
        kernel = machine.kernel,
        before = machine.load_before,
        after = machine.load_after,
        pg = machine.postgres,
        redis = machine.redis,
        product = product::describe(setup),
        fleet = fleet::describe(setup),
    ));
    for (metric, values) in &results.figures {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let med = median(&sorted);
        out.push_str(&format!(
            "| {} | {:.2} | {med:.2} | {:.2} | {} |\n",
            metric.describe(setup),
            sorted[0],
            sorted[sorted.len() - 1],
            verdict(*metric, med),
        ));
    }
    out.push_str("\nEach repetition:\n\n");
    for d in &results.details {
        out.push_str(&format!("- {d}\n"));
    }
    out
}

/// Replaces the `## phoenix-server` section of `docs/benchmarks.md` up to its
/// hand-written notes (`### Notes`), which are kept.
fn write_section(section: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".to_owned());
    let out = match text.find("## phoenix-server\n") {
        Some(start) => {
            let rest = &text[start..];
            let generated_end = [
                rest.find("\n### Notes"),
                rest[1..].find("\n## ").map(|e| e + 1),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
            format!(
                "{}{}{}",
                &text[..start],
                section,
                &text[start + generated_end..]
            )
        }
        None => format!("{}\n\n{section}", text.trim_end()),
    };
    std::fs::write(&path, out).expect("write docs/benchmarks.md");
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
    machine.load_after = load_average();
    let section = render_section(
        &results,
        &machine,
        &command_line(),
        reps,
        fleet_reps,
        &setup,
    );
    print!("{section}");
    if only.is_none() {
        write_section(&section);
    } else {
        // A look at some figures while working on them; docs/benchmarks.md is left alone.
        println!("(PHOENIX_BENCH_ONLY set: docs/benchmarks.md not written)");
    }
}
