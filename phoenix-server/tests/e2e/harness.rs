//! Starts a server and hands out clients.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use phoenix_client::Client;
use phoenix_client::api::agent::{AgentRegistration, Heartbeat};
use phoenix_client::api::experiment::{Experiment, ExperimentSpec, NewExperiment, Phase};
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::task::LeasedTask;
use phoenix_client::api::token::{NewToken, Role};
use phoenix_client::api::ws::{ServerMessage, Topic};
use phoenix_core::clock::ManualClock;
use phoenix_core::{Controller, MemoryStore, Phoenix, PhoenixConfig};
use phoenix_server::{AppState, ServeOptions, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub(crate) const ADMIN: &str = "phx_user_test-admin-secret-0123456789";
pub(crate) const ENROLL: &str = "enroll-secret-0123456789";

/// How long a test waits for something that should happen at once.
pub(crate) const PROMPT: Duration = Duration::from_secs(10);

/// Which store a test server runs on.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// `MemoryStore` on a manual clock.
    Memory,
    /// Redis at this URL, under a key prefix unique to the test.
    Redis { url: String, prefix: String },
    /// PostgreSQL at this URL, in a schema unique to the test.
    Postgres { url: String, schema: String },
}

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("PHOENIX_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "{var} is required (PHOENIX_REQUIRE_BACKENDS=1)"
            );
            eprintln!("SKIPPED: {var} is not set; end-to-end test on that backend not run");
            None
        }
    }
}

impl Backend {
    /// PostgreSQL from `PHOENIX_TEST_POSTGRES_URL`, in a fresh schema.
    pub(crate) fn postgres() -> Option<Self> {
        required("PHOENIX_TEST_POSTGRES_URL").map(|url| Self::Postgres {
            url,
            schema: format!(
                "phx_e2e_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            ),
        })
    }

    /// Redis from `PHOENIX_TEST_REDIS_URL`; `None` (with a loud notice) when unset, a
    /// failure when `PHOENIX_REQUIRE_BACKENDS=1`.
    pub(crate) fn redis() -> Option<Self> {
        match std::env::var("PHOENIX_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Some(Self::Redis {
                url,
                prefix: format!("e2e-{}", uuid::Uuid::new_v4().simple()),
            }),
            _ => {
                assert!(
                    std::env::var("PHOENIX_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                    "PHOENIX_TEST_REDIS_URL is required (PHOENIX_REQUIRE_BACKENDS=1)"
                );
                eprintln!(
                    "SKIPPED: PHOENIX_TEST_REDIS_URL is not set; Redis end-to-end test not run"
                );
                None
            }
        }
    }
}

/// Moves the deployment's single time source.
enum Time {
    Manual(Arc<ManualClock>),
    Shift(phoenix_core::clock::TimeShift),
}

pub(crate) struct TestServer {
    pub(crate) base: String,
    time: Time,
    redis: Option<phoenix_store_redis::RedisStore>,
    postgres: Option<phoenix_store_postgres::PgStore>,
    pub(crate) phoenix: Phoenix,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), phoenix_server::ServeError>>>,
}

impl TestServer {
    /// A server on a manual clock, without its controller loop (tests tick it).
    pub(crate) async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    pub(crate) async fn start_with(config: ServerConfig) -> Self {
        Self::start_on(Backend::Memory, config).await
    }

