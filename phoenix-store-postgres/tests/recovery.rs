//! Connection loss under load: every connection of two store replicas (pools and bus
//! listeners) is terminated with `pg_terminate_backend` three times while producers
//! enqueue and workers claim and complete. Afterwards nothing is lost, nothing was
//! completed twice, the listeners are back, and a long-poll on one replica is woken by an
//! enqueue on the other.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::Duration;
use common::PgBackend;
use phoenix_conformance::TestBackend;
use phoenix_conformance::fixtures::{config, snapshot_task};
use phoenix_core::Phoenix;
use phoenix_core::ids::{AgentId, TaskId};
use phoenix_core::store::{StoreError, Stores};
use phoenix_core::task::{LeaseRef, NewTask, RetryPolicy, TaskState};
use phoenix_store_postgres::PgStore;
use tokio::sync::watch;

const TASKS: usize = 3_000;
const AGENTS: usize = 6;
const WORKERS: usize = 6;
const KILLS: u64 = 3;
const LEASE: Duration = Duration::seconds(60);

/// What the workers saw.
#[derive(Default)]
struct Log {
    enqueued: HashSet<TaskId>,
    completed: HashSet<TaskId>,
    completed_twice: usize,
    unavailable: usize,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Terminates every connection whose `application_name` is the test's; returns how many.
async fn terminate_all(url: &str, application_name: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .expect("admin connection");
    sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(application_name)
    .fetch_one(&mut conn)
    .await
    .expect("terminate")
}

/// Enqueues `batch`, retrying while the store is unavailable. A retry after a lost reply
/// is safe: the ids are the caller's, so an enqueue that did commit reports them as
/// duplicates of themselves.
async fn enqueue_retrying(stores: &Stores, batch: &[NewTask], log: &Mutex<Log>) {
    loop {
        match stores.queue.enqueue(batch).await {
            Ok(_) => return,
            Err(StoreError::Unavailable(_)) => {
                lock(log).unavailable += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("enqueue: {e:?}"),
        }
    }
}

/// Completes, retrying while unavailable. `LeaseLost` after an unavailable attempt means
/// the lost reply had committed (the task reads `Succeeded`).
async fn complete_retrying(stores: &Stores, lease: LeaseRef, log: &Mutex<Log>) {
    let mut retried = false;
    loop {
        match stores.queue.complete(&lease, None).await {
            Ok(_) => break,
            Err(StoreError::Unavailable(_)) => {
                lock(log).unavailable += 1;
                retried = true;
                tokio::task::yield_now().await;
            }
            Err(StoreError::LeaseLost { .. }) if retried => {
                let task = loop {
                    match stores.queue.get(lease.task_id).await {
                        Ok(task) => break task,
                        Err(StoreError::Unavailable(_)) => tokio::task::yield_now().await,
                        Err(e) => panic!("get: {e:?}"),
                    }
                };
                assert_eq!(
                    task.state,
                    TaskState::Succeeded,
                    "a lost reply had committed"
                );
                break;
            }
            Err(e) => panic!("complete: {e:?}"),
        }
    }
    let mut log = lock(log);
    if !log.completed.insert(lease.task_id) {
        log.completed_twice += 1;
    }
}

/// Claims and completes until `stop` says so and a sweep finds nothing. When a sweep finds
/// nothing it waits for producers to enqueue more (or for `stop`).
async fn work(
    stores: Stores,
    agents: Arc<Vec<AgentId>>,
    log: Arc<Mutex<Log>>,
    progress: watch::Sender<usize>,
    mut enqueued: watch::Receiver<usize>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let mut got = 0;
        for agent in agents.iter() {
            let claimed = match stores.queue.claim(*agent, 8, LEASE).await {
                Ok(claimed) => claimed,
                Err(StoreError::Unavailable(_)) => {
                    lock(&log).unavailable += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                Err(e) => panic!("claim: {e:?}"),
            };
            got += claimed.len();
            for leased in claimed {
                let lease = LeaseRef {
                    task_id: leased.task.id,
                    token: leased.lease_token,
                };
                complete_retrying(&stores, lease, &log).await;
                progress.send_modify(|n| *n += 1);
            }
        }
        if got == 0 {
            if *stop.borrow_and_update() {
                return;
            }
            enqueued.mark_unchanged();
            tokio::select! {
                _ = enqueued.changed() => {}
                _ = stop.changed() => {}
            }
        }
    }
}

async fn wait_listening(store: &PgStore, reconnects: u64) {
    let mut state = store.bus_listener();
    tokio::time::timeout(
        StdDuration::from_secs(30),
        state.wait_for(|s| s.connected && s.reconnects >= reconnects),
    )
    .await
    .expect("the bus listener reconnects")
    .expect("listener state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn survives_terminated_connections_under_load() {
    let Some(backend) = PgBackend::fresh().await else {
        return;
    };
    let store = backend.store().clone();
    let replica = backend.replica_store().await;
    let application_name = common::application_name(store.schema());
    let agents: Arc<Vec<AgentId>> = Arc::new((0..AGENTS).map(|_| AgentId::new()).collect());
    let log = Arc::new(Mutex::new(Log::default()));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let (stop_tx, stop) = watch::channel(false);
    let (enqueued_tx, enqueued) = watch::channel(0usize);
    let enqueued_tx = Arc::new(enqueued_tx);

    // Producers on both replicas, workers on both replicas.
    let mut producers = Vec::new();
    for (p, stores) in [store.stores(), replica.stores()].into_iter().enumerate() {
        let agents = agents.clone();
        let log = log.clone();
        let enqueued_tx = enqueued_tx.clone();
        producers.push(tokio::spawn(async move {
            let mine: Vec<NewTask> = (0..TASKS / 2)
                .map(|i| snapshot_task(agents[(i + p) % agents.len()]))
                .collect();
            for batch in mine.chunks(25) {
                enqueue_retrying(&stores, batch, &log).await;
                lock(&log).enqueued.extend(batch.iter().map(|t| t.id));
                enqueued_tx.send_modify(|n| *n += batch.len());
            }
        }));
    }
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let stores = if w % 2 == 0 {
            store.stores()
        } else {
            replica.stores()
        };
        workers.push(tokio::spawn(work(
            stores,
            agents.clone(),
            log.clone(),
            progress_tx.clone(),
            enqueued.clone(),
            stop.clone(),
        )));
    }

    // Kill every connection at 20%, 40% and 60% of the work.
    for k in 1..=KILLS {
        let threshold = TASKS * usize::try_from(k).unwrap() / 5;
        progress
            .wait_for(|n| *n >= threshold)
            .await
            .expect("progress");
        let killed = terminate_all(backend.url(), &application_name).await;
        assert!(
            killed >= 2,
            "both listeners and some pool connections: {killed}"
        );
        wait_listening(&store, k).await;
        wait_listening(&replica, k).await;
    }
    for p in producers {
        p.await.expect("producer");
    }
    stop_tx.send(true).expect("workers listen");
    for w in workers {
        w.await.expect("worker");
    }

    // Claims whose reply was lost left leases nobody holds: let them expire, requeue, and
    // drain once more.
    backend.advance(LEASE + Duration::seconds(1));
    let requeued = store
        .stores()
        .queue
        .requeue_expired(&RetryPolicy::default(), 10_000)
        .await
        .expect("requeue");
    let (_, stop) = watch::channel(true);
    work(
        store.stores(),
        agents.clone(),
        log.clone(),
        progress_tx,
        enqueued,
        stop,
    )
    .await;

    let log = std::mem::take(&mut *lock(&log));
    println!(
        "recovery: {} tasks, {} unavailable errors, {} orphaned leases requeued",
        log.enqueued.len(),
        log.unavailable,
        requeued.len()
    );
    assert_eq!(log.enqueued.len(), TASKS);
    assert_eq!(log.completed_twice, 0, "no acknowledged completion twice");
    assert_eq!(log.completed, log.enqueued, "every enqueued task completed");
    let stats = store.stores().queue.stats().await.expect("stats");
    assert_eq!(
        stats.by_state[&TaskState::Succeeded],
        TASKS as u64,
        "nothing lost: {stats:?}"
    );
    assert_eq!(stats.by_state[&TaskState::Pending], 0);
    assert_eq!(stats.by_state[&TaskState::Leased], 0);

    // Long-poll wake-ups across replicas resume: a poll on `store` (safety poll 60 s) is
    // woken by an enqueue on `replica`.
    let phoenix = Phoenix::new(store.stores(), backend.clock(), config());
    let agent = AgentId::new();
    let waiter = {
        let phoenix = phoenix.clone();
        tokio::spawn(async move {
            phoenix
                .wait_for_tasks(agent, 4, StdDuration::from_secs(30))
                .await
        })
    };
    while phoenix.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    let started = std::time::Instant::now();
    enqueue_retrying(
        &replica.stores(),
        &[snapshot_task(agent)],
        &Mutex::default(),
    )
    .await;
    let got = tokio::time::timeout(StdDuration::from_secs(10), waiter)
        .await
        .expect("woken across replicas after the reconnections")
        .expect("waiter")
        .expect("wait_for_tasks");
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < StdDuration::from_secs(5),
        "woken by the bus, not the safety poll: {:?}",
        started.elapsed()
    );
    backend.cleanup().await;
}
