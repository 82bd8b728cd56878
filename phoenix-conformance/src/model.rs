//! Model-based test of the experiment life cycle with `proptest-state-machine`.
//!
//! A small reference model (two agents, the first of which may die) predicts the phase and
//! per-agent state after every operation; the system under test is the real [`Phoenix`]
//! facade and [`Controller`] on a real backend, driven through the same paths agents and
//! operators use (long-poll claims, task reports, heartbeats, controller ticks). After every
//! step we check the prediction and the invariants: refused inputs change nothing, terminal
//! phases absorb, every applied command bumps the version by exactly one, and the event log
//! replays to the current phase without gaps.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Duration, Utc};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::analyzer::Analyzer;
use phoenix_core::experiment::{Experiment, ExperimentSpec, NewExperiment, Phase, TargetState};
use phoenix_core::ids::{AgentId, ExperimentId};
use phoenix_core::judge::{HostVerdict, Verdict, VerdictOutcome};
use phoenix_core::measure::MeasurementSample;
use phoenix_core::phoenix::TaskReport;
use phoenix_core::pipeline::PipelineRef;
use phoenix_core::store::StoreError;
use phoenix_core::task::{LeaseRef, RemovalMode};
use phoenix_core::{Controller, Phoenix, PhoenixError};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use tokio::runtime::Runtime;

use crate::TestBackend;
use crate::fixtures::{config, operator};

/// One runtime for every case, so that connection pools survive from case to case.
pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// How a model test obtains a backend for each case (it may share one schema or prefix
/// across cases; every case uses its own agents and experiment).
pub trait ModelBackend: 'static {
    /// A backend, or `None` to skip.
    fn create() -> Option<Box<dyn TestBackend>>;
}

/// The in-memory backend, fresh per case.
#[derive(Debug)]
pub struct MemoryModel;

impl ModelBackend for MemoryModel {
    fn create() -> Option<Box<dyn TestBackend>> {
        Some(Box::new(crate::MemoryBackend::new()))
    }
}

/// An operation on the experiment.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Operator: start.
    Start,
    /// Every live agent completes the tasks it holds.
    AckAll,
    /// The first agent fails its task for good.
    FailFirst,
    /// The first agent dies (stops heartbeating); the controller notices.
    LoseFirst,
    /// The run's duration elapses; the judge will answer with this verdict.
    Elapse(VerdictOutcome),
    /// Operator: stop.
    Stop,
    /// Operator: roll back.
    Rollback(RemovalMode),
    /// Operator: promote (forced or not).
    Promote(bool),
    /// Operator: delete.
    Delete,
}

impl Op {
    /// Operator commands (the others are agents and time).
    #[must_use]
    pub fn is_command(&self) -> bool {
        matches!(
            self,
            Op::Start | Op::Stop | Op::Rollback(_) | Op::Promote(_) | Op::Delete
        )
    }
}

/// Per-agent state in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Deploy task open.
    Deploying,
    /// Deployed.
    Deployed,
    /// Deploy failed.
    Failed,
    /// Wind-down task open.
    Finishing,
    /// Wind-down acknowledged.
    Finished,
    /// Lost.
    Lost,
}

