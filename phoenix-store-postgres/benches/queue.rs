//! Queue benchmarks on PostgreSQL; they rewrite their generated block of
//! `docs/benchmarks.md` (machine facts read at run time, min/median/max over the rounds,
//! verdicts computed from the `TARGETS` table). Run with (or with `scripts/bench`):
//!
//! ```text
//! cargo bench -p phoenix-store-postgres --bench queue
//! ```
//!
//! 1. **Claim + complete throughput**, `PgStore` against `apalis-postgres` 1.0 side by side,
//!    in the same run, on the same database, at equal worker counts and pool settings.
//!    Runs are interleaved (every configuration once per round, the order rotating) and
//!    min/median/max over the rounds are reported; ratios are paired by round. apalis runs at its defaults and at the same
//!    batch size as Phoenix. Before every run the queue table is emptied, the tasks are
//!    enqueued, and the table is `ANALYZE`d (planner statistics fresh, as autovacuum keeps
//!    them in production; autovacuum is off on both queue tables during the runs so that
//!    no plan changes mid-run).
//! 2. **Enqueue-to-wake latency** across two store instances (two server replicas): 1,000
//!    agents long-poll on replica A (safety poll 60 s, so every wake-up comes from the bus);
//!    tasks are enqueued one at a time on replica B; the time from the enqueue call to the
//!    waiter returning with the claimed task is recorded.
//!
//! Environment: `PHOENIX_BENCH_POSTGRES_URL` (else `PHOENIX_TEST_POSTGRES_URL`) names a
//! server; the bench creates and finally drops the database `phoenix_bench` on it.
//! `PHOENIX_BENCH_TASKS` (default 20,000), `PHOENIX_BENCH_ROUNDS` (3),
//! `PHOENIX_BENCH_WORKERS` (`4,16`), `PHOENIX_BENCH_SAMPLES` (1,000),
//! `PHOENIX_BENCH_WAITERS` (1,000).
//!
//! Under `cargo test` (no `--bench` argument) it only says how to run it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use apalis::prelude::{BoxDynError, TaskBuilder, WorkerBuilder, WorkerContext};
use apalis_postgres::{Config as ApalisConfig, PostgresStorage};
use chrono::Duration;
use phoenix_bench::{Bound, Machine, Report, Target, write_generated};
use phoenix_core::ids::AgentId;
use phoenix_core::store::TaskQueue;
use phoenix_core::task::{LeaseRef, NewTask, TaskPayload};
use phoenix_core::{Phoenix, PhoenixConfig};
use phoenix_store_postgres::{PgConnectOptions, PgStore, PgStoreOptions};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Notify, mpsc};

/// The targets this benchmark checks (design sections 6 and 6.1); verdicts are computed
/// from the medians, never written.
static TARGETS: [Target; 4] = [
    Target {
        id: "2x",
        bound: Bound::AtLeast(2.0),
        text: ">= 2x apalis-postgres 1.0, design 6",
    },
    Target {
        id: "2x-every-batch",
        bound: Bound::AtLeast(2.0),
        text: ">= 2x apalis at every equal batch size, design 6.1",
    },
    Target {
        id: "wake-p99",
        bound: Bound::AtMost(20.0),
        text: "p99 <= 20 ms with PostgreSQL, design 6",
    },
    Target {
        id: "wake-p99-second-wave",
        bound: Bound::AtMost(5.0),
        text: "p99 <= 5 ms with PostgreSQL, design 6.1",
    },
];

const COMMAND: &str = "cargo bench -p phoenix-store-postgres --bench queue";
const DATABASE: &str = "phoenix_bench";
const APALIS_QUEUE: &str = "phoenix-bench";
const LEASE: Duration = Duration::seconds(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// One throughput configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum System {
    /// Phoenix: claim `batch`, complete each task with its own statement (the path an
    /// agent's report takes).
    PhoenixEach { batch: usize },
    /// Phoenix: claim `batch`, complete them with one statement (`complete_batch`).
    PhoenixBatch { batch: usize },
    /// apalis-postgres with `Config::default()` except the queue name, or with `batch_size`.
    Apalis { batch: Option<usize> },
}

