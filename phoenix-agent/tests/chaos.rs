//! Chaos, automated: a server process and three real agent processes run an experiment on
//! a private PostgreSQL or Redis instance while the test breaks things under them:
//!
//! 1. `kill -9` the server mid-experiment, restart it on the same address;
//! 2. `kill -9` agents, one after the other, and restart them on their state directories;
//! 3. terminate every store connection (`pg_terminate_backend`, `CLIENT KILL`);
//! 4. restart the database itself, abruptly (`pg_ctl -m immediate`, `kill -9` of Redis
//!    with its append-only file fsynced on every write);
//!
//! and, through all of it, a saboteur agent holds a task lease across the server's death
//! and tries to complete it after the lease went to someone else.
//!
//! For each store it asserts, and prints as a table (`scripts/reliability` writes it into
//! `docs/reliability.md`): tasks lost (a task not finished once the experiment is over:
//! 0), stale completions accepted (0), measurements stored twice (0), tasks delivered more
//! than once and why, the time each disruption took to recover from, and that the
//! experiment still reached its verdict. `PHOENIX_CHAOS_ROUNDS` (default 1) repeats the
//! disruptions for a longer run.
//!
//! The server runs as this test binary re-executed (`chaos_server_process`), so that it can
//! be killed like any process. The private databases are started from the PostgreSQL and
//! Redis binaries `scripts/services` installs; without them the tests skip loudly, and with
//! `PHOENIX_REQUIRE_BACKENDS=1` they fail.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use phoenix_api::deployment::NewDeployment;
use phoenix_api::experiment::{Phase, TargetSelector};
use phoenix_api::task::TaskState;
use phoenix_client::{Client, ClientError, TaskQuery};
use phoenix_core::experiment::ExperimentSpec;
use phoenix_core::ids::ExperimentId;
use phoenix_core::judge::{Criterion, KpiName};
use phoenix_core::pipeline::{ParamValue, PipelineRef};
use tokio::process::{Child, Command};

const ADMIN: &str = "phx_user_chaos-admin-0123456789abcdef";
const ENROLL: &str = "chaos-enrollment-0123456789abcdef";
const LEASE_SECS: i64 = 4;

// ---------------------------------------------------------------------------------------
// The server process.

/// The server, when this binary is re-executed as one (`PHOENIX_CHAOS_SERVER` holds
/// `listen|store url|namespace`); otherwise nothing runs (ignored by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the server process of the chaos tests; they start it themselves"]
async fn chaos_server_process() {
    let Ok(spec) = std::env::var("PHOENIX_CHAOS_SERVER") else {
        return;
    };
    let mut parts = spec.splitn(3, '|');
    let (listen, store, namespace) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
    );
    let url: phoenix_server::store::StoreUrl = store.parse().unwrap();
    let opened = phoenix_server::store::open_with(
        &url,
        &phoenix_server::store::OpenOptions {
            namespace: Some(namespace),
            ..Default::default()
        },
    )
    .await
    .expect("store opens");
    let phoenix = phoenix_core::Phoenix::builder(opened.stores, opened.clock)
        .config(phoenix_core::PhoenixConfig {
            lease: chrono::Duration::seconds(LEASE_SECS),
            heartbeat_interval: chrono::Duration::seconds(2),
            safety_poll: chrono::Duration::milliseconds(200),
            ..phoenix_core::PhoenixConfig::default()
        })
        .build();
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    phoenix_server::serve_with(
        listener,
        phoenix,
        phoenix_server::config::ServerConfig {
            admin_token: Some(ADMIN.to_owned()),
            enrollment_token: Some(ENROLL.to_owned()),
            controller_interval_ms: 100,
            agent_rate_per_sec: 1000.0,
            agent_rate_burst: 1000,
            ..Default::default()
        },
        phoenix_server::ServeOptions::default(),
        std::future::pending::<()>(),
    )
    .await
    .unwrap();
}

struct ServerProcess {
    child: Option<Child>,
    listen: String,
    store: String,
    namespace: String,
}

