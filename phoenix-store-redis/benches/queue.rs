//! Redis queue benchmark, side by side with `apalis-redis` 1.0 on the same Redis in the same
//! run: claim+complete throughput with equal workers, Redis round trips and commands per
//! task, and enqueue-to-wake latency across two store instances with 1,000 idle long-polls.
//!
//! Run with `cargo bench -p phoenix-store-redis --bench queue` (Redis at
//! `PHOENIX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), or `scripts/bench`; it
//! rewrites its generated block of docs/benchmarks.md.
//!
//! Fairness (design section 6): every system drains the same pre-filled backlog of small
//! tasks with the same number of sequential workers sharing one multiplexed connection;
//! runs are interleaved and min/median/max over the rounds are reported. apalis-redis runs at its
//! defaults (batch 10, `lock_tasks`) and at Phoenix's batch size, with and without
//! `lock_tasks`. Its fetch script promotes every due job with one `unpack` (which fails
//! beyond about 8,000 jobs) and every push is stored as scheduled, so each backlog here is
//! 5,000 tasks: below that limit, and the same for everyone.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use apalis::prelude::{BoxDynError, TaskSink, WorkerBuilder};
use apalis_redis::{Config as ApalisConfig, RedisStorage};
use chrono::Duration;
use phoenix_bench::{Bound, Machine, Report, Target, write_generated};
use phoenix_core::clock::SystemClock;
use phoenix_core::ids::AgentId;
use phoenix_core::task::{LeaseRef, NewTask, TaskPayload};
use phoenix_core::{Phoenix, PhoenixConfig};
use phoenix_store_redis::{RedisConfig, RedisStore};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::{Cmd, Pipeline, RedisFuture, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// `cargo bench` passes `--bench`; under `cargo test` the binary runs a small smoke version
/// instead (same code paths, figures not meaningful).
static SMOKE: AtomicBool = AtomicBool::new(false);

fn smoke() -> bool {
    SMOKE.load(Ordering::Relaxed)
}

fn tasks() -> usize {
    if smoke() { 500 } else { 5_000 }
}
const WORKERS: usize = 8;
const BATCH: usize = 16;

fn rounds() -> usize {
    if smoke() { 1 } else { 5 }
}

fn waiters() -> usize {
    if smoke() { 50 } else { 1_000 }
}

fn samples() -> usize {
    if smoke() { 50 } else { 1_000 }
}

/// The targets this benchmark checks (design sections 6 and 6.1); verdicts are computed
/// from the medians, never written.
static TARGETS: [Target; 4] = [
    Target {
        id: "2x",
        bound: Bound::AtLeast(2.0),
        text: ">= 2x apalis-redis 1.0, design 6",
    },
    Target {
        id: "parity-unlocked",
        bound: Bound::AtLeast(1.0),
        text: "parity with apalis-redis without `lock_tasks` while keeping leases and fencing, design 6.1",
    },
    Target {
        id: "wake-p99",
        bound: Bound::AtMost(10.0),
        text: "p99 <= 10 ms with Redis, design 6",
    },
    Target {
        id: "wake-p99-second-wave",
        bound: Bound::AtMost(2.0),
        text: "p99 <= 2 ms with Redis, design 6.1",
    },
];

const COMMAND: &str = "cargo bench -p phoenix-store-redis --bench queue";

/// One measured drain.
#[derive(Debug, Clone, Copy)]
struct Run {
    tasks_per_sec: f64,
    round_trips_per_task: f64,
    commands_per_task: f64,
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52 turned into rates"
)]
fn per(n: u64, tasks: usize) -> f64 {
    n as f64 / tasks as f64
}