impl System {
    fn label(self) -> String {
        match self {
            Self::PhoenixEach { batch } => {
                format!("Phoenix `PgStore`, claim batch {batch}, complete per task")
            }
            Self::PhoenixBatch { batch } => {
                format!("Phoenix `PgStore`, claim batch {batch}, `complete_batch`")
            }
            Self::Apalis { batch: None } => {
                "apalis-postgres 1.0, `Config::default()` (batch_size 10)".to_owned()
            }
            Self::Apalis { batch: Some(b) } => {
                format!("apalis-postgres 1.0, `Config::default().batch_size({b})`")
            }
        }
    }
}

struct Bench {
    connect: PgConnectOptions,
    tasks: usize,
}

fn pool_options(max: u32) -> PgPoolOptions {
    // The same pool for both systems: sized to the workers, no ping per acquire.
    PgPoolOptions::new()
        .max_connections(max)
        .test_before_acquire(false)
        .acquire_timeout(StdDuration::from_secs(60))
}

impl Bench {
    async fn phoenix_store(&self, max_connections: u32) -> PgStore {
        PgStore::connect_options(
            self.connect.clone(),
            PgStoreOptions {
                schema: "phoenix".to_owned(),
                max_connections,
                acquire_timeout: StdDuration::from_secs(60),
                application_name: "phoenix-bench".to_owned(),
                ..PgStoreOptions::default()
            },
        )
        .await
        .expect("connect PgStore")
    }

    async fn admin(&self) -> PgConnection {
        PgConnection::connect_with(&self.connect)
            .await
            .expect("connect")
    }

