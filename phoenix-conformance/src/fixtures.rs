//! Small builders shared by the cases.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use phoenix_core::agent::{Agent, AgentRegistration, Heartbeat};
use phoenix_core::experiment::{Actor, ExperimentSpec, NewExperiment};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::measure::{HostStats, MeasurementSample, VariantStats};
use phoenix_core::pipeline::PipelineRef;
use phoenix_core::store::Stores;
use phoenix_core::task::{NewTask, RemovalMode, RemovalScope, TaskPayload};
use phoenix_core::{Phoenix, PhoenixConfig};

use crate::TestBackend;

/// The configuration cases use: a long safety poll, so that a long-poll returning early
/// proves the wake-up path, not the poll.
#[must_use]
pub fn config() -> PhoenixConfig {
    PhoenixConfig {
        lease: Duration::seconds(30),
        safety_poll: Duration::seconds(60),
        ..PhoenixConfig::default()
    }
}

/// A facade over the backend.
#[must_use]
pub fn phoenix(backend: &dyn TestBackend) -> Phoenix {
    Phoenix::new(backend.stores(), backend.clock(), config())
}

/// A facade over other stores with the backend's clock (a second replica).
#[must_use]
pub fn phoenix_on(backend: &dyn TestBackend, stores: Stores) -> Phoenix {
    Phoenix::new(stores, backend.clock(), config())
}

/// The operator used by cases.
#[must_use]
pub fn operator() -> Actor {
    Actor::user("conformance")
}

/// A valid experiment request: baseline vs topk for 60 s with 10 s warm-up.
#[must_use]
pub fn new_experiment(name: &str) -> NewExperiment {
    let mut spec = ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 60);
    spec.warmup_secs = 10;
    spec.critical_processes = vec!["sshd".to_owned()];
    NewExperiment {
        name: name.to_owned(),
        description: format!("conformance experiment {name}"),
        spec,
    }
}

/// Enrolls an agent with `host` and labels `env=test`.
pub async fn enroll(phoenix: &Phoenix, host: &str) -> Agent {
    let registration = AgentRegistration {
        host: host.to_owned(),
        labels: BTreeMap::from([("env".to_owned(), "test".to_owned())]),
        version: "test".to_owned(),
        capabilities: vec!["native".to_owned()],
        os: "linux".to_owned(),
    };
    let (agent, _) = phoenix.enroll(registration).await.expect("enroll");
    phoenix
        .heartbeat(agent.id, Heartbeat::default())
        .await
        .expect("heartbeat")
}

/// A task for `agent` with `priority`, belonging to `experiment`.
#[must_use]
pub fn task(agent: AgentId, experiment: ExperimentId, priority: i16) -> NewTask {
    NewTask::new(
        agent,
        TaskPayload::RemovePipeline {
            experiment_id: experiment,
            op_seq: 1,
            scope: RemovalScope::Candidate,
            mode: RemovalMode::Graceful,
        },
        priority,
    )
}

/// A snapshot task (no experiment) for `agent`.
#[must_use]
pub fn snapshot_task(agent: AgentId) -> NewTask {
    NewTask::new(agent, TaskPayload::CollectSnapshot {}, 0)
}

/// A sample taken `seq * 10` seconds after `start` (one `start` per case: a wall clock read
/// per sample would break the ties the case relies on).
pub fn sample(
    start: DateTime<Utc>,
    experiment: ExperimentId,
    agent: AgentId,
    seq: u64,
) -> MeasurementSample {
    MeasurementSample {
        experiment_id: experiment,
        agent_id: agent,
        seq,
        taken_at: start + Duration::seconds(i64::try_from(seq).unwrap() * 10),
        interval_secs: 10,
        baseline: VariantStats {
            series: 1000 + seq,
            points: 2000,
            bytes: 90_000,
            ..VariantStats::default()
        },
        candidate: VariantStats {
            series: 100,
            points: 200,
            bytes: 9_000,
            ..VariantStats::default()
        },
        host: HostStats {
            cpu_pct: 5.0,
            ..HostStats::default()
        },
        queries: None,
    }
}