/// Every command Redis executed so far (scripts' inner commands included), from
/// `INFO commandstats`.
async fn commands(admin: &mut ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(admin)
        .await
        .expect("info");
    info.lines()
        .filter_map(|l| {
            l.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

async fn delete_keys(admin: &mut ConnectionManager, pattern: &str) {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(admin)
                .await
                .expect("unlink");
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

async fn phoenix_run(url: &str, admin: &mut ConnectionManager) -> Run {
    let store = RedisStore::connect(
        RedisConfig::new(url).with_prefix(format!("phoenix-bench-{}", uuid::Uuid::new_v4())),
    )
    .await
    .expect("connect");
    let stores = store.stores();
    // One queue: every worker serves the same agent, as apalis workers share one queue.
    let agent = AgentId::new();
    for _ in 0..tasks() / 500 {
        let batch: Vec<NewTask> = (0..500)
            .map(|_| NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0))
            .collect();
        stores.queue.enqueue(&batch).await.expect("enqueue");
    }
    let trips_before = store.round_trips();
    let commands_before = commands(admin).await;
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let queue = stores.queue.clone();
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let claimed = queue
                        .claim(agent, BATCH, Duration::seconds(60))
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return done;
                    }
                    // The results of one claim are reported together, each fenced on
                    // its own lease (as apalis acknowledges a worker's batch).
                    let completions: Vec<_> = claimed
                        .iter()
                        .map(|leased| {
                            let lease = LeaseRef {
                                task_id: leased.task.id,
                                token: leased.lease_token,
                            };
                            (lease, None)
                        })
                        .collect();
                    let results = queue.complete_batch(&completions).await.expect("complete");
                    assert!(results.iter().all(Result::is_ok), "every lease is valid");
                    done += results.len();
                }
            })
        })
        .collect();
    let mut done = 0;
    for w in workers {
        done += w.await.expect("worker");
    }
    let elapsed = start.elapsed();
    assert_eq!(done, tasks());
    let trips = store.round_trips() - trips_before;
    let cmds = commands(admin).await - commands_before - 1;
    store.purge().await.expect("purge");
    Run {
        tasks_per_sec: tasks() as f64 / elapsed.as_secs_f64(),
        round_trips_per_task: per(trips, tasks()),
        commands_per_task: per(cmds, tasks()),
    }
}

/// A connection that counts the requests (round trips) sent through it.
#[derive(Clone)]
struct Counting {
    inner: ConnectionManager,
    sent: Arc<AtomicU64>,
}

impl ConnectionLike for Counting {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    n: u64,
}

static HANDLED: AtomicUsize = AtomicUsize::new(0);
static ALL_HANDLED: Notify = Notify::const_new();

async fn handle(_job: Job) -> Result<(), BoxDynError> {
    if HANDLED.fetch_add(1, Ordering::SeqCst) + 1 == tasks() {
        ALL_HANDLED.notify_one();
    }
    Ok(())
}

