//! Experiments: CRUD, pagination, compare-and-set, events, atomic commits, the bus.

use std::collections::HashSet;
use std::time::Duration as StdDuration;

use phoenix_core::PhoenixError;
use phoenix_core::experiment::{Experiment, Phase, TransitionError};
use phoenix_core::page::PageRequest;
use phoenix_core::store::{BusEvent, Commit, ExperimentFilter, StoreError};
use phoenix_core::task::{TaskFilter, TaskState};

use crate::TestBackend;
use crate::fixtures::{enroll, new_experiment, operator, phoenix};

/// Created experiments read back identical.
pub async fn experiment_create_get_roundtrip(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let created = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    assert_eq!(created.phase, Phase::Created);
    assert_eq!(created.version, 1);
    let read = p.experiment(created.id).await.unwrap();
    assert_eq!(read, created);
    let events = p.experiment_events(created.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
}

/// Inserting an id twice is a conflict and changes nothing.
pub async fn experiment_create_duplicate_conflicts(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let created = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    let events = p.experiment_events(created.id, 0, 100).await.unwrap();
    let mut copy = created.clone();
    copy.name = "changed".to_owned();
    let err = backend
        .stores()
        .experiments
        .create(&copy, &events[0])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(p.experiment(created.id).await.unwrap().name, "a");
}

/// An invalid request is refused with every field error at once and stores nothing:
/// unknown templates, bad parameters and a pricing model the catalogue does not have.
pub async fn experiment_create_rejects_invalid_requests(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let mut request = new_experiment("invalid");
    request.spec.candidate = phoenix_core::pipeline::PipelineRef::new("no-such-template");
    request.spec.pricing_model = "no-such-vendor".to_owned();
    request.spec.duration_secs = 0;
    let err = p.create_experiment(request, &operator()).await.unwrap_err();
    let PhoenixError::Validation(errors) = err else {
        panic!("expected field errors, got {err:?}");
    };
    let paths: HashSet<&str> = errors.errors.iter().map(|e| e.path.as_str()).collect();
    for path in [
        "spec.candidate.template",
        "spec.pricing_model",
        "spec.duration_secs",
    ] {
        assert!(paths.contains(path), "{path} missing from {errors:?}");
    }
    let pricing = errors
        .errors
        .iter()
        .find(|e| e.path == "spec.pricing_model")
        .unwrap();
    assert!(
        pricing.message.contains("datadog-pro"),
        "the message lists the available models: {pricing:?}"
    );
    let page = p
        .experiments(&ExperimentFilter::default(), &PageRequest::with_limit(100))
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing stored: {:?}", page.items);
}

/// Unknown ids are `NotFound` everywhere.
pub async fn experiment_missing_is_not_found(backend: &dyn TestBackend) {
    let stores = backend.stores();
    let id = phoenix_core::ids::ExperimentId::new();
    assert!(matches!(
        stores.experiments.get(id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        stores.experiments.events(id, 0, 10).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        stores.experiments.delete(id, 1).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Pages are newest first, and a cursor survives concurrent inserts: every experiment that
/// existed when paging started is returned exactly once.
pub async fn experiment_list_pagination_is_stable(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let mut ids = Vec::new();
    for i in 0..23 {
        ids.push(
            p.create_experiment(new_experiment(&format!("e{i}")), &operator())
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut page = PageRequest::with_limit(5);
    loop {
        let batch = p
            .experiments(&ExperimentFilter::default(), &page)
            .await
            .unwrap();
        assert!(batch.items.len() <= 5);
        seen.extend(batch.items.iter().map(|e| e.id));
        // Insert while paging: must not shift or duplicate later pages.
        p.create_experiment(new_experiment("late"), &operator())
            .await
            .unwrap();
        match batch.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each exactly once");
    let malformed = p
        .experiments(
            &ExperimentFilter::default(),
            &PageRequest {
                after: Some("not-a-cursor".to_owned()),
                limit: None,
            },
        )
        .await;
    assert!(matches!(
        malformed,
        Err(PhoenixError::Store(StoreError::Invalid(_)))
    ));
}

/// The phase filter returns exactly the experiments in those phases.
pub async fn experiment_list_filters_by_phase(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    enroll(&p, "host-a").await;
    let a = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    let b = p
        .create_experiment(new_experiment("b"), &operator())
        .await
        .unwrap();
    let c = p
        .create_experiment(new_experiment("c"), &operator())
        .await
        .unwrap();
    p.start(b.id, &operator()).await.unwrap();
    p.stop(c.id, &operator(), None).await.unwrap();
    let list = |phases: Vec<Phase>| {
        let p = p.clone();
        async move {
            p.experiments(&ExperimentFilter { phases }, &PageRequest::first())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(vec![Phase::Created]).await, vec![a.id]);
    assert_eq!(list(vec![Phase::Deploying]).await, vec![b.id]);
    assert_eq!(
        list(vec![Phase::Stopped, Phase::Deploying]).await,
        vec![c.id, b.id]
    );
    assert_eq!(list(vec![]).await.len(), 3);
}

/// A commit decided on a stale version is a `Conflict` and leaves experiment, events and
/// queue untouched.
pub async fn experiment_commit_stale_version_changes_nothing(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let agent = enroll(&p, "host-a").await;
    let created = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    let started = p.start(created.id, &operator()).await.unwrap();
    // Replay a transition decided on version 1 (now stale).
    let mut stale: Experiment = created.clone();
    stale.version = 2;
    stale.name = "lost update".to_owned();
    let commit = Commit {
        experiment: stale,
        expected_version: 1,
        events: Vec::new(),
        cancel_open_tasks: true,
        tasks: vec![crate::fixtures::snapshot_task(agent.id)],
    };
    let err = backend
        .stores()
        .experiments
        .commit(&commit)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(p.experiment(created.id).await.unwrap(), started);
    let tasks = p
        .tasks(
            &TaskFilter {
                agent_id: Some(agent.id),
                ..TaskFilter::default()
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(tasks.items.len(), 1, "only the deploy task");
    assert_eq!(tasks.items[0].state, TaskState::Pending, "not cancelled");
}

/// Sixteen concurrent starts: exactly one transition, fifteen typed refusals, one event.
pub async fn experiment_concurrent_starts_exactly_one_wins(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    enroll(&p, "host-a").await;
    enroll(&p, "host-b").await;
    let created = p
        .create_experiment(new_experiment("race"), &operator())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..16 {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            p.start(created.id, &operator()).await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(e) => {
                assert_eq!(e.phase, Phase::Deploying);
                ok += 1;
            }
            Err(PhoenixError::Transition(TransitionError::IllegalInPhase { phase, .. })) => {
                assert_eq!(phase, Phase::Deploying);
                refused += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, refused), (1, 15));
    let after = p.experiment(created.id).await.unwrap();
    assert_eq!(after.version, 2);
    let events = p.experiment_events(created.id, 0, 100).await.unwrap();
    assert_eq!(events.len(), 2, "created + one start");
    let tasks = p
        .tasks(
            &TaskFilter {
                experiment_id: Some(created.id),
                ..TaskFilter::default()
            },
            &PageRequest::first(),
        )
        .await
        .unwrap();
    assert_eq!(
        tasks.items.len(),
        2,
        "one deploy task per agent, no duplicates"
    );
}

/// Events are returned in sequence order without gaps, and `after_seq` pages through them.
pub async fn experiment_events_are_ordered_and_contiguous(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    enroll(&p, "host-a").await;
    let e = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    p.stop(e.id, &operator(), Some("enough".to_owned()))
        .await
        .unwrap();
    let events = p.experiment_events(e.id, 0, 100).await.unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for pair in events.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "the log replays");
    }
    assert_eq!(
        events.last().unwrap().to,
        p.experiment(e.id).await.unwrap().phase
    );
    let tail = p.experiment_events(e.id, 1, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, 2);
}

/// A commit's task enqueue and cancellation happen with the transition.
pub async fn experiment_commit_enqueues_and_cancels_atomically(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    let a = enroll(&p, "host-a").await;
    let b = enroll(&p, "host-b").await;
    let e = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    let filter = TaskFilter {
        experiment_id: Some(e.id),
        ..TaskFilter::default()
    };
    let deploys = p.tasks(&filter, &PageRequest::first()).await.unwrap().items;
    assert_eq!(deploys.len(), 2);
    let agents: HashSet<_> = deploys.iter().map(|t| t.agent_id).collect();
    assert_eq!(agents, HashSet::from([a.id, b.id]));
    // Stop cancels both pending deploys and enqueues one teardown per agent.
    p.stop(e.id, &operator(), None).await.unwrap();
    let all = p.tasks(&filter, &PageRequest::first()).await.unwrap().items;
    let cancelled = all
        .iter()
        .filter(|t| t.state == TaskState::Cancelled)
        .count();
    let pending = all.iter().filter(|t| t.state == TaskState::Pending).count();
    assert_eq!((cancelled, pending), (2, 2));
}

/// Delete is refused while active, allowed when created or terminal, and checks versions.
pub async fn experiment_delete_rules(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    enroll(&p, "host-a").await;
    let running = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    p.start(running.id, &operator()).await.unwrap();
    let err = p
        .delete_experiment(running.id, &operator())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        PhoenixError::Transition(TransitionError::IllegalInPhase { .. })
    ));
    assert!(p.experiment(running.id).await.is_ok());

    let created = p
        .create_experiment(new_experiment("b"), &operator())
        .await
        .unwrap();
    let stale = backend
        .stores()
        .experiments
        .delete(created.id, 7)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { .. }));
    p.delete_experiment(created.id, &operator()).await.unwrap();
    assert!(matches!(
        p.experiment(created.id).await,
        Err(PhoenixError::Store(StoreError::NotFound { .. }))
    ));
    assert!(matches!(
        p.experiment_events(created.id, 0, 10).await,
        Err(PhoenixError::Store(StoreError::NotFound { .. }))
    ));
}

/// Subscribers receive committed events in order.
pub async fn experiment_bus_delivers_events_in_order(backend: &dyn TestBackend) {
    let p = phoenix(backend);
    enroll(&p, "host-a").await;
    let mut rx = p.subscribe();
    let e = p
        .create_experiment(new_experiment("a"), &operator())
        .await
        .unwrap();
    p.start(e.id, &operator()).await.unwrap();
    p.stop(e.id, &operator(), None).await.unwrap();
    let mut seqs = Vec::new();
    let mut saw_tasks = false;
    while seqs.len() < 3 {
        let event = tokio::time::timeout(StdDuration::from_secs(10), rx.recv())
            .await
            .expect("bus event within 10 s")
            .expect("bus open");
        match event {
            BusEvent::Experiment { event, .. } if event.experiment_id == e.id => {
                seqs.push(event.seq)
            }
            BusEvent::TasksAvailable { .. } => saw_tasks = true,
            _ => {}
        }
    }
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(saw_tasks, "the start commit announced its tasks");
}