    /// A server on `backend` (memory: manual clock; Redis: shifted Redis TIME).
    pub(crate) async fn start_on(backend: Backend, config: ServerConfig) -> Self {
        let mut postgres = None;
        let (phoenix, time, redis) = match backend {
            Backend::Memory => {
                let start: DateTime<Utc> = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
                let clock = Arc::new(ManualClock::new(start));
                let store = MemoryStore::with_clock(clock.clone());
                let phoenix = Phoenix::new(store.stores(), clock.clone(), PhoenixConfig::default());
                (phoenix, Time::Manual(clock), None)
            }
            Backend::Redis { url, prefix } => {
                let shift = phoenix_core::clock::TimeShift::new();
                let store = phoenix_store_redis::RedisStore::connect(
                    phoenix_store_redis::RedisConfig::new(url)
                        .with_prefix(prefix)
                        .with_time_shift(shift.clone()),
                )
                .await
                .unwrap();
                let clock = Arc::new(phoenix_core::clock::ShiftedClock::new(shift.clone()));
                let phoenix = Phoenix::new(store.stores(), clock, PhoenixConfig::default());
                (phoenix, Time::Shift(shift), Some(store))
            }
            Backend::Postgres { url, schema } => {
                let shift = phoenix_core::clock::TimeShift::new();
                let store = phoenix_store_postgres::PgStore::connect_with(
                    &url,
                    phoenix_store_postgres::PgStoreOptions {
                        schema,
                        max_connections: 8,
                        synchronous_commit: false,
                        time_shift: shift.clone(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                let phoenix = Phoenix::new(
                    store.stores(),
                    Arc::new(store.clock()),
                    PhoenixConfig::default(),
                );
                postgres = Some(store);
                (phoenix, Time::Shift(shift), None)
            }
        };
        let config = ServerConfig {
            admin_token: Some(ADMIN.to_owned()),
            enrollment_token: Some(ENROLL.to_owned()),
            controller: false,
            ..config
        };
        let state = AppState::new(phoenix.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(phoenix_server::serve_state(
            listener,
            state.clone(),
            ServeOptions::default(),
            async move {
                let _ = rx.await;
            },
        ));
        let server = Self {
            base,
            time,
            redis,
            postgres,
            phoenix,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        // Ready once the bootstrap token authenticates.
        let admin = server.admin();
        for _ in 0..200 {
            if admin.whoami().await.is_ok() {
                return server;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("server did not start");
    }

    /// Moves time forward for the store and the facade alike.
    pub(crate) fn advance(&self, by: chrono::Duration) {
        match &self.time {
            Time::Manual(clock) => clock.advance(by),
            Time::Shift(shift) => shift.advance(by),
        }
    }

    pub(crate) fn client(&self, token: &str) -> Client {
        Client::new(&self.base).unwrap().with_token(token)
    }

    pub(crate) fn anonymous(&self) -> Client {
        Client::new(&self.base).unwrap()
    }

    pub(crate) fn admin(&self) -> Client {
        self.client(ADMIN)
    }

    pub(crate) async fn user(&self, role: Role) -> Client {
        let created = self
            .admin()
            .create_token(&NewToken {
                name: format!("{role:?}").to_lowercase(),
                role,
            })
            .await
            .unwrap();
        self.client(&created.secret)
    }

    /// One controller pass (the loop is off in tests).
    pub(crate) async fn tick(&self) {
        Controller::new(self.phoenix.clone()).tick().await.unwrap();
    }

    pub(crate) async fn agent(&self, host: &str) -> TestAgent {
        let enrolled = self
            .anonymous()
            .enroll(
                ENROLL,
                &AgentRegistration {
                    host: host.to_owned(),
                    version: "test".to_owned(),
                    os: "linux".to_owned(),
                    ..AgentRegistration::default()
                },
            )
            .await
            .unwrap();
        let client = self.client(&enrolled.credential);
        client.heartbeat(&Heartbeat::default()).await.unwrap();
        TestAgent {
            id: enrolled.agent.id,
            credential: enrolled.credential,
            client,
        }
    }

    /// Stops the server and waits until it has drained.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
        if let Some(redis) = self.redis.take() {
            redis.purge().await.unwrap();
        }
        if let Some(pg) = self.postgres.take() {
            let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", pg.schema());
            // The schema name is generated by the harness, never input.
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(pg.pool())
                .await
                .unwrap();
            pg.close().await;
        }
    }

    /// Stops the server without removing the shared backend data (another replica on the
    /// same store removes it).
    pub(crate) async fn stop_keep_data(mut self) {
        self.redis = None;
        if let Some(pg) = self.postgres.take() {
            pg.close().await;
        }
        self.stop().await;
    }

    /// Triggers shutdown without waiting.
    pub(crate) fn begin_stop(&mut self) -> JoinHandle<Result<(), phoenix_server::ServeError>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap()
    }
}

pub(crate) struct TestAgent {
    pub(crate) id: uuid::Uuid,
    pub(crate) credential: String,
    pub(crate) client: Client,
}

impl TestAgent {
    /// Long-polls once and expects exactly one task.
    pub(crate) async fn one_task(&self) -> LeasedTask {
        let mut tasks = self
            .client
            .poll_tasks(Some(Duration::from_secs(5)), None)
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1, "expected one task, got {tasks:?}");
        tasks.remove(0)
    }

    /// Takes the next task and acknowledges it.
    pub(crate) async fn ack_next(&self) -> LeasedTask {
        let task = self.one_task().await;
        self.client
            .complete_task(&task, Some(serde_json::json!({"message": "done"})))
            .await
            .unwrap();
        task
    }
}

pub(crate) fn new_experiment(name: &str) -> NewExperiment {
    NewExperiment {
        name: name.to_owned(),
        description: "e2e".to_owned(),
        spec: ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 60),
    }
}

/// Waits for the next phase change of `experiment` on `sub`.
pub(crate) async fn next_phase(sub: &mut phoenix_client::Subscription) -> (Phase, Phase) {
    loop {
        let message = tokio::time::timeout(PROMPT, sub.next_event())
            .await
            .expect("a phase change in time")
            .unwrap()
            .expect("connection open");
        if let ServerMessage::PhaseChanged { from, to, .. } = message {
            return (from, to);
        }
    }
}

pub(crate) async fn subscribe(
    client: &Client,
    experiment: &Experiment,
) -> phoenix_client::Subscription {
    client
        .subscribe(&[Topic::Experiment(experiment.id)])
        .await
        .unwrap()
}
