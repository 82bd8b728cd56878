//! A Jepsen-style history check of the task queue.
//!
//! Producers enqueue tasks while consumers claim and complete them; a share of consumers
//! "die" holding a lease (they never complete). Time then moves past the lease, expired
//! leases are requeued, and the dead consumers come back and try to complete with their
//! stale tokens. The recorded history must show: no acknowledged task lost, nothing
//! delivered that was never enqueued, a second delivery only after a lease expired, and
//! every stale completion refused.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;
use phoenix_core::ids::{AgentId, ExperimentId, TaskId};
use phoenix_core::store::{StoreError, Stores};
use phoenix_core::task::{LeaseRef, RetryPolicy, TaskState};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::TestBackend;
use crate::fixtures::task;

/// Shape of a history run.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Tasks to enqueue.
    pub tasks: usize,
    /// Concurrent producers.
    pub producers: usize,
    /// Concurrent consumers.
    pub consumers: usize,
    /// Agents the tasks are spread over.
    pub agents: usize,
    /// Probability that a consumer dies holding a claimed task.
    pub death_rate: f64,
    /// Tasks claimed per claim call.
    pub batch: usize,
    /// Seed for the consumers' choices.
    pub seed: u64,
}

impl HistoryConfig {
    /// `tasks` tasks, 20% consumer deaths, 4 producers, 8 consumers, 8 agents.
    #[must_use]
    pub fn with_tasks(tasks: usize) -> Self {
        Self {
            tasks,
            producers: 4,
            consumers: 8,
            agents: 8,
            death_rate: 0.2,
            batch: 8,
            seed: 7,
        }
    }
}

/// What the history showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryReport {
    /// Tasks whose enqueue was acknowledged.
    pub enqueued: usize,
    /// Tasks completed (acknowledged completions).
    pub completed: usize,
    /// Acknowledged tasks never completed.
    pub lost: usize,
    /// Deliveries of tasks never enqueued.
    pub unexpected: usize,
    /// Deliveries after the first one.
    pub redeliveries: usize,
    /// Redeliveries not preceded by an expired lease on that task.
    pub unexplained_redeliveries: usize,
    /// Consumer deaths (leases dropped).
    pub deaths: usize,
    /// Stale completions refused with `LeaseLost`.
    pub stale_rejected: usize,
    /// Stale completions accepted (must be 0).
    pub stale_accepted: usize,
    /// Completions refused although the lease was valid (must be 0).
    pub valid_rejected: usize,
    /// Rounds (time advances) needed.
    pub rounds: usize,
}

impl HistoryReport {
    /// True when the history is clean.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.unexpected == 0
            && self.unexplained_redeliveries == 0
            && self.stale_accepted == 0
            && self.valid_rejected == 0
            && self.completed == self.enqueued
    }
}

#[derive(Default)]
struct Log {
    enqueued: HashSet<TaskId>,
    completed: HashSet<TaskId>,
    deliveries: HashMap<TaskId, usize>,
    expiries: HashMap<TaskId, usize>,
    zombies: Vec<LeaseRef>,
    report: HistoryReport,
}