impl ServerProcess {
    async fn start(listen: &str, store: &str, namespace: &str) -> Self {
        let mut server = Self {
            child: None,
            listen: listen.to_owned(),
            store: store.to_owned(),
            namespace: namespace.to_owned(),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "chaos_server_process",
                "--nocapture",
            ])
            .env(
                "PHOENIX_CHAOS_SERVER",
                format!("{}|{}|{}", self.listen, self.store, self.namespace),
            )
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_ready(&format!("http://{}", self.listen), Duration::from_secs(60)).await;
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }
}

async fn wait_ready(base: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let http = reqwest::Client::new();
    loop {
        if let Ok(resp) = http
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            && resp.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} not ready in {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Agents.

struct AgentProcess {
    child: Option<Child>,
    state_dir: PathBuf,
    name: String,
}

impl AgentProcess {
    fn spawn(&mut self, server: &str, label: &str) {
        let child = Command::new(env!("CARGO_BIN_EXE_phoenix-agent"))
            .args(["--server", server, "--enrollment-token", ENROLL])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--listen", "127.0.0.1:0", "--host-name", &self.name])
            .args(["--label", &format!("chaos={label}")])
            .args(["--heartbeat-interval-secs", "1", "--poll-wait-secs", "2"])
            .args(["--backoff-initial-ms", "100", "--backoff-max-ms", "1000"])
            .args(["--shutdown-grace-secs", "2"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("agent binary starts");
        self.child = Some(child);
    }

    async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    async fn agent_id(&self) -> uuid::Uuid {
        let file = self.state_dir.join("credential.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                return v["agent_id"].as_str().unwrap().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "agent did not enroll");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Private databases.

/// A database this test owns and may break.
enum Database {
    Postgres {
        bin: PathBuf,
        dir: tempfile::TempDir,
        port: u16,
    },
    Redis {
        dir: tempfile::TempDir,
        port: u16,
        child: Option<Child>,
    },
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs a PostgreSQL tool as the `postgres` system user when this process is root (the
/// server refuses to run as root), as this user otherwise.
fn pg_command(bin: &Path, tool: &str) -> std::process::Command {
    let path = bin.join(tool);
    if is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        std::process::Command::new(path)
    }
}

fn skip_or_fail(what: &str) -> Option<Database> {
    assert!(
        std::env::var("PHOENIX_REQUIRE_BACKENDS").as_deref() != Ok("1"),
        "{what} and PHOENIX_REQUIRE_BACKENDS=1"
    );
    eprintln!("\n!!! SKIPPED: {what}; the chaos test did not run on it !!!\n");
    None
}

impl Database {
    fn postgres() -> Option<Self> {
        let Some(bin) = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .max_by_key(|p| {
                    p.parent()
                        .and_then(|v| v.file_name())
                        .and_then(|v| v.to_str())
                        .and_then(|v| v.parse::<u32>().ok())
                })
        }) else {
            return skip_or_fail("no PostgreSQL binaries under /usr/lib/postgresql");
        };
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let data = dir.path().join("data");
        let out = pg_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        let db = Self::Postgres {
            bin,
            dir,
            port: free_port(),
        };
        db.start_postgres();
        Some(db)
    }

    fn start_postgres(&self) {
        let Self::Postgres { bin, dir, port } = self else {
            unreachable!()
        };
        let data = dir.path().join("data");
        let out = pg_command(bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
                dir.path().display()
            ))
            .args(["-w", "start"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl start: {out:?}");
    }

    async fn redis() -> Option<Self> {
        if std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            return skip_or_fail("no redis-server binary");
        }
        let mut db = Self::Redis {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
        };
        db.start_redis().await;
        Some(db)
    }

    async fn start_redis(&mut self) {
        let Self::Redis { dir, port, child } = self else {
            unreachable!()
        };
        *child = Some(
            Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.cli(&["ping"]).as_deref() != Some("PONG") {
            assert!(Instant::now() < deadline, "redis did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let Self::Redis { port, .. } = self else {
            unreachable!()
        };
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn url(&self) -> String {
        match self {
            Self::Postgres { port, .. } => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            Self::Redis { port, .. } => format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Closes every client connection the database has.
    fn terminate_connections(&self) {
        match self {
            Self::Postgres { bin, dir, port } => {
                let out = pg_command(bin, "psql")
                    .args(["-h"])
                    .arg(dir.path())
                    .args(["-p", &port.to_string(), "-U", "postgres", "-Atqc"])
                    .arg(
                        "select count(pg_terminate_backend(pid)) from pg_stat_activity \
                         where pid <> pg_backend_pid() and backend_type = 'client backend'",
                    )
                    .output()
                    .unwrap();
                assert!(out.status.success(), "psql: {out:?}");
            }
            Self::Redis { .. } => {
                self.cli(&["client", "kill", "type", "normal"]);
                self.cli(&["client", "kill", "type", "pubsub"]);
            }
        }
    }

    /// Stops the database the hard way and starts it again.
    async fn restart(&mut self) {
        match self {
            Self::Postgres { bin, dir, .. } => {
                let out = pg_command(bin, "pg_ctl")
                    .arg("-D")
                    .arg(dir.path().join("data"))
                    .args(["-m", "immediate", "-w", "stop"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "pg_ctl stop: {out:?}");
                self.start_postgres();
            }
            Self::Redis { child, .. } => {
                if let Some(mut c) = child.take() {
                    c.start_kill().unwrap();
                    c.wait().await.unwrap();
                }
                self.start_redis().await;
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Self::Postgres { bin, dir, .. } = self {
            let _ = pg_command(bin, "pg_ctl")
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The run.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_postgres() {
    if let Some(db) = Database::postgres() {
        run("postgres", db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_redis() {
    if let Some(db) = Database::redis().await {
        run("redis", db).await;
    }
}

/// Retries a request through the store's outage; the time until it succeeds.
async fn until_ok<T, F, Fut>(within: Duration, mut call: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Ok(v) => return (v, started.elapsed()),
            Err(e) => assert!(
                started.elapsed() < within,
                "not recovered in {within:?}: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every agent has heartbeated after `since`; the time it took.
async fn agents_back(
    admin: &Client,
    ids: &[uuid::Uuid],
    since: chrono::DateTime<chrono::Utc>,
) -> Duration {
    let started = Instant::now();
    for id in ids {
        loop {
            if let Ok(agent) = admin.get_agent(*id).await
                && agent.last_heartbeat > since
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "agent {id} did not come back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

struct Recovery {
    disruption: String,
    recovered_in: Duration,
    what: &'static str,
}

async fn run(backend: &'static str, mut db: Database) {
    let rounds: usize = std::env::var("PHOENIX_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut server = ServerProcess::start(&listen, &db.url(), "chaos").await;
    let admin = Client::new(&base).unwrap().with_token(ADMIN);
    let dirs = tempfile::tempdir().unwrap();
    let label = uuid::Uuid::new_v4().simple().to_string();

    let mut agents: Vec<AgentProcess> = (0..3)
        .map(|i| AgentProcess {
            child: None,
            state_dir: dirs.path().join(format!("agent-{i}")),
            name: format!("chaos-{backend}-{i}"),
        })
        .collect();
    for a in &mut agents {
        a.spawn(&base, &label);
    }
    let mut ids = Vec::new();
    for a in &agents {
        ids.push(a.agent_id().await);
    }

    // The saboteur: an agent of its own (through the API), given a task by a quick
    // deployment, that will hold a lease across the server's death.
    let saboteur = Client::new(&base)
        .unwrap()
        .enroll(
            ENROLL,
            &phoenix_api::agent::AgentRegistration {
                host: format!("chaos-saboteur-{backend}"),
                version: "chaos".to_owned(),
                os: "linux".to_owned(),
                labels: BTreeMap::from([("saboteur".to_owned(), label.clone())]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let saboteur_id = saboteur.agent.id;
    let saboteur = Client::new(&base).unwrap().with_token(&saboteur.credential);
    saboteur.heartbeat(&Default::default()).await.unwrap();

    // The experiment.
    let duration = 40 + 20 * rounds as u64;
    let mut spec = ExperimentSpec::new(
        PipelineRef::new("baseline"),
        PipelineRef::new("topk").with_param("k", ParamValue::Int(10)),
        duration,
    );
    spec.targets = phoenix_core::experiment::TargetSelector {
        labels: BTreeMap::from([("chaos".to_owned(), label.clone())]),
        hosts: Vec::new(),
    };
    spec.sample_interval_secs = 2;
    spec.criteria = vec![Criterion::at_least(
        KpiName::CardinalityReductionPct,
        10.0,
        true,
    )];
    let experiment = admin
        .create_experiment(&phoenix_api::experiment::NewExperiment {
            name: format!("chaos on {backend}"),
            description: String::new(),
            spec: spec.into(),
        })
        .await
        .unwrap();
    let started_at = Instant::now();
    admin.start_experiment(experiment.id).await.unwrap();

    // The saboteur's task.
    admin
        .create_deployment(&NewDeployment {
            name: format!("saboteur {backend}"),
            pipeline: Some(PipelineRef::new("baseline").into()),
            rollback_to: None,
            selector: TargetSelector {
                labels: BTreeMap::from([("saboteur".to_owned(), label.clone())]),
                hosts: Vec::new(),
            },
            experiment_id: None,
            strategy: Default::default(),
        })
        .await
        .unwrap();
    let (first_lease, _) = until_ok(Duration::from_secs(30), || async {
        let mut tasks = saboteur
            .poll_tasks(Some(Duration::from_secs(2)), Some(1))
            .await?;
        tasks.pop().ok_or(ClientError::NotReady("not yet".into()))
    })
    .await;

    // Wait until the experiment runs on every agent.
    until_ok(Duration::from_secs(90), || async {
        let e = admin.get_experiment(experiment.id).await?;
        if e.phase == Phase::Running {
            Ok(())
        } else {
            Err(ClientError::NotReady("not yet".into()))
        }
    })
    .await;

    let mut recoveries = Vec::new();
    for round in 0..rounds {
        // 1. The server dies mid-experiment.
        let since = admin.get_agent(ids[0]).await.unwrap().last_heartbeat;
        let t = Instant::now();
        server.kill9().await;
        server.spawn().await;
        let ready = t.elapsed();
        let back = agents_back(&admin, &ids, since).await;
        recoveries.push(Recovery {
            disruption: format!("round {}: server kill -9, restarted", round + 1),
            recovered_in: ready + back,
            what: "until every agent heartbeats again",
        });

        // 2. Agents die, one after the other, and come back on their state directories.
        for i in [0, 1] {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let since = chrono::Utc::now();
            let t = Instant::now();
            agents[i].kill9().await;
            agents[i].spawn(&base, &label);
            agents_back(&admin, &ids[i..=i], since).await;
            recoveries.push(Recovery {
                disruption: format!("round {}: agent {i} kill -9, restarted", round + 1),
                recovered_in: t.elapsed(),
                what: "until it heartbeats again",
            });
        }

        // 3. Every store connection is cut.
        tokio::time::sleep(Duration::from_secs(1)).await;
        db.terminate_connections();
        let (_, took) = until_ok(Duration::from_secs(60), || async {
            admin.list_experiments(&Default::default()).await
        })
        .await;
        recoveries.push(Recovery {
            disruption: format!("round {}: store connections terminated", round + 1),
            recovered_in: took,
            what: "until the API answers from the store",
        });

        // 4. The database restarts abruptly.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = Instant::now();
        db.restart().await;
        let since = chrono::Utc::now();
        until_ok(Duration::from_secs(60), || async {
            admin.list_experiments(&Default::default()).await
        })
        .await;
        agents_back(&admin, &ids, since).await;
        recoveries.push(Recovery {
            disruption: format!("round {}: database restarted (immediate)", round + 1),
            recovered_in: t.elapsed(),
            what: "until the API answers and every agent heartbeats",
        });
    }

    // The saboteur's lease expired long ago (the server and the database died under it):
    // its task is delivered again, and the old lease's completion must be refused.
    let (second_lease, _) = until_ok(Duration::from_secs(30), || async {
        let mut tasks = saboteur
            .poll_tasks(Some(Duration::from_secs(2)), Some(1))
            .await?;
        tasks.pop().ok_or(ClientError::NotReady("not yet".into()))
    })
    .await;
    assert_eq!(second_lease.task.id, first_lease.task.id);
    let mut stale_attempted = 0;
    let mut stale_accepted = 0;
    for _ in 0..3 {
        stale_attempted += 1;
        if saboteur.complete_task(&first_lease, None).await.is_ok() {
            stale_accepted += 1;
        }
    }
    saboteur
        .complete_task(&second_lease, None)
        .await
        .expect("the current lease completes");

    // The experiment still reaches its verdict.
    let (done, _) = until_ok(Duration::from_secs(duration + 120), || async {
        let e = admin.get_experiment(experiment.id).await?;
        if e.terminal || matches!(e.phase, Phase::Completed) {
            Ok(e)
        } else {
            Err(ClientError::NotReady("not yet".into()))
        }
    })
    .await;
    let verdict_after = started_at.elapsed();

    // Every task of the experiment and the deployment finished; none lost.
    let mut tasks = Vec::new();
    for query in [
        TaskQuery {
            experiment_id: Some(experiment.id),
            limit: Some(500),
            ..Default::default()
        },
        TaskQuery {
            agent_id: Some(saboteur_id),
            limit: Some(500),
            ..Default::default()
        },
    ] {
        tasks.extend(admin.list_tasks(&query).await.unwrap().items);
    }
    let lost: Vec<_> = tasks
        .iter()
        .filter(|t| matches!(t.state, TaskState::Pending | TaskState::Leased))
        .collect();
    let redelivered = tasks.iter().filter(|t| t.attempts > 1).count();

    // No measurement stored twice.
    let opened = phoenix_server::store::open_with(
        &db.url().parse().unwrap(),
        &phoenix_server::store::OpenOptions {
            namespace: Some("chaos".to_owned()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let samples = opened
        .stores
        .metrics
        .samples(ExperimentId(experiment.id), 100_000)
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let duplicates = samples
        .iter()
        .filter(|s| !seen.insert((s.agent_id, s.seq)))
        .count();

    let mut report = format!(
        "\n#### {backend} ({rounds} round{})\n\n| disruption | recovered in | measured |\n|---|---|---|\n",
        if rounds == 1 { "" } else { "s" }
    );
    for r in &recoveries {
        let _ = writeln!(
            report,
            "| {} | {:.1} s | {} |",
            r.disruption,
            r.recovered_in.as_secs_f64(),
            r.what
        );
    }
    let _ = write!(
        report,
        "\n| outcome | value |\n|---|---|\n\
         | experiment | {:?}{} after {:.0} s |\n\
         | tasks | {} (experiment and saboteur) |\n\
         | tasks lost | {} |\n\
         | stale completions accepted | {stale_accepted} of {stale_attempted} attempted |\n\
         | tasks delivered more than once | {redelivered} (leases released by restarted agents or expired while the server or database was down) |\n\
         | measurements stored | {} |\n\
         | measurements stored twice | {duplicates} |\n",
        done.phase,
        done.verdict
            .as_ref()
            .map(|v| format!(", verdict {:?}", v.outcome))
            .unwrap_or_default(),
        verdict_after.as_secs_f64(),
        tasks.len(),
        lost.len(),
        samples.len(),
    );
    println!("{report}");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{backend}.md"));
    std::fs::write(&out, &report).unwrap();

    assert!(lost.is_empty(), "tasks lost: {lost:#?}");
    assert_eq!(stale_accepted, 0, "a stale completion was accepted");
    assert_eq!(duplicates, 0, "a measurement was stored twice");
    assert!(
        done.verdict.is_some(),
        "the experiment reached a verdict: {done:#?}"
    );
    assert!(
        samples.len() >= 3,
        "measurements were taken: {}",
        samples.len()
    );

    for a in &mut agents {
        a.kill9().await;
    }
    server.kill9().await;
}
