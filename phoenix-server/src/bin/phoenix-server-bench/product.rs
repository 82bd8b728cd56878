//! The product path: agents over HTTP against one server on PostgreSQL or Redis, next to
//! Phoenix's library drain and apalis at its defaults on the same database, in the same
//! repetition.
//!
//! The server runs as its own process on the database (`--store-namespace` fresh per
//! repetition). 64 agents are enrolled, heartbeat once, and take part in a running
//! experiment (started through the API; each agent long-polls its deploy task and reports
//! it), so that measurement reports are accepted as a real agent's are. Then:
//!
//! 1. **Drain**: the backlog (`CollectSnapshot` tasks spread over the 64 agents) is enqueued
//!    through phoenix-core's store API (not timed); each agent long-polls
//!    (`GET /api/v1/agent/tasks?wait=5&max=4`, as the agent asks for its free slots) and
//!    reports every task `succeeded` one by one (`POST .../status`) until its share is
//!    done. The server group-commits concurrent reports.
//! 2. **Heartbeats**, then **measurement reports** (`POST /api/v1/agent/metrics` with one
//!    sample of this machine, as the agent measures it), back to back for 5 s each.
//! 3. **Library**: Phoenix's queue in the bench process, 8 workers claiming 16 and
//!    completing each claim with `complete_batch`; **apalis** 1.0 at `Config::default()`
//!    with 8 workers. Same backlog size, same database.
//!
//! CPU: utime + stime of the server process from `/proc` over each window, and of the
//! database: the PostgreSQL backends connected to the bench database, or the
//! `redis-server` process (shared with anything else using that Redis).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use phoenix_client::Client;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::experiment::{ExperimentSpec, NewExperiment};
use phoenix_client::api::measure::MetricsReport;
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::task::TaskKind;
use phoenix_client::api::token::{NewToken, Role};
use phoenix_core::ids::AgentId;
use phoenix_server::store::{OpenOptions, StoreUrl};
use uuid::Uuid;

use crate::payload::HostPayload;
use crate::{ADMIN, Db, Metric, Product, Results, ServerProcess, Setup, cpu_ticks, enroll};

/// The database the bench creates on the PostgreSQL server (dropped and recreated per run).
const BENCH_DATABASE: &str = "phoenix_server_bench";

/// The section's paragraph on the product path's configuration.
pub(crate) fn describe(s: &Setup) -> String {
    format!(
        "Product path (each database): one server process on the database; {agents} agents in \
the bench process, each with its own keep-alive connection, take part in a running experiment; \
a backlog of {backlog} `CollectSnapshot` tasks is enqueued through phoenix-core (not timed) and \
the agents drain it over HTTP as the agent does (long-poll `wait=5&max=4`, then one `succeeded` \
report per task; the server group-commits concurrent reports); then heartbeats and measurement \
reports (one sample of this machine, measured as the agent measures it) back to back for 5 s \
each. CPU is utime + stime from `/proc` over each window: the server process, and the \
PostgreSQL backends of the bench database or the `redis-server` process (which other clients \
of that Redis may share). In the same repetition, Phoenix's library drain ({workers} workers, \
claim 16 + `complete_batch`, in process) and apalis 1.0 at `Config::default()` ({workers} \
workers, its own queue) drain a backlog of the same size on the same database (on PostgreSQL \
with fresh planner statistics for both: `ANALYZE` before each library drain). **apalis has no \
HTTP layer**: its figure is a library figure, so the ratio of the product path to it compares \
Phoenix over HTTP and JSON with apalis called in process.",
        agents = s.product_agents,
        backlog = s.backlog,
        workers = s.library_workers,
    )
}

/// Creates (or recreates) the bench database; returns its URL.
pub(crate) async fn bench_database(url: &str) -> String {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    for statement in [
        format!("DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {BENCH_DATABASE}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .expect("create the bench database");
    }
    let (head, query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let base = match head.rsplit_once('/') {
        Some((base, _)) if base.contains("//") && base.len() > base.find("//").unwrap_or(0) + 2 => {
            base
        }
        _ => head,
    };
    match query {
        Some(q) => format!("{base}/{BENCH_DATABASE}?{q}"),
        None => format!("{base}/{BENCH_DATABASE}"),
    }
}

/// The processes whose CPU counts as the database's.
pub(crate) async fn db_pids(db: Db, url: &str) -> Vec<u32> {
    match db {
        Db::Postgres => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            let pids: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_all(&mut conn)
            .await
            .expect("backends");
            pids.into_iter()
                .filter_map(|p| u32::try_from(p).ok())
                .collect()
        }
        Db::Redis => process_by_name("redis-server").into_iter().collect(),
    }
}

fn process_by_name(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == name).then_some(pid)
        })
}