    async fn run_phoenix(&self, workers: usize, batch: usize, each: bool) -> f64 {
        let store = self
            .phoenix_store(u32::try_from(workers).unwrap_or(64) + 2)
            .await;
        let mut admin = self.admin().await;
        sqlx::raw_sql("TRUNCATE phoenix.tasks")
            .execute(&mut admin)
            .await
            .expect("truncate");
        // All workers share one agent's queue, as apalis workers share one queue.
        let agent = AgentId::new();
        let tasks: Vec<NewTask> = (0..self.tasks)
            .map(|_| NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0))
            .collect();
        for chunk in tasks.chunks(1_000) {
            store.enqueue(chunk).await.expect("enqueue");
        }
        sqlx::raw_sql("ANALYZE phoenix.tasks")
            .execute(&mut admin)
            .await
            .expect("analyze");
        let done = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let store = store.clone();
            let done = done.clone();
            handles.push(tokio::spawn(async move {
                loop {
                    let claimed = store.claim(agent, batch, LEASE).await.expect("claim");
                    if claimed.is_empty() {
                        return;
                    }
                    let n = claimed.len();
                    if each {
                        for leased in claimed {
                            let lease = LeaseRef {
                                task_id: leased.task.id,
                                token: leased.lease_token,
                            };
                            store.complete(&lease, None).await.expect("complete");
                        }
                    } else {
                        let leases: Vec<(LeaseRef, Option<serde_json::Value>)> = claimed
                            .iter()
                            .map(|l| {
                                (
                                    LeaseRef {
                                        task_id: l.task.id,
                                        token: l.lease_token,
                                    },
                                    None,
                                )
                            })
                            .collect();
                        for result in store.complete_batch(&leases).await.expect("complete") {
                            result.expect("fenced complete");
                        }
                    }
                    done.fetch_add(n, Ordering::Relaxed);
                }
            }));
        }
        for h in handles {
            h.await.expect("worker");
        }
        let elapsed = start.elapsed();
        assert_eq!(
            done.load(Ordering::Relaxed),
            self.tasks,
            "every task completed"
        );
        let succeeded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM phoenix.tasks WHERE state = 'succeeded'")
                .fetch_one(&mut admin)
                .await
                .expect("count");
        assert_eq!(usize::try_from(succeeded).unwrap_or(0), self.tasks);
        store.close().await;
        self.tasks as f64 / elapsed.as_secs_f64()
    }

    async fn run_apalis(&self, workers: usize, batch: Option<usize>) -> f64 {
        let pool: PgPool = pool_options(u32::try_from(workers).unwrap_or(64) + 2)
            .connect_with(self.connect.clone().application_name("apalis-bench"))
            .await
            .expect("apalis pool");
        let mut admin = self.admin().await;
        sqlx::raw_sql("TRUNCATE apalis.jobs; DELETE FROM apalis.workers;")
            .execute(&mut admin)
            .await
            .expect("truncate");
        let mut pushed = 0;
        while pushed < self.tasks {
            let n = (self.tasks - pushed).min(1_000);
            let batch_tasks = (0..n)
                .map(|i| TaskBuilder::new(serde_json::to_vec(&(pushed + i)).expect("json")).build())
                .collect();
            let mut tx = pool.begin().await.expect("begin");
            apalis_postgres::queries::push_tasks(&mut *tx, APALIS_QUEUE, batch_tasks)
                .await
                .expect("push");
            tx.commit().await.expect("commit");
            pushed += n;
        }
        sqlx::raw_sql("ANALYZE apalis.jobs")
            .execute(&mut admin)
            .await
            .expect("analyze");
        let mut config = ApalisConfig::default().queue(APALIS_QUEUE);
        if let Some(b) = batch {
            config = config.batch_size(b);
        }
        let handled = Arc::new(AtomicUsize::new(0));
        let all_handled = Arc::new(Notify::new());
        let start = Instant::now();
        let (ctx_tx, mut contexts) = mpsc::unbounded_channel::<WorkerContext>();
        let mut handles = Vec::new();
        for w in 0..workers {
            let storage = PostgresStorage::<usize>::new(&pool).with_config(config.clone());
            let handled = handled.clone();
            let all_handled = all_handled.clone();
            let total = self.tasks;
            let worker = WorkerBuilder::new(format!("bench-{w}"))
                .backend(storage)
                .build(move |_job: usize| {
                    let handled = handled.clone();
                    let all_handled = all_handled.clone();
                    async move {
                        if handled.fetch_add(1, Ordering::Relaxed) + 1 == total {
                            all_handled.notify_one();
                        }
                        Ok::<(), BoxDynError>(())
                    }
                });
            let ctx_tx = ctx_tx.clone();
            handles.push(tokio::spawn(async move {
                worker
                    .run_with_ctx(move |ctx| {
                        let _ = ctx_tx.send(ctx);
                        std::future::pending::<Result<(), apalis::prelude::WorkerError>>()
                    })
                    .await
            }));
        }
        all_handled.notified().await;
        // The handlers ran; the run ends when the acknowledgements are committed.
        let elapsed = loop {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND job_type = $1",
            )
            .bind(APALIS_QUEUE)
            .fetch_one(&mut admin)
            .await
            .expect("count");
            if usize::try_from(done).unwrap_or(0) >= self.tasks {
                break start.elapsed();
            }
            tokio::task::yield_now().await;
        };
        drop(ctx_tx);
        while let Ok(ctx) = contexts.try_recv() {
            let _ = ctx.stop();
        }
        for h in handles {
            h.abort();
        }
        pool.close().await;
        self.tasks as f64 / elapsed.as_secs_f64()
    }

    async fn run(&self, system: System, workers: usize) -> f64 {
        match system {
            System::PhoenixEach { batch } => self.run_phoenix(workers, batch, true).await,
            System::PhoenixBatch { batch } => self.run_phoenix(workers, batch, false).await,
            System::Apalis { batch } => self.run_apalis(workers, batch).await,
        }
    }
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a short, non-empty list"
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Enqueue-to-wake latency: waiters on `a`, enqueues on `b`.
async fn latency(a: &PgStore, b: &PgStore, waiters: usize, samples: usize) -> Vec<StdDuration> {
    let config = PhoenixConfig {
        safety_poll: Duration::seconds(60),
        ..PhoenixConfig::default()
    };
    let phoenix = Phoenix::new(a.stores(), Arc::new(a.clock()), config);
    let agents: Vec<AgentId> = (0..waiters).map(|_| AgentId::new()).collect();
    let (woken_tx, mut woken) = mpsc::unbounded_channel::<(AgentId, Instant)>();
    let mut handles = Vec::new();
    for agent in agents.iter().copied() {
        let phoenix = phoenix.clone();
        let woken_tx = woken_tx.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let got = phoenix
                    .wait_for_tasks(agent, 1, StdDuration::from_secs(600))
                    .await
                    .expect("wait");
                let at = Instant::now();
                for leased in got {
                    let _ = woken_tx.send((agent, at));
                    let lease = LeaseRef {
                        task_id: leased.task.id,
                        token: leased.lease_token,
                    };
                    phoenix
                        .stores()
                        .queue
                        .complete(&lease, None)
                        .await
                        .expect("complete");
                }
            }
        }));
    }
    while phoenix.waiting_agents() < waiters {
        tokio::task::yield_now().await;
    }
    let mut latencies = Vec::with_capacity(samples);
    let mut pending: HashMap<AgentId, Instant> = HashMap::new();
    for s in 0..samples {
        let agent = agents[s % waiters];
        let start = Instant::now();
        b.enqueue(&[NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0)])
            .await
            .expect("enqueue");
        pending.insert(agent, start);
        while pending.contains_key(&agent) {
            let (who, at) = woken.recv().await.expect("waiters run");
            if let Some(started) = pending.remove(&who) {
                latencies.push(at - started);
            }
        }
    }
    for h in handles {
        h.abort();
    }
    latencies.sort();
    latencies
}

