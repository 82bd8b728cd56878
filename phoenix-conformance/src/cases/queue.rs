//! The task queue: claims, leases, fencing, retries, dead letters, long-polls.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::page::PageRequest;
use phoenix_core::store::StoreError;
use phoenix_core::task::{EnqueueResult, LeaseRef, LeasedTask, RetryPolicy, TaskFilter, TaskState};

use crate::TestBackend;
use crate::fixtures::{phoenix, phoenix_on, snapshot_task, task};

const LEASE: Duration = Duration::seconds(30);

fn lease_of(l: &LeasedTask) -> LeaseRef {
    LeaseRef {
        task_id: l.task.id,
        token: l.lease_token,
    }
}

/// Enqueue, claim and complete one task; the result is kept.
pub async fn queue_enqueue_claim_complete(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let new = task(agent, ExperimentId::new(), 5);
    let results = q.enqueue(std::slice::from_ref(&new)).await.unwrap();
    assert_eq!(results, vec![EnqueueResult::Enqueued { id: new.id }]);
    assert!(
        q.claim(AgentId::new(), 10, LEASE).await.unwrap().is_empty(),
        "other agents see nothing"
    );
    let claimed = q.claim(agent, 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let leased = &claimed[0];
    assert_eq!(leased.task.id, new.id);
    assert_eq!(leased.task.state, TaskState::Leased);
    assert_eq!(leased.task.attempts, 1);
    assert_eq!(leased.task.payload, new.payload);
    assert!(
        q.claim(agent, 10, LEASE).await.unwrap().is_empty(),
        "leased tasks are not claimable"
    );
    let done = q
        .complete(
            &lease_of(leased),
            Some(serde_json::json!({"message": "ok"})),
        )
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let read = q.get(new.id).await.unwrap();
    assert_eq!(read.state, TaskState::Succeeded);
    assert_eq!(read.result, Some(serde_json::json!({"message": "ok"})));
    assert!(matches!(
        q.get(phoenix_core::ids::TaskId::new()).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// A batch completion fences every lease on its own: stale and unknown leases fail in
/// their slot, the others succeed.
pub async fn queue_complete_batch_fences_each(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    q.enqueue(&[task(agent, e, 3), task(agent, e, 2), task(agent, e, 1)])
        .await
        .unwrap();
    let claimed = q.claim(agent, 3, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let mut stale = lease_of(&claimed[1]);
    stale.token = phoenix_core::ids::LeaseToken::new();
    let unknown = LeaseRef {
        task_id: phoenix_core::ids::TaskId::new(),
        token: phoenix_core::ids::LeaseToken::new(),
    };
    let results = q
        .complete_batch(&[
            (lease_of(&claimed[0]), Some(serde_json::json!({"n": 0}))),
            (stale, None),
            (unknown, None),
            (lease_of(&claimed[2]), None),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().unwrap().state, TaskState::Succeeded);
    assert!(matches!(results[1], Err(StoreError::LeaseLost { .. })));
    assert!(matches!(results[2], Err(StoreError::NotFound { .. })));
    assert_eq!(results[3].as_ref().unwrap().id, claimed[2].task.id);
    assert_eq!(
        q.get(claimed[0].task.id).await.unwrap().result,
        Some(serde_json::json!({"n": 0}))
    );
    assert_eq!(
        q.get(claimed[1].task.id).await.unwrap().state,
        TaskState::Leased
    );
    assert_eq!(
        q.get(claimed[2].task.id).await.unwrap().state,
        TaskState::Succeeded
    );
    // The stale slot did not cost the real lease anything.
    q.complete(&lease_of(&claimed[1]), None).await.unwrap();
    assert!(q.complete_batch(&[]).await.unwrap().is_empty());
}

/// Claims come out by priority desc, then run_at, then creation; `max` is honoured.
pub async fn queue_claim_order_priority_run_at_creation(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    let low1 = task(agent, e, 1);
    let high = task(agent, e, 9);
    let low2 = task(agent, e, 1);
    let delayed_high = task(agent, e, 9).with_delay(Duration::seconds(5));
    let mid = task(agent, e, 5);
    for t in [&low1, &high, &low2, &delayed_high, &mid] {
        q.enqueue(std::slice::from_ref(t)).await.unwrap();
    }
    let first = q.claim(agent, 2, LEASE).await.unwrap();
    let ids: Vec<_> = first.iter().map(|l| l.task.id).collect();
    assert_eq!(ids, vec![high.id, mid.id]);
    let rest = q.claim(agent, 10, LEASE).await.unwrap();
    let ids: Vec<_> = rest.iter().map(|l| l.task.id).collect();
    assert_eq!(
        ids,
        vec![low1.id, low2.id],
        "delayed task not yet claimable"
    );
    backend.advance(Duration::seconds(6));
    let late = q.claim(agent, 10, LEASE).await.unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].task.id, delayed_high.id);
}

/// At most one open task per unique key; the key frees up when the task finishes.
pub async fn queue_unique_keys(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    let a = task(agent, e, 1).with_unique_key("k");
    let b = task(agent, e, 1).with_unique_key("k");
    let c = task(agent, e, 1).with_unique_key("k");
    let results = q.enqueue(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(
        results,
        vec![
            EnqueueResult::Enqueued { id: a.id },
            EnqueueResult::Duplicate {
                id: b.id,
                existing: a.id
            }
        ]
    );
    assert!(matches!(
        q.get(b.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let claimed = q.claim(agent, 10, LEASE).await.unwrap();
    assert_eq!(
        q.enqueue(std::slice::from_ref(&c)).await.unwrap(),
        vec![EnqueueResult::Duplicate {
            id: c.id,
            existing: a.id
        }],
        "a leased task still holds its key"
    );
    q.complete(&lease_of(&claimed[0]), None).await.unwrap();
    assert_eq!(
        q.enqueue(std::slice::from_ref(&c)).await.unwrap(),
        vec![EnqueueResult::Enqueued { id: c.id }]
    );
}

/// 32 concurrent claimers never receive the same task while its lease is valid.
pub async fn queue_exclusive_claims_under_concurrency(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    let tasks: Vec<_> = (0..200).map(|i| task(agent, e, (i % 7) as i16)).collect();
    q.enqueue(&tasks).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..32 {
        let q = q.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q.claim(agent, 3, LEASE).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|l| l.task.id));
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every task claimed once");
    assert_eq!(unique.len(), 200, "no task claimed twice");
}

/// An expired lease goes back to pending (the attempt stays counted) and can be claimed again.
pub async fn queue_lease_expiry_returns_task(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let t = task(agent, ExperimentId::new(), 1);
    q.enqueue(std::slice::from_ref(&t)).await.unwrap();
    q.claim(agent, 1, LEASE).await.unwrap();
    let policy = RetryPolicy::default();
    assert!(
        q.requeue_expired(&policy, 100).await.unwrap().is_empty(),
        "not yet expired"
    );
    backend.advance(LEASE + Duration::seconds(1));
    let requeued = q.requeue_expired(&policy, 100).await.unwrap();
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].state, TaskState::Pending);
    assert_eq!(requeued[0].attempts, 1);
    assert!(
        q.requeue_expired(&policy, 100).await.unwrap().is_empty(),
        "handled once"
    );
    let again = q.claim(agent, 1, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].task.attempts, 2);
}

/// After a lease expired and the task was claimed again, the old token is refused
/// everywhere and changes nothing.
pub async fn queue_stale_token_rejected_after_reclaim(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let t = task(agent, ExperimentId::new(), 1);
    q.enqueue(std::slice::from_ref(&t)).await.unwrap();
    let old = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    backend.advance(LEASE + Duration::seconds(1));
    q.requeue_expired(&RetryPolicy::default(), 100)
        .await
        .unwrap();
    let new = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    assert_ne!(old.lease_token, new.lease_token);
    let stale = lease_of(&old);
    let policy = RetryPolicy::default();
    assert!(matches!(
        q.complete(&stale, None).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        q.fail(&stale, "x", true, &policy).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        q.extend(&stale, LEASE).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        q.release(&stale).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let read = q.get(t.id).await.unwrap();
    assert_eq!(read.state, TaskState::Leased);
    assert_eq!(read.attempts, 2);
    q.complete(&lease_of(&new), None).await.unwrap();
}

/// A lease past its expiry is lost even before anyone requeues it.
pub async fn queue_expired_lease_cannot_complete(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    q.enqueue(&[task(agent, ExperimentId::new(), 1)])
        .await
        .unwrap();
    let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    backend.advance(LEASE + Duration::seconds(1));
    assert!(matches!(
        q.complete(&lease_of(&leased), None).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(
        q.get(leased.task.id).await.unwrap().state,
        TaskState::Leased
    );
}

/// Extending moves the expiry forward, so the lease survives past the original deadline.
pub async fn queue_extend_keeps_lease(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    q.enqueue(&[task(agent, ExperimentId::new(), 1)])
        .await
        .unwrap();
    let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    backend.advance(Duration::seconds(20));
    let expires = q.extend(&lease_of(&leased), LEASE).await.unwrap();
    assert!(expires > leased.lease_expires_at);
    backend.advance(Duration::seconds(20));
    assert!(
        q.requeue_expired(&RetryPolicy::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    q.complete(&lease_of(&leased), None).await.unwrap();
}

/// A retryable failure is claimable again only after the policy's backoff.
pub async fn queue_backoff_schedule_respected(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let t = task(agent, ExperimentId::new(), 1);
    q.enqueue(std::slice::from_ref(&t)).await.unwrap();
    let policy = RetryPolicy {
        jitter: 0.0,
        base_ms: 10_000,
        ..RetryPolicy::default()
    };
    for attempt in 1..=3u32 {
        let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
        assert_eq!(leased.task.attempts, attempt);
        let failed = q
            .fail(&lease_of(&leased), "boom", true, &policy)
            .await
            .unwrap();
        assert_eq!(failed.state, TaskState::Pending);
        assert_eq!(failed.last_error.as_deref(), Some("boom"));
        let delay = policy.backoff(t.id, attempt);
        assert_eq!(delay, Duration::seconds(10 * 2i64.pow(attempt - 1)));
        backend.advance(delay - Duration::seconds(1));
        assert!(
            q.claim(agent, 1, LEASE).await.unwrap().is_empty(),
            "too early at attempt {attempt}"
        );
        backend.advance(Duration::seconds(2));
    }
    assert_eq!(q.claim(agent, 1, LEASE).await.unwrap().len(), 1);
}

/// Out of attempts: dead-lettered (kept, visible); a re-drive makes it pending again.
pub async fn queue_dead_letter_and_redrive(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let t = task(agent, ExperimentId::new(), 1)
        .with_max_attempts(2)
        .with_unique_key("dl");
    q.enqueue(std::slice::from_ref(&t)).await.unwrap();
    let policy = RetryPolicy::default();
    let first = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    q.fail(&lease_of(&first), "one", true, &policy)
        .await
        .unwrap();
    backend.advance(Duration::minutes(10));
    let second = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    let dead = q
        .fail(&lease_of(&second), "two", true, &policy)
        .await
        .unwrap();
    assert_eq!(dead.state, TaskState::DeadLettered);
    assert_eq!(dead.last_error.as_deref(), Some("two"));
    backend.advance(Duration::minutes(10));
    assert!(q.claim(agent, 1, LEASE).await.unwrap().is_empty());
    let listed = q
        .list(
            &TaskFilter {
                states: vec![TaskState::DeadLettered],
                ..TaskFilter::default()
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // The key is free while dead-lettered...
    let other = task(agent, ExperimentId::new(), 1).with_unique_key("dl");
    q.enqueue(std::slice::from_ref(&other)).await.unwrap();
    // ...so re-driving conflicts until the other one finishes.
    assert!(matches!(
        q.redrive(t.id).await,
        Err(StoreError::Conflict { .. })
    ));
    let o = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    q.complete(&lease_of(&o), None).await.unwrap();
    let again = q.redrive(t.id).await.unwrap();
    assert_eq!((again.state, again.attempts), (TaskState::Pending, 0));
    assert!(matches!(q.redrive(t.id).await, Err(StoreError::Invalid(_))));
    assert_eq!(q.claim(agent, 1, LEASE).await.unwrap().len(), 1);
}

/// A non-retryable failure is final.
pub async fn queue_non_retryable_failure_is_final(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    q.enqueue(&[task(agent, ExperimentId::new(), 1)])
        .await
        .unwrap();
    let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    let failed = q
        .fail(
            &lease_of(&leased),
            "invalid config",
            false,
            &RetryPolicy::default(),
        )
        .await
        .unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    backend.advance(Duration::hours(1));
    assert!(q.claim(agent, 1, LEASE).await.unwrap().is_empty());
}

/// Releasing gives the task back at once without counting the attempt.
pub async fn queue_release_does_not_count_attempt(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    q.enqueue(&[task(agent, ExperimentId::new(), 1)])
        .await
        .unwrap();
    let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    let released = q.release(&lease_of(&leased)).await.unwrap();
    assert_eq!((released.state, released.attempts), (TaskState::Pending, 0));
    let again = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    assert_eq!(again.task.attempts, 1);
}

/// Cancelling an experiment's tasks cancels its open ones only, and invalidates leases.
pub async fn queue_cancel_by_experiment(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    let other = ExperimentId::new();
    let done = task(agent, e, 3);
    q.enqueue(&[
        done.clone(),
        task(agent, e, 2),
        task(agent, e, 1),
        task(agent, other, 0),
    ])
    .await
    .unwrap();
    let first = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    q.complete(&lease_of(&first), None).await.unwrap();
    let leased = q.claim(agent, 1, LEASE).await.unwrap().remove(0);
    let n = q
        .cancel(&TaskFilter {
            experiment_id: Some(e),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 2, "one leased and one pending");
    assert!(matches!(
        q.complete(&lease_of(&leased), None).await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(q.get(done.id).await.unwrap().state, TaskState::Succeeded);
    let left = q.claim(agent, 10, LEASE).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].task.experiment_id(), Some(other));
}

/// Stats count every state and expired leases.
pub async fn queue_stats_count_states(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    q.enqueue(&(0..5).map(|_| task(agent, e, 1)).collect::<Vec<_>>())
        .await
        .unwrap();
    let leased = q.claim(agent, 2, LEASE).await.unwrap();
    q.complete(&lease_of(&leased[0]), None).await.unwrap();
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.by_state[&TaskState::Pending], 3);
    assert_eq!(stats.by_state[&TaskState::Leased], 1);
    assert_eq!(stats.by_state[&TaskState::Succeeded], 1);
    assert_eq!(stats.by_state[&TaskState::DeadLettered], 0);
    assert!(stats.oldest_pending_run_at.is_some());
    assert_eq!(stats.expired_leases, 0);
    backend.advance(LEASE + Duration::seconds(1));
    assert_eq!(q.stats().await.unwrap().expired_leases, 1);
}

/// Pruning removes old succeeded and cancelled tasks only.
pub async fn queue_prune_keeps_unfinished(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let agent = AgentId::new();
    let e = ExperimentId::new();
    let tasks: Vec<_> = (0..4)
        .map(|_| task(agent, e, 1).with_max_attempts(1))
        .collect();
    q.enqueue(&tasks).await.unwrap();
    let leased = q.claim(agent, 3, LEASE).await.unwrap();
    q.complete(&lease_of(&leased[0]), None).await.unwrap();
    q.fail(&lease_of(&leased[1]), "x", true, &RetryPolicy::default())
        .await
        .unwrap();
    backend.advance(Duration::hours(2));
    let clock_now = backend.clock().now();
    let pruned = q.prune(clock_now - Duration::hours(1), 100).await.unwrap();
    assert_eq!(pruned, 1, "only the succeeded task");
    assert!(matches!(
        q.get(leased[0].task.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        q.get(leased[1].task.id).await.unwrap().state,
        TaskState::DeadLettered
    );
}

/// Listing filters by agent, experiment, state and kind, newest first, with cursors.
pub async fn queue_list_filters_and_paginates(backend: &dyn TestBackend) {
    let q = backend.stores().queue;
    let a = AgentId::new();
    let b = AgentId::new();
    let e = ExperimentId::new();
    let mut ids = Vec::new();
    for _ in 0..7 {
        let t = task(a, e, 1);
        ids.push(t.id);
        q.enqueue(&[t]).await.unwrap();
    }
    q.enqueue(&[snapshot_task(b)]).await.unwrap();
    let mut seen = Vec::new();
    let mut page = PageRequest::with_limit(3);
    let filter = TaskFilter {
        agent_id: Some(a),
        ..TaskFilter::default()
    };
    loop {
        let batch = q.list(&filter, &page).await.unwrap();
        seen.extend(batch.items.iter().map(|t| t.id));
        match batch.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let snapshots = q
        .list(
            &TaskFilter {
                kind: Some(phoenix_core::task::TaskKind::CollectSnapshot),
                ..TaskFilter::default()
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(snapshots.items.len(), 1);
    assert_eq!(snapshots.items[0].agent_id, b);
}

/// A waiting long-poll returns as soon as a task is enqueued (well before the 60 s safety
/// poll, so the wake-up path delivered it).
pub async fn queue_long_poll_wakes_on_enqueue(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = AgentId::new();
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let got = p
                .wait_for_tasks(agent, 4, StdDuration::from_secs(30))
                .await
                .unwrap();
            (got, start.elapsed())
        })
    };
    // Wait until the poll is registered (it claims once, finds nothing, then sleeps).
    while p.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(StdDuration::from_millis(20)).await;
    let enqueued_at = Instant::now();
    backend
        .stores()
        .queue
        .enqueue(&[snapshot_task(agent)])
        .await
        .unwrap();
    let (got, _) = waiter.await.unwrap();
    let latency = enqueued_at.elapsed();
    assert_eq!(got.len(), 1);
    assert!(
        latency < StdDuration::from_secs(5),
        "woken after {latency:?}"
    );
}

/// Without tasks, a long-poll returns empty at its timeout.
pub async fn queue_long_poll_times_out_empty(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let start = Instant::now();
    let got = p
        .wait_for_tasks(AgentId::new(), 4, StdDuration::from_millis(200))
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(start.elapsed() >= StdDuration::from_millis(200));
    assert_eq!(p.waiting_agents(), 0, "the waiter unregistered");
}

/// A newer poll from the same agent releases the older one, which returns empty.
pub async fn queue_long_poll_newer_poll_replaces_older(backend: &dyn TestBackend) {
    let p = Arc::new(phoenix(backend));
    let agent = AgentId::new();
    let older = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_tasks(agent, 4, StdDuration::from_secs(30)).await })
    };
    while p.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    let newer = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_tasks(agent, 4, StdDuration::from_secs(30)).await })
    };
    let old_result = tokio::time::timeout(StdDuration::from_secs(5), older)
        .await
        .expect("older poll released")
        .unwrap()
        .unwrap();
    assert!(old_result.is_empty());
    backend
        .stores()
        .queue
        .enqueue(&[snapshot_task(agent)])
        .await
        .unwrap();
    let new_result = tokio::time::timeout(StdDuration::from_secs(5), newer)
        .await
        .expect("newer poll woken")
        .unwrap()
        .unwrap();
    assert_eq!(new_result.len(), 1);
}

/// A task enqueued through another replica wakes a poll waiting on this one.
pub async fn queue_long_poll_wakes_across_replicas(backend: &dyn TestBackend) {
    let Some(replica) = backend.replica().await else {
        return; // Single-process backend: covered by queue_long_poll_wakes_on_enqueue.
    };
    let p = phoenix(backend);
    let other = phoenix_on(backend, replica);
    let agent = AgentId::new();
    let waiter = {
        let p = p.clone();
        tokio::spawn(async move { p.wait_for_tasks(agent, 4, StdDuration::from_secs(30)).await })
    };
    while p.waiting_agents() == 0 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(StdDuration::from_millis(50)).await;
    let start = Instant::now();
    other
        .stores()
        .queue
        .enqueue(&[snapshot_task(agent)])
        .await
        .unwrap();
    let got = tokio::time::timeout(StdDuration::from_secs(10), waiter)
        .await
        .expect("woken across replicas")
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(start.elapsed() < StdDuration::from_secs(5));
}
