//! Connection loss under load: the store's connections (commands and pub/sub) are killed
//! with `CLIENT KILL` from a separate connection while producers enqueue and workers claim
//! and complete. The store reconnects by itself, errors surface as `Unavailable` (never a
//! panic), and nothing acknowledged is lost.
//!
//! To kill exactly this test's connections on a shared Redis, the stores log in as a
//! throw-away ACL user and the killer runs `CLIENT KILL USER <it> TYPE normal|pubsub`.

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use chrono::Duration;
use phoenix_conformance::fixtures::{phoenix, snapshot_task};
use phoenix_conformance::{TestBackend, require_backend};
use phoenix_core::ids::{AgentId, TaskId};
use phoenix_core::store::{StoreError, Stores};
use phoenix_core::task::{EnqueueResult, LeaseRef, NewTask, RetryPolicy, TaskState};
use phoenix_store_redis::RedisStore;

const TASKS: usize = 3_000;
const AGENTS: usize = 4;
const WORKERS: usize = 4;
const KILLS: usize = 12;
const LEASE: Duration = Duration::seconds(60);

/// Retries `op` while the store is unavailable (a connection was just killed), with a short
/// backoff; any other outcome is returned.
async fn retry<T, F, Fut>(unavailable: &AtomicUsize, mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    for _ in 0..1_000 {
        match op().await {
            Err(StoreError::Unavailable(_)) => {
                unavailable.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            }
            other => return other,
        }
    }
    panic!("the store did not recover after 1,000 attempts");
}

#[derive(Default)]
struct Ledger {
    enqueued: HashSet<TaskId>,
    completed: HashSet<TaskId>,
}

