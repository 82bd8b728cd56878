//! Fleet views at scale (issue #15, item 4): `PHOENIX_BENCH_SCALE_HOSTS` (1,000) agents each
//! report a hostmetrics-shaped snapshot of `PHOENIX_BENCH_SCALE_SERIES` (5,000) series to
//! one server process (memory store, PostgreSQL, Redis); then the cost flow (with its
//! recommendations) and the cardinality breakdowns are read over HTTP: the cold first
//! request, a quiet series of requests, and requests while every host's snapshot is
//! replaced at `PHOENIX_BENCH_SCALE_RATE` (1,000) snapshots per minute; and the server's CPU
//! while it ingests at that rate with no view requested. Writes its own generated block
//! (`server-scale`) of docs/benchmarks.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use phoenix_bench::{Bound, Machine, Report, Target, percentile, write_generated};
use phoenix_client::Client;
use phoenix_client::api::measure::MetricsReport;
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, PackedSnapshot, SnapshotSeries, SnapshotSource};

use crate::{ADMIN, ServerProcess, cpu_ticks, enroll, env_usize, reqwest_client, rss_kib};

/// What the section is run with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScaleSetup {
    hosts: usize,
    series: usize,
    requests: usize,
    rate_per_min: usize,
    window_secs: u64,
}

impl ScaleSetup {
    pub(crate) fn from_env() -> Self {
        Self {
            hosts: env_usize("PHOENIX_BENCH_SCALE_HOSTS", 1_000),
            // A multiple of the series per process (10).
            series: env_usize("PHOENIX_BENCH_SCALE_SERIES", 5_000).max(10) / 10 * 10,
            requests: env_usize("PHOENIX_BENCH_SCALE_REQUESTS", 50).max(1),
            rate_per_min: env_usize("PHOENIX_BENCH_SCALE_RATE", 1_000).max(1),
            window_secs: env_usize("PHOENIX_BENCH_SCALE_SECS", 60).max(10) as u64,
        }
    }
}

/// Where the server stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Store {
    Memory,
    Postgres,
    Redis,
}

impl Store {
    fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory store",
            Self::Postgres => "PostgreSQL",
            Self::Redis => "Redis",
        }
    }
}

/// A fleet view read over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum View {
    /// `GET /api/v1/metrics/cost-flow` (breakdowns by metric, service, namespace, host;
    /// recommendations; raw vs shipped).
    CostFlow,
    /// `GET /api/v1/metrics/cardinality` (breakdowns by metric, service, namespace, host).
    Cardinality,
}

impl View {
    const ALL: [Self; 2] = [Self::CostFlow, Self::Cardinality];