/// CPU ticks of a set of processes, between `start` and `stop`.
pub(crate) struct Meter {
    pids: Vec<u32>,
    ticks: u64,
    at: Instant,
}

impl Meter {
    pub(crate) fn start(pids: Vec<u32>) -> Self {
        let ticks = pids.iter().map(|p| cpu_ticks(*p)).sum();
        Self {
            pids,
            ticks,
            at: Instant::now(),
        }
    }

    /// CPU milliseconds used since `start` (100 ticks per second), and the wall time.
    pub(crate) fn stop(&self) -> (f64, Duration) {
        let ticks: u64 = self.pids.iter().map(|p| cpu_ticks(*p)).sum();
        #[allow(clippy::cast_precision_loss, reason = "tick counts far below 2^52")]
        let ms = ticks.saturating_sub(self.ticks) as f64 * 10.0;
        (ms, self.at.elapsed())
    }
}

/// An enrolled agent of the bench.
#[derive(Clone)]
struct Agent {
    client: Client,
    id: Uuid,
}

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
fn per_k(ms: f64, requests: u64) -> f64 {
    ms / (requests as f64 / 1000.0)
}

/// Runs `call` for every agent back to back for `window`; returns how many completed.
async fn back_to_back<F, Fut>(agents: &[Agent], window: Duration, call: F) -> u64
where
    F: Fn(Agent, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = agents
        .iter()
        .cloned()
        .map(|agent| {
            let done = done.clone();
            let call = call.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while start.elapsed() < window {
                    n += 1;
                    call(agent.clone(), n).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("join");
    }
    done.load(Ordering::Relaxed)
}

pub(crate) async fn product(
    results: &mut Results,
    db: Db,
    url: &str,
    setup: &Setup,
    payload: &Arc<HostPayload>,
) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let namespace = format!(
        "product_{}_{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let server = ServerProcess::start(&["--store", url, "--store-namespace", &namespace]);
    server.ready().await;
    let admin = Client::new(&server.base).expect("client").with_token(ADMIN);
    let operator = admin
        .create_token(&NewToken {
            name: "bench".to_owned(),
            role: Role::Operator,
        })
        .await
        .expect("token");
    let operator = Client::new(&server.base)
        .expect("client")
        .with_token(operator.secret);
    let n = setup.product_agents;
    let http = crate::reqwest_client(n);
    let agents: Vec<Agent> = enroll(&server.base, n, n, "product")
        .await
        .into_iter()
        .map(|e| Agent {
            client: Client::with_http(&server.base, http.clone())
                .expect("client")
                .with_token(e.credential),
            id: e.agent.id,
        })
        .collect();
    for a in &agents {
        a.client
            .heartbeat(&Heartbeat::default())
            .await
            .expect("heartbeat");
    }
    // A running experiment on every agent: each receives its deploy task and reports it.
    let experiment = operator
        .create_experiment(&NewExperiment {
            name: "product path".to_owned(),
            description: String::new(),
            spec: ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 3600),
        })
        .await
        .expect("create");
    operator
        .start_experiment(experiment.id)
        .await
        .expect("start");
    for a in &agents {
        let tasks = a
            .client
            .poll_tasks(Some(Duration::from_secs(30)), None)
            .await
            .expect("poll");
        assert!(
            tasks
                .iter()
                .any(|t| t.task.kind == TaskKind::DeployPipelines),
            "every agent receives its deploy task"
        );
        for t in &tasks {
            a.client.complete_task(t, None).await.expect("report");
        }
    }

    // 1. The drain over HTTP.
    let store_url = match db {
        Db::Postgres => StoreUrl::Postgres(url.to_owned()),
        Db::Redis => StoreUrl::Redis(url.to_owned()),
    };
    let opened = phoenix_server::store::open_with(
        &store_url,
        &OpenOptions {
            namespace: Some(namespace.clone()),
            ..OpenOptions::default()
        },
    )
    .await
    .expect("open the store");
    let ids: Vec<AgentId> = agents.iter().map(|a| AgentId(a.id)).collect();
    crate::drains::enqueue_for(&opened.stores, &ids, setup.backlog).await;
    let db_processes = db_pids(db, url).await;
    let requests = Arc::new(AtomicU64::new(0));
    let server_meter = Meter::start(vec![server.pid()]);
    let db_meter = Meter::start(db_processes.clone());
    let handles: Vec<_> = agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            // The agent's share: tasks were spread round robin.
            let share = setup.backlog / n + usize::from(i < setup.backlog % n);
            let client = a.client.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while done < share {
                    let tasks = client
                        .poll_tasks(Some(Duration::from_secs(5)), Some(4))
                        .await
                        .expect("poll");
                    requests.fetch_add(1, Ordering::Relaxed);
                    for t in &tasks {
                        client.complete_task(t, None).await.expect("report");
                        requests.fetch_add(1, Ordering::Relaxed);
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("agent");
    }
    let (server_ms, elapsed) = server_meter.stop();
    let (db_ms, _) = db_meter.stop();
    let requests = requests.load(Ordering::Relaxed);
    let tasks_per_sec = per_sec(setup.backlog as u64, elapsed);
    let name = db.name();
    results.record(
        Metric::Product(db, Product::TasksPerSec),
        tasks_per_sec,
        format!(
            "{name} product path: {} tasks, {requests} requests in {:.2} s; server {server_ms:.0} ms CPU, database {db_ms:.0} ms CPU",
            setup.backlog,
            elapsed.as_secs_f64()
        ),
    );
    results.record(
        Metric::Product(db, Product::TaskRequestsPerSec),
        per_sec(requests, elapsed),
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::TaskServerCpuMsPerK),
        per_k(server_ms, requests),
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::TaskDbCpuMsPerK),
        per_k(db_ms, requests),
        String::new(),
    );

    // 2. Heartbeats and measurement reports, back to back.
    let window = Duration::from_secs(5);
    let server_meter = Meter::start(vec![server.pid()]);
    let db_meter = Meter::start(db_processes.clone());
    let beats = back_to_back(&agents, window, |a: Agent, _| async move {
        a.client
            .heartbeat(&Heartbeat::default())
            .await
            .expect("heartbeat");
    })
    .await;
    let (server_ms, elapsed) = server_meter.stop();
    let (db_ms, _) = db_meter.stop();
    results.record(
        Metric::Product(db, Product::HeartbeatsPerSec),
        per_sec(beats, elapsed),
        format!("{name}: {beats} heartbeats in {:.2} s; server {server_ms:.0} ms CPU, database {db_ms:.0} ms CPU", elapsed.as_secs_f64()),
    );
    results.record(
        Metric::Product(db, Product::HeartbeatServerCpuMsPerK),
        per_k(server_ms, beats),
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::HeartbeatDbCpuMsPerK),
        per_k(db_ms, beats),
        String::new(),
    );

    let shared = Arc::new(SampleSource {
        experiment: experiment.id,
        interval: experiment.spec.sample_interval_secs,
    });
    let server_meter = Meter::start(vec![server.pid()]);
    let db_meter = Meter::start(db_processes.clone());
    let payload = payload.clone();
    let sent = back_to_back(&agents, window, move |a: Agent, seq| {
        let shared = shared.clone();
        let payload = payload.clone();
        async move {
            let report = MetricsReport {
                packed_snapshot: None,
                samples: vec![payload.sample(shared.experiment, a.id, seq, shared.interval)],
                snapshot: None,
            };
            let receipt = a.client.report_metrics(&report).await.expect("metrics");
            assert_eq!(receipt.inserted, 1, "the sample is stored");
        }
    })
    .await;
    let (server_ms, elapsed) = server_meter.stop();
    let (db_ms, _) = db_meter.stop();
    results.record(
        Metric::Product(db, Product::MetricsPerSec),
        per_sec(sent, elapsed),
        format!("{name}: {sent} measurement reports in {:.2} s; server {server_ms:.0} ms CPU, database {db_ms:.0} ms CPU", elapsed.as_secs_f64()),
    );
    results.record(
        Metric::Product(db, Product::MetricsServerCpuMsPerK),
        per_k(server_ms, sent),
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::MetricsDbCpuMsPerK),
        per_k(db_ms, sent),
        String::new(),
    );
    drop(server);

    // 3. The library drains, same backlog, same database; planner statistics fresh for
    // both (apalis's table is analysed after its backlog is pushed).
    if db == Db::Postgres {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql("ANALYZE")
            .execute(&mut conn)
            .await
            .expect("analyze");
    }
    let library =
        crate::drains::phoenix_library(&opened.stores, setup.backlog, setup.library_workers, 16)
            .await;
    let apalis = match db {
        Db::Postgres => {
            crate::drains::apalis_postgres(url, setup.backlog, setup.library_workers).await
        }
        Db::Redis => crate::drains::apalis_redis(url, setup.backlog, setup.library_workers).await,
    };
    if db == Db::Redis {
        crate::drains::delete_keys_at(url, &format!("{namespace}*")).await;
    }
    results.record(
        Metric::Product(db, Product::LibraryTasksPerSec),
        library,
        format!("{name}: library {library:.0} tasks/s, apalis {apalis:.0} tasks/s, product path {tasks_per_sec:.0} tasks/s"),
    );
    results.record(
        Metric::Product(db, Product::ApalisTasksPerSec),
        apalis,
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::LibraryOverApalis),
        library / apalis,
        String::new(),
    );
    results.record(
        Metric::Product(db, Product::HttpOverApalis),
        tasks_per_sec / apalis,
        String::new(),
    );
}

struct SampleSource {
    experiment: Uuid,
    interval: u32,
}