/// Runs the history check on `backend`.
pub async fn run(backend: &dyn TestBackend, config: &HistoryConfig) -> HistoryReport {
    let stores = backend.stores();
    let lease = Duration::seconds(60);
    let agents: Arc<Vec<AgentId>> = Arc::new((0..config.agents).map(|_| AgentId::new()).collect());
    let experiment = ExperimentId::new();
    let log = Arc::new(Mutex::new(Log::default()));

    // Producers.
    let per_producer = config.tasks.div_ceil(config.producers.max(1));
    let mut producers = Vec::new();
    for p in 0..config.producers {
        let stores = stores.clone();
        let agents = agents.clone();
        let log = log.clone();
        let count = per_producer.min(config.tasks.saturating_sub(p * per_producer));
        producers.push(tokio::spawn(async move {
            for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
                let batch: Vec<_> = chunk
                    .iter()
                    .map(|i| {
                        task(agents[(p + i) % agents.len()], experiment, (i % 3) as i16)
                            .with_max_attempts(1_000)
                    })
                    .collect();
                stores.queue.enqueue(&batch).await.expect("enqueue");
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                log.enqueued.extend(batch.iter().map(|t| t.id));
            }
        }));
    }

    let mut producers_done = false;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let consumers: Vec<_> = (0..config.consumers)
            .map(|c| {
                let stores = stores.clone();
                let agents = agents.clone();
                let log = log.clone();
                let config = config.clone();
                let seed = config.seed.wrapping_add((rounds * 1_000 + c) as u64);
                tokio::spawn(consume(
                    stores,
                    agents,
                    log,
                    config,
                    seed,
                    lease,
                    producers_done,
                ))
            })
            .collect();
        if !producers_done {
            for p in producers.drain(..) {
                p.await.expect("producer");
            }
            producers_done = true;
        }
        for c in consumers {
            c.await.expect("consumer");
        }
        // Drain once more now that producers are done (consumers may have stopped early).
        consume(
            stores.clone(),
            agents.clone(),
            log.clone(),
            config.clone(),
            config.seed,
            lease,
            true,
        )
        .await;
        let (done, zombies) = {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            (
                log.completed.len() == log.enqueued.len(),
                std::mem::take(&mut log.zombies),
            )
        };
        if done && zombies.is_empty() || rounds > 200 {
            break;
        }
        // Let every dropped lease expire, requeue, then have the dead come back.
        backend.advance(lease + Duration::seconds(1));
        loop {
            let changed = stores
                .queue
                .requeue_expired(&RetryPolicy::default(), 10_000)
                .await
                .expect("requeue");
            if changed.is_empty() {
                break;
            }
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            for t in changed {
                *log.expiries.entry(t.id).or_default() += 1;
            }
        }
        for zombie in zombies {
            let outcome = stores.queue.complete(&zombie, None).await;
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            match outcome {
                Err(StoreError::LeaseLost { .. }) => log.report.stale_rejected += 1,
                Ok(_) => log.report.stale_accepted += 1,
                Err(e) => panic!("stale completion: unexpected error {e:?}"),
            }
        }
    }

    // Final accounting, cross-checked with the store.
    let log = std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner));
    let mut report = log.report.clone();
    report.rounds = rounds;
    report.enqueued = log.enqueued.len();
    report.completed = log.completed.len();
    for id in &log.enqueued {
        let stored = stores
            .queue
            .get(*id)
            .await
            .expect("acknowledged task exists");
        if stored.state != TaskState::Succeeded || !log.completed.contains(id) {
            report.lost += 1;
        }
    }
    for (id, n) in &log.deliveries {
        if !log.enqueued.contains(id) {
            report.unexpected += 1;
        }
        let extra = n.saturating_sub(1);
        report.redeliveries += extra;
        let explained = log.expiries.get(id).copied().unwrap_or(0);
        report.unexplained_redeliveries += extra.saturating_sub(explained);
    }
    report
}

async fn consume(
    stores: Stores,
    agents: Arc<Vec<AgentId>>,
    log: Arc<Mutex<Log>>,
    config: HistoryConfig,
    seed: u64,
    lease: Duration,
    final_pass: bool,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut idle_sweeps = 0;
    loop {
        let mut got_any = false;
        for agent in agents.iter() {
            let claimed = stores
                .queue
                .claim(*agent, config.batch, lease)
                .await
                .expect("claim");
            for leased in claimed {
                got_any = true;
                let lease_ref = LeaseRef {
                    task_id: leased.task.id,
                    token: leased.lease_token,
                };
                *log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .deliveries
                    .entry(leased.task.id)
                    .or_default() += 1;
                if rng.random_bool(config.death_rate) {
                    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                    log.report.deaths += 1;
                    log.zombies.push(lease_ref);
                    continue;
                }
                let outcome = stores.queue.complete(&lease_ref, None).await;
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                match outcome {
                    Ok(_) => {
                        assert!(log.completed.insert(leased.task.id), "completed twice");
                    }
                    Err(StoreError::LeaseLost { .. }) => log.report.valid_rejected += 1,
                    Err(e) => panic!("complete: unexpected error {e:?}"),
                }
            }
        }
        if !got_any {
            idle_sweeps += 1;
            if final_pass || idle_sweeps > 3 {
                return;
            }
            tokio::task::yield_now().await;
        } else {
            idle_sweeps = 0;
        }
    }
}