/// The reference model.
#[derive(Debug, Clone)]
pub struct Model {
    /// `None` once deleted.
    pub phase: Option<Phase>,
    /// `spec.min_agents`.
    pub min_agents: u32,
    /// `spec.auto_rollback`.
    pub auto_rollback: bool,
    /// `spec.auto_promote`.
    pub auto_promote: bool,
    /// Whether the first agent still heartbeats (the second always does).
    pub first_alive: bool,
    /// Target state of each agent, once targeted.
    pub slots: [Option<Slot>; 2],
    /// The verdict, once judged.
    pub verdict: Option<VerdictOutcome>,
    /// Whether the last command was refused.
    pub refused: bool,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..2).filter(|&i| matches!(self.slots[i], Some(s) if s != Slot::Lost && s != Slot::Failed))
    }

    fn send_finish(&mut self) -> usize {
        let live: Vec<usize> = self.live().collect();
        for &i in &live {
            self.slots[i] = Some(Slot::Finishing);
        }
        live.len()
    }

    fn maybe_finish(&mut self) {
        if self.live().all(|i| self.slots[i] == Some(Slot::Finished)) {
            self.phase = match self.phase {
                Some(Phase::Stopping) => Some(Phase::Stopped),
                Some(Phase::RollingBack) => Some(Phase::RolledBack),
                Some(Phase::Promoting) => Some(Phase::Promoted),
                other => other,
            };
        }
    }

    fn maybe_running(&mut self) {
        if self.phase == Some(Phase::Deploying)
            && self.live().all(|i| self.slots[i] == Some(Slot::Deployed))
        {
            self.phase = Some(Phase::Running);
        }
    }

    fn fail(&mut self) {
        self.phase = Some(Phase::Failed);
        self.send_finish();
    }

    fn enter(&mut self, graceful_phase: Phase, done_phase: Phase, graceful: bool) {
        self.phase = Some(if graceful { graceful_phase } else { done_phase });
        self.send_finish();
        if graceful {
            self.maybe_finish();
        }
    }

    /// The controller noticing the dead first agent.
    fn notice_loss(&mut self) {
        let Some(phase) = self.phase else { return };
        if self.first_alive || !phase.is_active() {
            return;
        }
        match self.slots[0] {
            Some(s) if s != Slot::Lost => {}
            _ => return,
        }
        self.slots[0] = Some(Slot::Lost);
        let live = self.live().count();
        if matches!(phase, Phase::Deploying | Phase::Running) && live < self.min_agents as usize {
            self.fail();
        } else if phase == Phase::Deploying {
            self.maybe_running();
        } else {
            self.maybe_finish();
        }
    }

    fn step(&mut self, op: &Op) {
        self.refused = false;
        if *op == Op::LoseFirst {
            self.first_alive = false;
        }
        let Some(phase) = self.phase else {
            // Commands on a deleted experiment are refused (not found); agents and the
            // controller carry on without it.
            self.refused = op.is_command();
            return;
        };
        match op {
            Op::Start => {
                if phase != Phase::Created {
                    self.refused = true;
                    return;
                }
                let alive = [self.first_alive, true];
                let n = alive.iter().filter(|a| **a).count();
                if n < self.min_agents as usize {
                    self.refused = true;
                    return;
                }
                for (slot, alive) in self.slots.iter_mut().zip(alive) {
                    *slot = alive.then_some(Slot::Deploying);
                }
                self.phase = Some(Phase::Deploying);
            }
            Op::AckAll => {
                for i in 0..2 {
                    if i == 0 && !self.first_alive {
                        continue;
                    }
                    match (phase, self.slots[i]) {
                        (Phase::Deploying, Some(Slot::Deploying)) => {
                            self.slots[i] = Some(Slot::Deployed)
                        }
                        (_, Some(Slot::Finishing)) => self.slots[i] = Some(Slot::Finished),
                        _ => {}
                    }
                }
                self.maybe_running();
                self.maybe_finish();
            }
            Op::FailFirst => {
                if !self.first_alive {
                    return;
                }
                match (phase, self.slots[0]) {
                    (Phase::Deploying, Some(Slot::Deploying)) => {
                        self.slots[0] = Some(Slot::Failed);
                        self.fail();
                    }
                    (Phase::Promoting, Some(Slot::Finishing)) => {
                        self.phase = Some(Phase::RollingBack);
                        self.send_finish();
                    }
                    (Phase::Stopping | Phase::RollingBack, Some(Slot::Finishing)) => {
                        self.slots[0] = Some(Slot::Finished);
                        self.maybe_finish();
                    }
                    (p, Some(Slot::Finishing)) if p.is_terminal() => {
                        self.slots[0] = Some(Slot::Finished)
                    }
                    _ => {}
                }
            }
            Op::LoseFirst => self.notice_loss(),
            Op::Elapse(verdict) => {
                self.notice_loss();
                if self.phase == Some(Phase::Running) {
                    self.verdict = Some(*verdict);
                    self.phase = Some(Phase::Completed);
                    if *verdict == VerdictOutcome::Fail && self.auto_rollback {
                        self.enter(Phase::RollingBack, Phase::RolledBack, true);
                    } else if *verdict == VerdictOutcome::Pass && self.auto_promote {
                        self.enter(Phase::Promoting, Phase::Promoted, true);
                    }
                }
            }
            Op::Stop => match phase {
                Phase::Created => self.phase = Some(Phase::Stopped),
                Phase::Deploying | Phase::Running | Phase::Analyzing => {
                    self.enter(Phase::Stopping, Phase::Stopped, true);
                }
                _ => self.refused = true,
            },
            Op::Rollback(mode) => match phase {
                Phase::Running | Phase::Analyzing | Phase::Completed | Phase::Promoted => {
                    self.enter(
                        Phase::RollingBack,
                        Phase::RolledBack,
                        *mode == RemovalMode::Graceful,
                    );
                }
                _ => self.refused = true,
            },
            Op::Promote(force) => {
                if phase == Phase::Completed
                    && (*force || self.verdict == Some(VerdictOutcome::Pass))
                {
                    self.enter(Phase::Promoting, Phase::Promoted, true);
                } else {
                    self.refused = true;
                }
            }
            Op::Delete => {
                if phase == Phase::Created || phase.is_terminal() {
                    self.phase = None;
                } else {
                    self.refused = true;
                }
            }
        }
    }
}

