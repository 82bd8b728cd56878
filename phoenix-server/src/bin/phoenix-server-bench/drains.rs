//! Library drains next to the product path: Phoenix's queue called in process (claim, then
//! `complete_batch` of each claim, as the store benches measure it) and apalis 1.0 at its
//! defaults (`Config::default()`, its own workers). Same backlog, same worker count, same
//! database; neither has an HTTP layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, TaskBuilder, TaskSink, WorkerBuilder, WorkerContext};
use phoenix_core::ids::AgentId;
use phoenix_core::store::Stores;
use phoenix_core::task::{LeaseRef, NewTask, TaskPayload};
use tokio::sync::{Notify, mpsc};

/// Enqueues `tasks` small tasks for one agent in batches of 500 (not timed).
pub(crate) async fn enqueue_for(stores: &Stores, agents: &[AgentId], tasks: usize) {
    let all: Vec<NewTask> = (0..tasks)
        .map(|i| NewTask::new(agents[i % agents.len()], TaskPayload::CollectSnapshot {}, 0))
        .collect();
    for chunk in all.chunks(500) {
        stores.queue.enqueue(chunk).await.expect("enqueue");
    }
}

/// Phoenix, in process: `workers` workers share one agent's queue, each claiming `batch`
/// and completing the claim with one `complete_batch`. Returns tasks/s.
pub(crate) async fn phoenix_library(
    stores: &Stores,
    tasks: usize,
    workers: usize,
    batch: usize,
) -> f64 {
    let agent = AgentId::new();
    enqueue_for(stores, &[agent], tasks).await;
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let queue = stores.queue.clone();
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let claimed = queue
                        .claim(agent, batch, chrono::Duration::seconds(60))
                        .await
                        .expect("claim");
                    if claimed.is_empty() {
                        return done;
                    }
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
    for h in handles {
        done += h.await.expect("worker");
    }
    let elapsed = start.elapsed();
    assert_eq!(done, tasks, "the library drain completed every task");
    rate(tasks, elapsed)
}

#[allow(clippy::cast_precision_loss, reason = "task counts far below 2^52")]
fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Counts handled jobs and wakes the drain when the last one ran.
fn counting_handler(
    total: usize,
) -> (
    Arc<Notify>,
    impl Fn(u64) -> std::future::Ready<Result<(), BoxDynError>> + Clone + Send + Sync + 'static,
) {
    let handled = Arc::new(AtomicUsize::new(0));
    let all = Arc::new(Notify::new());
    let notify = all.clone();
    let handler = move |_job: u64| {
        if handled.fetch_add(1, Ordering::SeqCst) + 1 == total {
            notify.notify_one();
        }
        std::future::ready(Ok::<(), BoxDynError>(()))
    };
    (all, handler)
}