async fn run() {
    let Some(url) = std::env::var("PHOENIX_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("PHOENIX_TEST_POSTGRES_URL"))
        .ok()
    else {
        println!("queue bench: set PHOENIX_BENCH_POSTGRES_URL (or PHOENIX_TEST_POSTGRES_URL)");
        return;
    };
    let mut machine = Machine::read();
    machine.with_postgres(&url).with_peer("apalis-postgres 1.0");
    let server = PgConnectOptions::from_str(&url).expect("URL");
    let mut admin = PgConnection::connect_with(&server).await.expect("connect");
    // Two statements: neither may run inside a (multi-statement) transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
        format!("CREATE DATABASE {DATABASE}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
            .expect("create the bench database");
    }
    let bench = Bench {
        connect: server.clone().database(DATABASE),
        tasks: env_usize("PHOENIX_BENCH_TASKS", 20_000),
    };
    // Schemas of both systems, then no autovacuum on their queue tables during runs.
    bench.phoenix_store(2).await.close().await;
    let setup_pool = pool_options(2)
        .connect_with(bench.connect.clone())
        .await
        .expect("pool");
    PostgresStorage::setup(&setup_pool)
        .await
        .expect("apalis setup");
    setup_pool.close().await;
    sqlx::raw_sql(
        "ALTER TABLE phoenix.tasks SET (autovacuum_enabled = false); \
         ALTER TABLE apalis.jobs SET (autovacuum_enabled = false);",
    )
    .execute(&mut bench.admin().await)
    .await
    .expect("autovacuum off");

    let rounds = env_usize("PHOENIX_BENCH_ROUNDS", 3).max(1);
    let worker_counts = env_list("PHOENIX_BENCH_WORKERS", &[4, 16]);
    let systems = [
        System::PhoenixEach { batch: 10 },
        System::PhoenixBatch { batch: 10 },
        System::Apalis { batch: None },
        System::PhoenixBatch { batch: 50 },
        System::Apalis { batch: Some(50) },
    ];
    let waiters = env_usize("PHOENIX_BENCH_WAITERS", 1_000);
    let samples = env_usize("PHOENIX_BENCH_SAMPLES", 1_000);
    let a = bench.phoenix_store(16).await;
    let b = bench.phoenix_store(16).await;
    let mut results: HashMap<(System, usize), Vec<f64>> = HashMap::new();
    // p50, p99 and max per round, enqueueing on the other replica and on the same one.
    let mut wake: [[Vec<f64>; 3]; 2] = Default::default();
    for round in 0..rounds {
        for &workers in &worker_counts {
            // Rotate the order each round so no system always runs first or last.
            for i in 0..systems.len() {
                let system = systems[(i + round) % systems.len()];
                let rate = bench.run(system, workers).await;
                println!(
                    "round {round} workers {workers:>2}: {:<62} {rate:>9.0} tasks/s",
                    system.label()
                );
                results.entry((system, workers)).or_default().push(rate);
            }
        }
        for (k, enqueue_on) in [&b, &a].into_iter().enumerate() {
            let l = latency(&a, enqueue_on, waiters, samples).await;
            for (j, p) in [0.5, 0.99].into_iter().enumerate() {
                wake[k][j].push(percentile(&l, p).as_secs_f64() * 1e3);
            }
            wake[k][2].push(l.last().expect("samples").as_secs_f64() * 1e3);
        }
    }
    machine.finish();
    let mut report = Report::new();
    for &workers in &worker_counts {
        for system in systems {
            report.row(
                format!("{workers} workers, {}: tasks/s", system.label()),
                results[&(system, workers)].clone(),
                0,
                &[],
            );
        }
    }
    // Ratios are paired by round: Phoenix's drain against apalis's in the same round.
    let two_x = [
        Target::find(&TARGETS, "2x"),
        Target::find(&TARGETS, "2x-every-batch"),
    ];
    for &workers in &worker_counts {
        let ratio = |ours: System, theirs: System| -> Vec<f64> {
            results[&(ours, workers)]
                .iter()
                .zip(&results[&(theirs, workers)])
                .map(|(p, a)| p / a)
                .collect()
        };
        report
            .row(
                format!("{workers} workers, Phoenix `complete_batch` / apalis, equal batch 10 (apalis's default), same round (x)"),
                ratio(System::PhoenixBatch { batch: 10 }, System::Apalis { batch: None }),
                2,
                &two_x,
            )
            .row(
                format!("{workers} workers, Phoenix `complete_batch` / apalis, equal batch 50, same round (x)"),
                ratio(System::PhoenixBatch { batch: 50 }, System::Apalis { batch: Some(50) }),
                2,
                &two_x,
            )
            .row(
                format!("{workers} workers, Phoenix complete per task / apalis defaults, batch 10, same round (x)"),
                ratio(System::PhoenixEach { batch: 10 }, System::Apalis { batch: None }),
                2,
                &[],
            );
    }
    for (k, name) in ["on the other replica (B)", "on the same replica (A)"]
        .into_iter()
        .enumerate()
    {
        let what = format!(
            "enqueue-to-wake, enqueue {name}, {waiters} idle long-polls on A (safety poll 60 s), {samples} samples"
        );
        report
            .row(format!("{what}, p50 (ms)"), wake[k][0].clone(), 2, &[])
            .row(
                format!("{what}, p99 (ms)"),
                wake[k][1].clone(),
                2,
                &[
                    Target::find(&TARGETS, "wake-p99"),
                    Target::find(&TARGETS, "wake-p99-second-wave"),
                ],
            )
            .row(format!("{what}, max (ms)"), wake[k][2].clone(), 2, &[]);
    }
    let body = format!(
        "{}\n\nConfiguration: {rounds} rounds; in each, every system drains a pre-filled \
backlog of {} tasks with {worker_counts:?} workers (the order rotating), then the wake-up \
latency is measured. Both systems get the same pool (workers + 2 connections), on the \
same database, with the queue table emptied, filled and `ANALYZE`d before every run.\n\n{}",
        machine.describe(),
        bench.tasks,
        report.render()
    );
    println!("{body}");
    write_generated("postgres-queue", COMMAND, &body);
    a.close().await;
    b.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the bench database");
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("queue bench: run it with `cargo bench -p phoenix-store-postgres --bench queue`");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