/// The reference state machine.
#[derive(Debug)]
pub struct LifecycleModel;

impl ReferenceStateMachine for LifecycleModel {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Self::State> {
        (1u32..=2, any::<bool>(), any::<bool>())
            .prop_map(|(min_agents, auto_rollback, auto_promote)| Model {
                phase: Some(Phase::Created),
                min_agents,
                auto_rollback,
                auto_promote,
                first_alive: true,
                slots: [None, None],
                verdict: None,
                refused: false,
            })
            .boxed()
    }

    fn transitions(_state: &Self::State) -> BoxedStrategy<Self::Transition> {
        let verdict = prop_oneof![
            Just(VerdictOutcome::Pass),
            Just(VerdictOutcome::Marginal),
            Just(VerdictOutcome::Fail),
            Just(VerdictOutcome::Inconclusive),
        ];
        prop_oneof![
            3 => Just(Op::Start),
            4 => Just(Op::AckAll),
            1 => Just(Op::FailFirst),
            1 => Just(Op::LoseFirst),
            3 => verdict.prop_map(Op::Elapse),
            1 => Just(Op::Stop),
            1 => Just(Op::Rollback(RemovalMode::Graceful)),
            1 => Just(Op::Rollback(RemovalMode::Instant)),
            1 => any::<bool>().prop_map(Op::Promote),
            1 => Just(Op::Delete),
        ]
        .boxed()
    }

    fn apply(mut state: Self::State, transition: &Self::Transition) -> Self::State {
        state.step(transition);
        state
    }
}

/// A judge that answers what the test tells it to.
#[derive(Debug, Default)]
struct ScriptedAnalyzer {
    next: Mutex<Option<VerdictOutcome>>,
}

impl Analyzer for ScriptedAnalyzer {
    fn analyze(
        &self,
        experiment: &Experiment,
        samples: &[MeasurementSample],
        now: DateTime<Utc>,
    ) -> Verdict {
        let outcome = self
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(VerdictOutcome::Inconclusive);
        Verdict {
            outcome,
            reasons: vec!["scripted".to_owned()],
            criteria: Vec::new(),
            samples: samples.len() as u64,
            decided_at: now,
            // Every target agrees, so `auto_promote_min_hosts = 1` (set by the model's
            // experiments) is always met and the model's promotion rule stays `auto_promote`.
            hosts: experiment
                .targets
                .iter()
                .map(|t| HostVerdict {
                    agent_id: t.agent_id,
                    host: t.host.clone(),
                    samples: 1,
                    voting: true,
                    passed_critical: true,
                })
                .collect(),
        }
    }
}

/// The system under test.
pub struct Sut {
    backend: Box<dyn TestBackend>,
    phoenix: Phoenix,
    controller: Controller,
    analyzer: Arc<ScriptedAnalyzer>,
    agents: [AgentId; 2],
    alive: [bool; 2],
    experiment: ExperimentId,
}