/// apalis-redis 1.0 at `Config::default()` (batch 10, `lock_tasks`) on its own queue.
/// Returns tasks/s; the run ends when Redis holds every acknowledgement.
pub(crate) async fn apalis_redis(url: &str, tasks: usize, workers: usize) -> f64 {
    use apalis_redis::{Config, RedisStorage};
    use redis::aio::ConnectionManager;
    let client = redis::Client::open(url).expect("redis client");
    let conn = ConnectionManager::new(client).await.expect("connect");
    let mut admin = conn.clone();
    let queue = format!("apalis-server-bench-{}", uuid::Uuid::new_v4());
    let config = Config::default().queue(&queue);
    let mut storage = RedisStorage::<u64, ConnectionManager>::new(conn).with_config(config);
    for chunk in (0..tasks as u64).collect::<Vec<_>>().chunks(500) {
        storage.push_bulk(chunk.to_vec()).await.expect("push");
    }
    let done_key = storage.get_config().done_jobs_set();
    let (all, handler) = counting_handler(tasks);
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let worker = WorkerBuilder::new(format!("{queue}-w{i}"))
                .backend(storage.clone())
                .build(handler.clone());
            tokio::spawn(worker.run())
        })
        .collect();
    all.notified().await;
    let elapsed = loop {
        let acked: usize = redis::cmd("SCARD")
            .arg(&done_key)
            .query_async(&mut admin)
            .await
            .expect("scard");
        if acked >= tasks {
            break start.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    for h in handles {
        h.abort();
    }
    delete_keys(&mut admin, &format!("{queue}*")).await;
    rate(tasks, elapsed)
}

/// Deletes the keys matching `pattern` on the Redis at `url`.
pub(crate) async fn delete_keys_at(url: &str, pattern: &str) {
    let client = redis::Client::open(url).expect("redis client");
    let mut admin = redis::aio::ConnectionManager::new(client)
        .await
        .expect("connect");
    delete_keys(&mut admin, pattern).await;
}

/// Best effort: a busy Redis may time a `SCAN` out; the keys are then left behind
/// (namespaced per run) and the figures are unaffected.
async fn delete_keys(admin: &mut redis::aio::ConnectionManager, pattern: &str) {
    let mut cursor = 0u64;
    loop {
        let scanned: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(admin)
            .await;
        let (next, keys) = match scanned {
            Ok(v) => v,
            Err(e) => {
                eprintln!("cleanup of {pattern} stopped: {e}");
                return;
            }
        };
        if !keys.is_empty() {
            let unlinked: Result<u64, _> = redis::cmd("UNLINK").arg(&keys).query_async(admin).await;
            if let Err(e) = unlinked {
                eprintln!("cleanup of {pattern} stopped: {e}");
                return;
            }
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// apalis-postgres 1.0 at `Config::default()` (batch 10) in the bench database (its schema
/// set up there). Each worker has its own storage on one shared pool sized to the workers,
/// as in the store bench. Returns tasks/s; the run ends when every job is `Done`.
pub(crate) async fn apalis_postgres(url: &str, tasks: usize, workers: usize) -> f64 {
    use apalis_postgres::{Config, PostgresStorage};
    use sqlx::postgres::PgPoolOptions;
    const QUEUE: &str = "phoenix-server-bench";
    let pool = PgPoolOptions::new()
        .max_connections(u32::try_from(workers).unwrap_or(64) + 2)
        .acquire_timeout(Duration::from_secs(60))
        .connect(url)
        .await
        .expect("apalis pool");
    PostgresStorage::setup(&pool).await.expect("apalis setup");
    sqlx::raw_sql("DELETE FROM apalis.jobs WHERE job_type = 'phoenix-server-bench'")
        .execute(&pool)
        .await
        .expect("clear");
    let mut pushed = 0;
    while pushed < tasks {
        let n = (tasks - pushed).min(1_000);
        let batch = (0..n)
            .map(|i| {
                TaskBuilder::new(serde_json::to_vec(&((pushed + i) as u64)).expect("json")).build()
            })
            .collect();
        let mut tx = pool.begin().await.expect("begin");
        apalis_postgres::queries::push_tasks(&mut *tx, QUEUE, batch)
            .await
            .expect("push");
        tx.commit().await.expect("commit");
        pushed += n;
    }
    // With planner statistics, as the store bench runs it (its fetch plan changes after
    // ANALYZE).
    sqlx::raw_sql("ANALYZE apalis.jobs")
        .execute(&pool)
        .await
        .expect("analyze");
    let config = Config::default().queue(QUEUE);
    let (all, handler) = counting_handler(tasks);
    let (ctx_tx, mut contexts) = mpsc::unbounded_channel::<WorkerContext>();
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let storage = PostgresStorage::<u64>::new(&pool).with_config(config.clone());
        let worker = WorkerBuilder::new(format!("server-bench-{w}"))
            .backend(storage)
            .build(handler.clone());
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
    all.notified().await;
    let elapsed = loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE status = 'Done' AND job_type = $1",
        )
        .bind(QUEUE)
        .fetch_one(&pool)
        .await
        .expect("count");
        if usize::try_from(done).unwrap_or(0) >= tasks {
            break start.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    drop(ctx_tx);
    while let Ok(ctx) = contexts.try_recv() {
        let _ = ctx.stop();
    }
    for h in handles {
        h.abort();
    }
    sqlx::raw_sql("DELETE FROM apalis.jobs WHERE job_type = 'phoenix-server-bench'")
        .execute(&pool)
        .await
        .expect("clear");
    pool.close().await;
    rate(tasks, elapsed)
}