    fn route(self) -> &'static str {
        match self {
            Self::CostFlow => "`GET /api/v1/metrics/cost-flow` (with recommendations)",
            Self::Cardinality => "`GET /api/v1/metrics/cardinality`",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Figure {
    LoadSecs,
    ServerRssMib,
    ColdMs(View),
    QuietP50Ms(View),
    QuietP99Ms(View),
    IngestingP50Ms(View),
    IngestingP99Ms(View),
    IngestCpuPct,
    IngestedPerMin,
}

static TARGETS: [Target; 2] = [
    Target {
        id: "views-p99",
        bound: Bound::AtMost(1_000.0),
        text: "fleet views for 1,000 hosts x 5,000 series served in <= 1 s p99, issue #15",
    },
    Target {
        id: "ingest-cpu",
        bound: Bound::Below(10.0),
        text: "1,000 snapshots per minute cost the server < 10 % of a core, issue #15",
    },
];

impl Figure {
    fn describe(self, store: Store, s: &ScaleSetup) -> String {
        let (hosts, series, store) = (s.hosts, s.series, store.name());
        let (n, rate, secs) = (s.requests, s.rate_per_min, s.window_secs);
        match self {
            Self::LoadSecs => format!(
                "{store}: {hosts} agents x {series} series, every snapshot posted to `POST /api/v1/agent/metrics`, 8 at a time (s)"
            ),
            Self::ServerRssMib => {
                format!("{store}: server RSS after the views were computed (MiB)")
            }
            Self::ColdMs(v) => format!("{store}: {}, first request after the load (ms)", v.route()),
            Self::QuietP50Ms(v) => format!(
                "{store}: {}, p50 of {n} requests, no ingest (ms)",
                v.route()
            ),
            Self::QuietP99Ms(v) => format!(
                "{store}: {}, p99 of {n} requests, no ingest (ms)",
                v.route()
            ),
            Self::IngestingP50Ms(v) => format!(
                "{store}: {}, p50 while snapshots are replaced at {rate}/min, {secs} s (ms)",
                v.route()
            ),
            Self::IngestingP99Ms(v) => format!(
                "{store}: {}, p99 while snapshots are replaced at {rate}/min, {secs} s (ms)",
                v.route()
            ),
            Self::IngestCpuPct => format!(
                "{store}: server CPU while ingesting {rate} snapshots/min ({series} series each), no view requested, {secs} s (% of one core)"
            ),
            Self::IngestedPerMin => {
                format!("{store}: snapshots stored per minute in that window")
            }
        }
    }

    fn targets(self) -> Vec<&'static Target> {
        match self {
            Self::QuietP99Ms(_) | Self::IngestingP99Ms(_) => {
                vec![Target::find(&TARGETS, "views-p99")]
            }
            Self::IngestCpuPct => vec![Target::find(&TARGETS, "ingest-cpu")],
            _ => Vec::new(),
        }
    }
}

/// Process names, services and namespaces hosts draw from (shared across hosts, so the
/// breakdowns group many hosts' series).
const EXECUTABLES: [&str; 24] = [
    "java",
    "python3",
    "node",
    "postgres",
    "nginx",
    "envoy",
    "redis-server",
    "kubelet",
    "containerd",
    "dockerd",
    "sshd",
    "systemd",
    "journald",
    "chronyd",
    "prometheus",
    "otelcol",
    "php-fpm",
    "ruby",
    "gunicorn",
    "celery",
    "kafka",
    "zookeeper",
    "etcd",
    "coredns",
];
const SERVICES: usize = 40;
const NAMESPACES: usize = 8;

/// One host's snapshot: `series / 10` processes, each with the hostmetrics process
/// scraper's series (CPU time by state, memory usage and virtual, disk I/O bytes and
/// operations by direction, threads). `round` moves a few processes (new pids) and every
/// point count, as a later snapshot of the same host would.
fn host_snapshot(agent: AgentId, host: usize, series: usize, round: u64) -> CardinalitySnapshot {
    let processes = series / 10;
    let mut out = Vec::with_capacity(series);
    let host_name = format!("host-{host:05}");
    for p in 0..processes {
        // 2 % of the processes restart each round.
        let generation = if p % 50 == (round % 50) as usize {
            round
        } else {
            0
        };
        let pid = (1_000 + p * 7 + generation as usize * 100_000).to_string();
        let exe = EXECUTABLES[(p + host) % EXECUTABLES.len()];
        let service = format!("svc-{:02}", (p * 3 + host) % SERVICES);
        let namespace = format!("ns-{}", (p + host / 10) % NAMESPACES);
        let labels = |extra: Option<(&str, &str)>| {
            let mut labels = BTreeMap::from([
                ("host.name".to_owned(), host_name.clone()),
                ("process.pid".to_owned(), pid.clone()),
                ("process.executable.name".to_owned(), exe.to_owned()),
                ("service.name".to_owned(), service.clone()),
                ("k8s.namespace.name".to_owned(), namespace.clone()),
            ]);
            if let Some((k, v)) = extra {
                labels.insert(k.to_owned(), v.to_owned());
            }
            labels
        };
        let points = 6 + (round % 3);
        let mut push = |metric: &str, extra: Option<(&str, &str)>| {
            out.push(SnapshotSeries {
                metric: metric.to_owned(),
                labels: labels(extra),
                points,
                value: Some((p * 13 % 1_000) as f64),
            });
        };
        for state in ["user", "system", "wait"] {
            push("process.cpu.time", Some(("state", state)));
        }
        push("process.memory.usage", None);
        push("process.memory.virtual", None);
        for direction in ["read", "write"] {
            push("process.disk.io", Some(("direction", direction)));
            push("process.disk.operations", Some(("direction", direction)));
        }
        push("process.threads", None);
    }
    CardinalitySnapshot {
        agent_id: agent,
        source: SnapshotSource::Input,
        host: host_name,
        taken_at: Utc::now(),
        interval_secs: 60,
        series: out,
    }
}

struct Agents {
    clients: Vec<Client>,
    ids: Vec<AgentId>,
}

async fn post(agents: &Agents, host: usize, series: usize, round: u64) -> bool {
    let snapshot = host_snapshot(agents.ids[host], host, series, round);
    agents.clients[host]
        .report_metrics(&MetricsReport {
            samples: Vec::new(),
            // Packed, as agents send it.
            snapshot: None,
            packed_snapshot: Some(PackedSnapshot::pack(&snapshot).into()),
        })
        .await
        .is_ok_and(|r| r.snapshot_stored)
}

/// Replaces snapshots at `rate_per_min` for `window`, round after round over the hosts;
/// returns how many were stored.
async fn ingest(agents: Arc<Agents>, setup: &ScaleSetup, window: Duration, round: u64) -> u64 {
    let stored = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(60.0 / setup.rate_per_min as f64);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut k = 0_usize;
    let gate = Arc::new(tokio::sync::Semaphore::new(32));
    while start.elapsed() < window {
        tick.tick().await;
        let host = k % agents.ids.len();
        let this_round = round + (k / agents.ids.len()) as u64;
        k += 1;
        let (agents, stored, gate, series) = (
            Arc::clone(&agents),
            Arc::clone(&stored),
            Arc::clone(&gate),
            setup.series,
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            if post(&agents, host, series, this_round).await {
                stored.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    stored.load(Ordering::Relaxed)
}

async fn read(admin: &Client, view: View) -> f64 {
    let started = Instant::now();
    match view {
        View::CostFlow => {
            admin.cost_flow(None, &[]).await.expect("cost flow");
        }
        View::Cardinality => {
            admin
                .cardinality(&["metric", "service", "namespace", "host"], None, None)
                .await
                .expect("cardinality");
        }
    }
    started.elapsed().as_secs_f64() * 1_000.0
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The scenario on one store.
async fn run_store(
    store: Store,
    url: Option<&str>,
    setup: &ScaleSetup,
    out: &mut BTreeMap<(Store, Figure), Vec<f64>>,
    details: &mut Vec<String>,
) {
    let namespace = format!("bench_scale_{}", std::process::id());
    let mut args = vec![
        // Enrolled agents stay live without heartbeats during the run (the bench sends
        // none: their CPU is not what is measured).
        "--agent-heartbeat-secs".to_owned(),
        "3600".to_owned(),
    ];
    match url {
        Some(url) => {
            args.extend(["--store".to_owned(), url.to_owned()]);
            args.extend(["--store-namespace".to_owned(), namespace]);
        }
        None => args.extend(["--store".to_owned(), "memory:".to_owned()]),
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&refs);
    server.ready().await;
    let enrolled = enroll(&server.base, setup.hosts, 32, "scale").await;
    let http = reqwest_client(64);
    let agents = Arc::new(Agents {
        ids: enrolled.iter().map(|e| AgentId(e.agent.id)).collect(),
        clients: enrolled
            .into_iter()
            .map(|e| {
                Client::with_http(&server.base, http.clone())
                    .expect("client")
                    .with_token(e.credential)
            })
            .collect(),
    });
    let mut record = |figure: Figure, value: f64| {
        println!("scale {store:?} {figure:?}: {value:.2}");
        out.entry((store, figure)).or_default().push(value);
    };

    // Load: every host's first snapshot, 8 posts in flight.
    let started = Instant::now();
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (agents, failed, next, series, hosts) = (
            Arc::clone(&agents),
            Arc::clone(&failed),
            Arc::clone(&next),
            setup.series,
            setup.hosts,
        );
        workers.push(tokio::spawn(async move {
            loop {
                let host = next.fetch_add(1, Ordering::Relaxed) as usize;
                if host >= hosts {
                    break;
                }
                if !post(&agents, host, series, 0).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("load worker");
    }
    let load = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} snapshots of the load were not stored");
    record(Figure::LoadSecs, load);

    let admin = Client::with_http(&server.base, reqwest_client(4))
        .expect("client")
        .with_token(ADMIN);
    // Cold: the first request of each view computes it (every host fetched and interned
    // for the first, the merged table reused by the second).
    let mut cold = Vec::new();
    for view in View::ALL {
        let ms = read(&admin, view).await;
        cold.push(format!("{view:?} {ms:.0} ms"));
        record(Figure::ColdMs(view), ms);
    }
    let flow = admin.cost_flow(None, &[]).await.expect("cost flow");
    assert_eq!(flow.hosts as usize, setup.hosts, "every host in the views");
    assert_eq!(flow.total_series as usize, setup.hosts * setup.series);
    let recommendations = flow.recommendations.len();

    // Quiet: requests back to back, views alternating.
    let mut quiet: BTreeMap<View, Vec<f64>> = BTreeMap::new();
    for _ in 0..setup.requests {
        for view in View::ALL {
            quiet
                .entry(view)
                .or_default()
                .push(read(&admin, view).await);
        }
    }
    for (view, v) in quiet {
        let v = sorted(v);
        record(Figure::QuietP50Ms(view), percentile(&v, 50.0));
        record(Figure::QuietP99Ms(view), percentile(&v, 99.0));
    }
    record(Figure::ServerRssMib, rss_kib(server.pid()) as f64 / 1024.0);

    // Ingesting: snapshots replaced at the rate while views are read back to back.
    let window = Duration::from_secs(setup.window_secs);
    let ingesting = tokio::spawn({
        let agents = Arc::clone(&agents);
        let setup = *setup;
        async move { ingest(agents, &setup, window, 1).await }
    });
    let mut during: BTreeMap<View, Vec<f64>> = BTreeMap::new();
    let started = Instant::now();
    while !ingesting.is_finished() {
        for view in View::ALL {
            during
                .entry(view)
                .or_default()
                .push(read(&admin, view).await);
        }
    }
    let stored_during = ingesting.await.expect("ingest");
    let during_secs = started.elapsed().as_secs_f64();
    let mut reads = 0;
    for (view, v) in during {
        reads += v.len();
        let v = sorted(v);
        record(Figure::IngestingP50Ms(view), percentile(&v, 50.0));
        record(Figure::IngestingP99Ms(view), percentile(&v, 99.0));
    }

    // Ingest alone: the server's CPU over the window, no view requested. A view read just
    // before may have started a recomputation in the background (seconds of CPU at this
    // size): wait until the server is quiet, so that its CPU is not counted as ingest.
    let quiet_after = quiesce(server.pid()).await;
    let rounds_done = 1 + (stored_during as usize).div_ceil(setup.hosts) as u64;
    let ticks0 = cpu_ticks(server.pid());
    let started = Instant::now();
    let stored = ingest(Arc::clone(&agents), setup, window, rounds_done + 1).await;
    let ticks = cpu_ticks(server.pid()) - ticks0;
    let secs = started.elapsed().as_secs_f64();
    // 100 clock ticks per second are one core.
    record(Figure::IngestCpuPct, ticks as f64 / secs);
    record(Figure::IngestedPerMin, stored as f64 * 60.0 / secs);
    details.push(format!(
        "{}: load {load:.1} s; cold {}; {recommendations} recommendations; while ingesting, {reads} view reads and {stored_during} snapshots stored in {during_secs:.1} s; server quiet {quiet_after:.1} s later; ingest alone: {stored} snapshots in {secs:.1} s, server {} ms CPU",
        store.name(),
        cold.join(", "),
        ticks * 10
    ));
    drop(server);
    if let Some(url) = url {
        drop_namespace(store, url, &format!("bench_scale_{}", std::process::id())).await;
    }
}

/// Waits until the server's CPU over the last second is at most 3 % of a core (the
/// background work of the views read before is done), at most 60 s; returns the seconds
/// waited.
async fn quiesce(pid: u32) -> f64 {
    let started = Instant::now();
    let mut last = cpu_ticks(pid);
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_ticks(pid);
        // 100 clock ticks per second are one core.
        if now - last <= 3 {
            break;
        }
        last = now;
    }
    started.elapsed().as_secs_f64()
}

/// Deletes what the run stored: the PostgreSQL schema, or the Redis keys of the prefix.
async fn drop_namespace(store: Store, url: &str, namespace: &str) {
    match store {
        Store::Memory => {}
        Store::Postgres => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            // The name is the bench's own (letters, digits, `_`).
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {namespace} CASCADE"
            )))
            .execute(&mut conn)
            .await
            .expect("drop the bench schema");
        }
        Store::Redis => {
            let client = redis::Client::open(url).expect("redis client");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection");
            let pattern = format!("{{{namespace}}}:*");
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1_000)
                    .query_async(&mut conn)
                    .await
                    .expect("scan");
                if !keys.is_empty() {
                    let _: u64 = redis::cmd("DEL")
                        .arg(&keys)
                        .query_async(&mut conn)
                        .await
                        .expect("del");
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}

/// Runs the section on every store it has and returns its text.
pub(crate) async fn scale(
    setup: &ScaleSetup,
    machine: &mut Machine,
    postgres: Option<&str>,
    redis: Option<&str>,
) -> String {
    let mut out = BTreeMap::new();
    let mut details = Vec::new();
    run_store(Store::Memory, None, setup, &mut out, &mut details).await;
    if let Some(url) = postgres {
        run_store(Store::Postgres, Some(url), setup, &mut out, &mut details).await;
    } else {
        eprintln!("SKIPPED: no PostgreSQL URL; no scale figures for it");
    }
    if let Some(url) = redis {
        run_store(Store::Redis, Some(url), setup, &mut out, &mut details).await;
    } else {
        eprintln!("SKIPPED: no Redis URL; no scale figures for it");
    }
    machine.finish();
    let mut report = Report::new();
    for ((store, figure), values) in &out {
        report.row(
            figure.describe(*store, setup),
            values.clone(),
            2,
            &figure.targets(),
        );
    }
    let mut text = format!(
        "{machine}\n\nRelease build; the server runs as its own process at its defaults \
(fleet view staleness 10 s, controller on) but for `--agent-heartbeat-secs 3600`, so that \
the enrolled agents stay live without heartbeats; the load generator is the bench process \
over loopback HTTP/1.1 keep-alive. {hosts} agents, each with a snapshot of {series} series \
shaped as the hostmetrics process scraper's ({processes} processes x CPU time by state, \
memory usage and virtual, disk I/O and operations by direction, threads; labels \
`host.name`, `process.pid`, `process.executable.name` from {exes} names, `service.name` \
from {SERVICES} services, `k8s.namespace.name` from {NAMESPACES} namespaces), 60 s interval. \
Each later snapshot of a host restarts 2 % of its processes (new pids) and changes every \
point count. Views are read by one client, one request at a time, alternating the cost \
flow (default pricing model and breakdowns, which carry the recommendations) and the \
cardinality report (by metric, service, namespace and host). Ingest posts one snapshot \
every {period:.0} ms (up to 32 in flight), host after host, packed as agents send it. CPU \
is utime + stime of the server process from `/proc` (the database's own CPU is not \
included); the ingest-alone window starts once the server is quiet (at most 3 % of a core \
over a second), so that recomputations the views read before started in the background \
are not counted as ingest.\n\n{table}",
        machine = machine.describe(),
        hosts = setup.hosts,
        series = setup.series,
        processes = setup.series / 10,
        exes = EXECUTABLES.len(),
        period = 60_000.0 / setup.rate_per_min as f64,
        table = report.render(),
    );
    text.push_str("\nEach store:\n\n");
    for d in &details {
        text.push_str(&format!("- {d}\n"));
    }
    text
}

/// The command as run, with the settings that differ from the defaults.
pub(crate) fn command_line() -> String {
    let mut words: Vec<String> = [
        "PHOENIX_BENCH_SCALE_HOSTS",
        "PHOENIX_BENCH_SCALE_SERIES",
        "PHOENIX_BENCH_SCALE_REQUESTS",
        "PHOENIX_BENCH_SCALE_RATE",
        "PHOENIX_BENCH_SCALE_SECS",
    ]
    .iter()
    .filter_map(|var| std::env::var(var).ok().map(|v| format!("{var}={v}")))
    .collect();
    words.push("PHOENIX_BENCH_ONLY=scale".to_owned());
    words.push("scripts/bench-server".to_owned());
    words.join(" ")
}

/// Writes the block.
pub(crate) fn write(section: &str) {
    write_generated("server-scale", &command_line(), section);
}