impl std::fmt::Debug for Sut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sut")
            .field("experiment", &self.experiment)
            .finish_non_exhaustive()
    }
}

impl Sut {
    async fn current(&self) -> Result<Experiment, PhoenixError> {
        self.phoenix.experiment(self.experiment).await
    }

    async fn tick(&self, advance: Duration) {
        self.backend.advance(advance);
        for (i, agent) in self.agents.iter().enumerate() {
            if self.alive[i] {
                self.phoenix
                    .heartbeat(*agent, Heartbeat::default())
                    .await
                    .expect("heartbeat");
            }
        }
        self.controller.tick().await.expect("controller tick");
    }

    /// Answers the agent's tasks. Successes loop until nothing is left (an ack never
    /// creates work); a failure answers one claim only, since failing can enqueue new tasks
    /// (a failed promotion restores the baseline) that the op does not cover.
    async fn settle(&self, agent: AgentId, succeed: bool) {
        let queue = &self.phoenix.stores().queue;
        loop {
            let claimed = queue
                .claim(agent, 16, self.phoenix.config().lease)
                .await
                .expect("claim");
            if claimed.is_empty() {
                return;
            }
            for leased in claimed {
                let lease = LeaseRef {
                    task_id: leased.task.id,
                    token: leased.lease_token,
                };
                let report = if succeed {
                    TaskReport::Succeeded { result: None }
                } else {
                    TaskReport::Failed {
                        error: "scripted failure".to_owned(),
                        retryable: false,
                    }
                };
                self.phoenix
                    .report_task(agent, lease, report)
                    .await
                    .expect("report");
            }
            if !succeed {
                return;
            }
        }
    }

    async fn run(&mut self, op: &Op) -> Result<(), PhoenixError> {
        let actor = operator();
        let id = self.experiment;
        match op {
            Op::Start => self.phoenix.start(id, &actor).await.map(drop),
            Op::AckAll => {
                for i in 0..2 {
                    if self.alive[i] {
                        self.settle(self.agents[i], true).await;
                    }
                }
                Ok(())
            }
            Op::FailFirst => {
                if self.alive[0] {
                    self.settle(self.agents[0], false).await;
                }
                Ok(())
            }
            Op::LoseFirst => {
                self.alive[0] = false;
                self.tick(Duration::seconds(31)).await;
                Ok(())
            }
            Op::Elapse(v) => {
                *self
                    .analyzer
                    .next
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(*v);
                self.tick(Duration::days(2)).await;
                Ok(())
            }
            Op::Stop => self.phoenix.stop(id, &actor, None).await.map(drop),
            Op::Rollback(mode) => self
                .phoenix
                .rollback(id, *mode, &actor, Some("model".to_owned()))
                .await
                .map(drop),
            Op::Promote(force) => self
                .phoenix
                .promote(id, &actor, *force, None)
                .await
                .map(drop),
            Op::Delete => self.phoenix.delete_experiment(id, &actor).await,
        }
    }
}

/// The model test over backend `B`.
#[derive(Debug)]
pub struct LifecycleTest<B>(PhantomData<B>);

impl<B: ModelBackend> StateMachineTest for LifecycleTest<B> {
    type SystemUnderTest = Option<Sut>;
    type Reference = LifecycleModel;