async fn apalis_run(url: &str, admin: &mut ConnectionManager, batch: usize, lock: bool) -> Run {
    let client = redis::Client::open(url).expect("client");
    let conn = Counting {
        inner: ConnectionManager::new(client).await.expect("connect"),
        sent: Arc::new(AtomicU64::new(0)),
    };
    let queue = format!("apalis-bench-{}", uuid::Uuid::new_v4());
    let config = ApalisConfig::default()
        .queue(&queue)
        .batch_size(batch)
        .lock_tasks(lock);
    let mut storage = RedisStorage::<Job, Counting>::new(conn.clone()).with_config(config);
    for chunk in (0..tasks() as u64).collect::<Vec<_>>().chunks(500) {
        storage
            .push_bulk(chunk.iter().map(|&n| Job { n }).collect())
            .await
            .expect("push");
    }
    HANDLED.store(0, Ordering::SeqCst);
    let done_key = storage.get_config().done_jobs_set();
    let trips_before = conn.sent.load(Ordering::Relaxed);
    let commands_before = commands(admin).await;
    let start = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let worker = WorkerBuilder::new(format!("{queue}-w{i}"))
                .backend(storage.clone())
                .build(handle);
            tokio::spawn(worker.run())
        })
        .collect();
    ALL_HANDLED.notified().await;
    // Handled is not acknowledged: wait until Redis holds every result.
    loop {
        let acked: usize = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(admin)
            .await
            .expect("scard");
        if acked >= tasks() {
            break;
        }
        tokio::time::sleep(StdDuration::from_micros(500)).await;
    }
    let elapsed = start.elapsed();
    let trips = conn.sent.load(Ordering::Relaxed) - trips_before;
    let cmds = commands(admin).await - commands_before - 1;
    for w in workers {
        w.abort();
    }
    delete_keys(admin, &format!("{queue}*")).await;
    Run {
        tasks_per_sec: tasks() as f64 / elapsed.as_secs_f64(),
        round_trips_per_task: per(trips, tasks()),
        commands_per_task: per(cmds, tasks()),
    }
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "index of a percentile"
    )]
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Enqueue on one store instance, long-polls waiting on another.
async fn wake_latency(url: &str) -> (StdDuration, StdDuration, StdDuration) {
    let config =
        RedisConfig::new(url).with_prefix(format!("phoenix-bench-{}", uuid::Uuid::new_v4()));
    let waiting_side = RedisStore::connect(config.clone()).await.expect("connect");
    let enqueue_side = RedisStore::connect(config).await.expect("connect");
    let phoenix = Phoenix::new(
        waiting_side.stores(),
        Arc::new(SystemClock),
        PhoenixConfig {
            safety_poll: Duration::seconds(60),
            ..PhoenixConfig::default()
        },
    );
    let agents: Vec<AgentId> = (0..waiters()).map(|_| AgentId::new()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let polls: Vec<_> = agents
        .iter()
        .map(|agent| {
            let phoenix = phoenix.clone();
            let tx = tx.clone();
            let agent = *agent;
            tokio::spawn(async move {
                loop {
                    let got = phoenix
                        .wait_for_tasks(agent, 1, StdDuration::from_secs(30))
                        .await
                        .expect("long-poll");
                    let woke = Instant::now();
                    for leased in got {
                        let _ = tx.send((leased.task.id, woke));
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
            })
        })
        .collect();
    while phoenix.waiting_agents() < waiters() {
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    let queue = enqueue_side.stores().queue;
    let mut started = HashMap::new();
    let mut latencies = Vec::with_capacity(samples());
    for i in 0..samples() {
        let task = NewTask::new(
            agents[(i * 7) % waiters()],
            TaskPayload::CollectSnapshot {},
            0,
        );
        let start = Instant::now();
        started.insert(task.id, start);
        queue.enqueue(&[task]).await.expect("enqueue");
        let (id, woke) = rx.recv().await.expect("woken");
        latencies.push(woke - started[&id]);
    }
    for w in polls {
        w.abort();
    }
    waiting_side.purge().await.expect("purge");
    latencies.sort();
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().expect("samples"),
    )
}

fn main() {
    SMOKE.store(!std::env::args().any(|a| a == "--bench"), Ordering::Relaxed);
    let url = if smoke() {
        // Under `cargo test`: a test like any other backend test (loud skip without Redis,
        // failure under PHOENIX_REQUIRE_BACKENDS=1).
        let Some(url) = phoenix_conformance::require_backend("PHOENIX_TEST_REDIS_URL") else {
            return;
        };
        url
    } else {
        std::env::var("PHOENIX_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut admin = ConnectionManager::new(redis::Client::open(url.as_str()).expect("client"))
            .await
            .expect("admin");
        let mut machine = Machine::read();
        machine.with_redis(&url).with_peer("apalis-redis 1.0");
        let mut phoenix = Vec::new();
        let mut apalis_default = Vec::new();
        let mut apalis_batch = Vec::new();
        let mut apalis_unlocked = Vec::new();
        let (mut p50s, mut p99s, mut maxes) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds() {
            // Interleaved: the apalis-defaults run alternates before and after the others.
            if round % 2 == 1 {
                apalis_default.push(apalis_run(&url, &mut admin, 10, true).await);
            }
            phoenix.push(phoenix_run(&url, &mut admin).await);
            apalis_batch.push(apalis_run(&url, &mut admin, BATCH, true).await);
            apalis_unlocked.push(apalis_run(&url, &mut admin, BATCH, false).await);
            if round % 2 == 0 {
                apalis_default.push(apalis_run(&url, &mut admin, 10, true).await);
            }
            let (p50, p99, max) = wake_latency(&url).await;
            p50s.push(p50.as_secs_f64() * 1e3);
            p99s.push(p99.as_secs_f64() * 1e3);
            maxes.push(max.as_secs_f64() * 1e3);
            eprintln!("round {round} done");
        }
        machine.finish();
        let systems = [
            (format!("Phoenix `RedisStore`, claim batch {BATCH}, `complete_batch`"), &phoenix),
            ("apalis-redis defaults (batch 10, `lock_tasks`)".to_owned(), &apalis_default),
            (format!("apalis-redis batch {BATCH}, `lock_tasks`"), &apalis_batch),
            (format!("apalis-redis batch {BATCH}, no `lock_tasks`"), &apalis_unlocked),
        ];
        let mut report = Report::new();
        for (name, runs) in &systems {
            report.row(
                format!("{name}: tasks/s"),
                runs.iter().map(|r| r.tasks_per_sec).collect(),
                0,
                &[],
            );
        }
        // Ratios are paired by round: Phoenix's drain against the peer's in the same round.
        let ratio = |peer: &[Run]| -> Vec<f64> {
            phoenix
                .iter()
                .zip(peer)
                .map(|(p, a)| p.tasks_per_sec / a.tasks_per_sec)
                .collect()
        };
        report
            .row(
                "Phoenix / apalis-redis defaults (batch 10, `lock_tasks`), same round (x)",
                ratio(&apalis_default),
                2,
                &[Target::find(&TARGETS, "2x")],
            )
            .row(
                format!("Phoenix / apalis-redis batch {BATCH}, `lock_tasks`, same round (x)"),
                ratio(&apalis_batch),
                2,
                &[Target::find(&TARGETS, "2x")],
            )
            .row(
                format!("Phoenix / apalis-redis batch {BATCH}, no `lock_tasks`, same round (x)"),
                ratio(&apalis_unlocked),
                2,
                &[Target::find(&TARGETS, "parity-unlocked")],
            );
        for (name, runs) in &systems {
            report.row(
                format!("{name}: round trips per task"),
                runs.iter().map(|r| r.round_trips_per_task).collect(),
                2,
                &[],
            );
        }
        for (name, runs) in &systems {
            report.row(
                format!("{name}: Redis commands per task"),
                runs.iter().map(|r| r.commands_per_task).collect(),
                1,
                &[],
            );
        }
        let wake = format!(
            "enqueue-to-wake across two store instances (enqueue on one, {} idle long-polls on the other), {} samples",
            waiters(),
            samples()
        );
        report
            .row(format!("{wake}, p50 (ms)"), p50s, 2, &[])
            .row(
                format!("{wake}, p99 (ms)"),
                p99s,
                2,
                &[
                    Target::find(&TARGETS, "wake-p99"),
                    Target::find(&TARGETS, "wake-p99-second-wave"),
                ],
            )
            .row(format!("{wake}, max (ms)"), maxes, 2, &[]);
        let body = format!(
            "{}\n\nConfiguration: {} rounds; in each, every system drains a pre-filled backlog of \
{} tasks with {WORKERS} workers on one multiplexed connection (enqueueing not timed), then the \
wake-up latency is measured.\n\n{}",
            machine.describe(),
            rounds(),
            tasks(),
            report.render()
        );
        println!("{body}");
        if !smoke() {
            write_generated("redis-queue", COMMAND, &body);
        }
    });
}