/// Claims and completes until nothing is claimable. A completion whose reply was lost is
/// retried; if the retry finds the lease gone, the task must already be succeeded.
async fn work(
    stores: Stores,
    agents: Arc<Vec<AgentId>>,
    ledger: Arc<Mutex<Ledger>>,
    unavailable: Arc<AtomicUsize>,
    producing: Arc<AtomicBool>,
) {
    loop {
        let mut got_any = false;
        for agent in agents.iter() {
            let claimed = retry(&unavailable, || stores.queue.claim(*agent, 8, LEASE))
                .await
                .expect("claim");
            for leased in claimed {
                got_any = true;
                let lease = LeaseRef {
                    task_id: leased.task.id,
                    token: leased.lease_token,
                };
                let mut attempts = 0;
                let done = loop {
                    attempts += 1;
                    match stores.queue.complete(&lease, None).await {
                        Ok(task) => break task.state == TaskState::Succeeded,
                        Err(StoreError::Unavailable(_)) => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(StdDuration::from_millis(5)).await;
                        }
                        Err(StoreError::LeaseLost { .. }) if attempts > 1 => {
                            let task = retry(&unavailable, || stores.queue.get(lease.task_id))
                                .await
                                .expect("get");
                            break task.state == TaskState::Succeeded;
                        }
                        Err(e) => panic!("complete: unexpected {e:?}"),
                    }
                };
                assert!(done, "a completion was refused without cause");
                ledger
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .completed
                    .insert(lease.task_id);
            }
        }
        if !got_any && !producing.load(Ordering::SeqCst) {
            return;
        }
        if !got_any {
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn survives_client_kill_under_load() {
    let Some(url) = require_backend(common::URL_VAR) else {
        return;
    };
    assert!(
        url.starts_with("redis://") && !url.contains('@'),
        "this test adds its own ACL user to {url}; give a URL without credentials"
    );
    let admin = redis::Client::open(url.as_str()).expect("admin client");
    let mut admin = admin
        .get_multiplexed_async_connection()
        .await
        .expect("admin connection");
    let user = format!("phoenix-kill-{}", uuid::Uuid::new_v4());
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg("nopass")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .expect("create the ACL user");
    let killable = url.replacen("redis://", &format!("redis://{user}:unused@"), 1);
    let backend = common::RedisBackend::connect(killable).await;
    let replica = RedisStore::connect(backend.config.clone())
        .await
        .expect("replica");
    let stores = backend.stores();

    let agents: Arc<Vec<AgentId>> = Arc::new((0..AGENTS).map(|_| AgentId::new()).collect());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let producing = Arc::new(AtomicBool::new(true));

    // Producer: batches of 50, retried as a whole when the reply is lost (an enqueue is
    // idempotent on task ids: a task stored by the lost attempt comes back as a duplicate
    // of itself).
    let producer = {
        let stores = stores.clone();
        let agents = agents.clone();
        let ledger = ledger.clone();
        let unavailable = unavailable.clone();
        tokio::spawn(async move {
            let tasks: Vec<NewTask> = (0..TASKS)
                .map(|i| snapshot_task(agents[i % agents.len()]))
                .collect();
            for batch in tasks.chunks(50) {
                let results = retry(&unavailable, || stores.queue.enqueue(batch))
                    .await
                    .expect("enqueue");
                for (task, result) in batch.iter().zip(results) {
                    match result {
                        EnqueueResult::Enqueued { .. } => {}
                        EnqueueResult::Duplicate { existing, .. } => {
                            assert_eq!(existing, task.id, "only a retried batch duplicates");
                        }
                    }
                }
                ledger
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .enqueued
                    .extend(batch.iter().map(|t| t.id));
                tokio::task::yield_now().await;
            }
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(work(
                stores.clone(),
                agents.clone(),
                ledger.clone(),
                unavailable.clone(),
                producing.clone(),
            ))
        })
        .collect();

    // Killer: both connection types of the test user, repeatedly, while the load runs.
    let mut killed = 0u64;
    let mut rounds_with_kills = 0;
    let subscriptions_before = backend.store.bus_subscriptions();
    for _ in 0..KILLS {
        tokio::time::sleep(StdDuration::from_millis(30)).await;
        let mut this_round = 0;
        for kind in ["normal", "pubsub"] {
            let n: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("USER")
                .arg(&user)
                .arg("TYPE")
                .arg(kind)
                .query_async(&mut admin)
                .await
                .expect("client kill");
            this_round += n;
        }
        killed += this_round;
        rounds_with_kills += usize::from(this_round > 0);
    }
    producer.await.expect("producer");
    producing.store(false, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }

    // Claims whose replies were lost left leases nobody holds: expire and requeue them, then
    // drain again, until every acknowledged task is done.
    for _ in 0..10 {
        let missing = {
            let ledger = ledger.lock().unwrap_or_else(PoisonError::into_inner);
            ledger.enqueued.len() - ledger.completed.len()
        };
        if missing == 0 {
            break;
        }
        backend.advance(LEASE + Duration::seconds(1));
        let policy = RetryPolicy::default();
        retry(&unavailable, || {
            stores.queue.requeue_expired(&policy, 10_000)
        })
        .await
        .expect("requeue");
        work(
            stores.clone(),
            agents.clone(),
            ledger.clone(),
            unavailable.clone(),
            producing.clone(),
        )
        .await;
    }

    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(PoisonError::into_inner));
    println!(
        "killed {killed} connections in {rounds_with_kills} rounds; {} operations retried after Unavailable",
        unavailable.load(Ordering::Relaxed)
    );
    assert!(
        rounds_with_kills >= KILLS / 2,
        "the killer found connections to kill"
    );
    assert!(
        unavailable.load(Ordering::Relaxed) > 0,
        "kills surfaced as Unavailable"
    );
    assert_eq!(ledger.enqueued.len(), TASKS, "every batch acknowledged");
    assert_eq!(
        ledger.completed, ledger.enqueued,
        "nothing acknowledged is lost"
    );
    for id in &ledger.enqueued {
        let task = retry(&unavailable, || stores.queue.get(*id))
            .await
            .expect("get");
        assert_eq!(task.state, TaskState::Succeeded, "task {id}");
    }
    let stats = retry(&unavailable, || stores.queue.stats())
        .await
        .expect("stats");
    assert_eq!(stats.by_state[&TaskState::Succeeded], TASKS as u64);
    assert_eq!(stats.by_state[&TaskState::Pending], 0);
    assert_eq!(stats.by_state[&TaskState::Leased], 0);

    // The bus came back on both stores: once Redis counts both subscribers on the channel
    // again (each listener reconnects only after its old connection ended, so then neither
    // is stale), a long-poll on one store is woken by an enqueue on the other, well before
    // the 60 s safety poll.
    assert!(
        backend.store.bus_subscriptions() > subscriptions_before,
        "the bus connection was killed and re-established"
    );
    let channel = format!("{}:bus", backend.store.namespace());
    loop {
        let seen = (
            backend.store.bus_subscriptions(),
            replica.bus_subscriptions(),
        );
        let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut admin)
            .await
            .expect("pubsub numsub");
        if subscribers == 2 {
            break;
        }
        tokio::time::timeout(StdDuration::from_secs(10), async {
            tokio::select! {
                () = backend.store.bus_resubscribed(seen.0) => {}
                () = replica.bus_resubscribed(seen.1) => {}
            }
        })
        .await
        .expect("a bus listener reconnects");
    }
    let p = phoenix(&backend);
    let agent = AgentId::new();
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_tasks(agent, 1, StdDuration::from_secs(30)).await })
    };
    while p.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    let wake = [snapshot_task(agent)];
    let replica_stores = replica.stores();
    retry(&unavailable, || replica_stores.queue.enqueue(&wake))
        .await
        .expect("enqueue on the replica");
    let woken = tokio::time::timeout(StdDuration::from_secs(10), waiter)
        .await
        .expect("woken through the re-established bus")
        .expect("waiter")
        .expect("long-poll");
    assert_eq!(woken.len(), 1);

    backend.cleanup().await;
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .expect("delete the ACL user");
}