    fn init_test(model: &Model) -> Self::SystemUnderTest {
        let backend = B::create()?;
        runtime().block_on(async {
            let analyzer = Arc::new(ScriptedAnalyzer::default());
            let phoenix = Phoenix::builder(backend.stores(), backend.clock())
                .config(config())
                .analyzer(analyzer.clone())
                .build();
            let case = ExperimentId::new().to_string();
            let mut agents = [AgentId::new(); 2];
            for (i, slot) in agents.iter_mut().enumerate() {
                let registration = AgentRegistration {
                    host: format!("model-{i}-{case}"),
                    labels: BTreeMap::from([("case".to_owned(), case.clone())]),
                    version: "test".to_owned(),
                    capabilities: Vec::new(),
                    os: "linux".to_owned(),
                };
                *slot = phoenix.enroll(registration).await.expect("enroll").0.id;
            }
            let mut spec = ExperimentSpec::new(
                PipelineRef::new("baseline"),
                PipelineRef::new("topk"),
                86_400,
            );
            spec.targets.labels.insert("case".to_owned(), case);
            spec.min_agents = model.min_agents;
            spec.auto_rollback = model.auto_rollback;
            spec.auto_promote = model.auto_promote;
            spec.auto_promote_min_hosts = 1;
            let request = NewExperiment {
                name: "model".to_owned(),
                description: String::new(),
                spec,
            };
            let experiment = phoenix
                .create_experiment(request, &operator())
                .await
                .expect("create")
                .id;
            Some(Sut {
                controller: Controller::new(phoenix.clone()),
                backend,
                phoenix,
                analyzer,
                agents,
                alive: [true, true],
                experiment,
            })
        })
    }

    fn apply(state: Self::SystemUnderTest, model: &Model, op: Op) -> Self::SystemUnderTest {
        let mut sut = state?;
        runtime().block_on(async {
            let before = sut.current().await.ok();
            let result = sut.run(&op).await;
            let after = sut.current().await;
            let is_command = op.is_command();
            if model.refused {
                assert!(result.is_err(), "{op:?} should be refused, got {result:?}");
                assert!(
                    matches!(
                        result,
                        Err(PhoenixError::Transition(_)
                            | PhoenixError::Store(StoreError::NotFound { .. }))
                    ),
                    "{op:?}: refusal must be typed, got {result:?}"
                );
                assert_eq!(
                    after.as_ref().ok(),
                    before.as_ref(),
                    "a refused {op:?} changed the experiment"
                );
            } else {
                result.unwrap_or_else(|e| panic!("{op:?} failed: {e:?}"));
                if is_command && op != Op::Delete {
                    let (b, a) = (before.as_ref().unwrap(), after.as_ref().unwrap());
                    assert_eq!(
                        a.version,
                        b.version + 1,
                        "{op:?} must bump the version by one"
                    );
                }
            }
            if let (Some(b), Ok(a)) = (&before, &after)
                && b.phase.is_terminal()
            {
                assert_eq!(a.phase, b.phase, "terminal phases absorb");
            }
            match (model.phase, &after) {
                (None, Err(PhoenixError::Store(StoreError::NotFound { .. }))) => {}
                (Some(phase), Ok(experiment)) => {
                    assert_eq!(experiment.phase, phase, "after {op:?}");
                    for (i, agent) in sut.agents.iter().enumerate() {
                        let got = experiment.target(*agent).map(|t| t.state);
                        let want = model.slots[i].map(|s| match s {
                            Slot::Deploying => TargetState::Deploying,
                            Slot::Deployed => TargetState::Deployed,
                            Slot::Failed => TargetState::Failed,
                            Slot::Finishing => TargetState::Finishing,
                            Slot::Finished => TargetState::Finished,
                            Slot::Lost => TargetState::Lost,
                        });
                        assert_eq!(got, want, "agent {i} after {op:?}");
                    }
                    let events = sut
                        .phoenix
                        .experiment_events(sut.experiment, 0, 10_000)
                        .await
                        .expect("events");
                    assert_eq!(
                        events.len() as u64,
                        experiment.last_event_seq,
                        "no lost event"
                    );
                    let mut phase = Phase::Created;
                    for (i, event) in events.iter().enumerate() {
                        assert_eq!(event.seq, i as u64 + 1, "contiguous");
                        assert_eq!(event.from, phase, "event {} continues the log", event.seq);
                        phase = event.to;
                    }
                    assert_eq!(phase, experiment.phase, "the log replays to the phase");
                }
                (expected, got) => panic!("after {op:?}: model {expected:?}, system {got:?}"),
            }
        });
        Some(sut)
    }
}

/// Number of cases: `PHOENIX_MODEL_CASES`, or `default`.
#[must_use]
pub fn cases(default: u32) -> u32 {
    std::env::var("PHOENIX_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
