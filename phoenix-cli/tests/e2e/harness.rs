//! A real Phoenix server in-process (memory store, manual clock, controller ticked by the
//! test) and the compiled `phoenix` binary run against it as a user would run it.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use phoenix_client::Client;
use phoenix_client::api::agent::{AgentRegistration, Heartbeat};
use phoenix_client::api::measure::{
    CardinalitySnapshot, HostStats, MeasurementSample, MetricsReport, SnapshotSeries, VariantStats,
};
use phoenix_client::api::task::LeasedTask;
use phoenix_core::clock::ManualClock;
use phoenix_core::{Controller, MemoryStore, Phoenix, PhoenixConfig};
use phoenix_server::{AppState, ServeOptions, ServerConfig};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

pub(crate) const ADMIN: &str = "phx_user_cli-test-admin-0123456789";
pub(crate) const ENROLL: &str = "cli-test-enroll-0123456789";

/// How long a test waits for something that should happen at once.
pub(crate) const PROMPT: Duration = Duration::from_secs(20);

pub(crate) struct Server {
    pub(crate) base: String,
    runtime: tokio::runtime::Runtime,
    clock: Arc<ManualClock>,
    phoenix: Phoenix,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), phoenix_server::ServeError>>>,
}

/// What one run of the binary did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from_output(args: &[&str], output: Output) -> Self {
        let run = Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        eprintln!("$ phoenix {}\n-> exit {}", args.join(" "), run.code);
        run
    }

    /// Asserts exit code 0 and returns standard output.
    #[track_caller]
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts exit code `code` and returns standard error.
    #[track_caller]
    pub(crate) fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        &self.stderr
    }

    /// Asserts success and parses standard output as the API type `T`.
    #[track_caller]
    pub(crate) fn json<T: DeserializeOwned>(&self) -> T {
        let out = self.ok();
        serde_json::from_str(out).unwrap_or_else(|e| panic!("not the API type ({e}): {out}"))
    }
}

/// The binary, isolated from the caller's `PHOENIX_*` environment and browser session.
pub(crate) fn phoenix_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_phoenix"));
    for var in [
        "PHOENIX_SERVER",
        "PHOENIX_TOKEN",
        "PHOENIX_OUTPUT",
        "DISPLAY",
        "WAYLAND_DISPLAY",
    ] {
        command.env_remove(var);
    }
    command
}

/// Runs the binary with exactly `args` (no server or token added).
pub(crate) fn bare(args: &[&str]) -> Run {
    let output = phoenix_command()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from_output(args, output)
}

impl Server {
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let store = MemoryStore::with_clock(clock.clone());
        let phoenix = Phoenix::new(store.stores(), clock.clone(), PhoenixConfig::default());
        let config = ServerConfig {
            admin_token: Some(ADMIN.to_owned()),
            enrollment_token: Some(ENROLL.to_owned()),
            // The test ticks the controller after moving the clock.
            controller: false,
            shutdown_grace_secs: 1,
            ..ServerConfig::default()
        };
        let state = AppState::new(phoenix.clone(), config);
        let (tx, rx) = oneshot::channel::<()>();
        let (base, handle) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let handle = tokio::spawn(phoenix_server::serve_state(
                listener,
                state,
                ServeOptions::default(),
                async move {
                    let _ = rx.await;
                },
            ));
            (base, handle)
        });
        let server = Self {
            base,
            runtime,
            clock,
            phoenix,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        let admin = server.admin();
        let deadline = Instant::now() + PROMPT;
        while server.block_on(admin.whoami()).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub(crate) fn admin(&self) -> Client {
        Client::new(&self.base).unwrap().with_token(ADMIN)
    }

    /// The binary with `--server` and the admin token, and `args`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = phoenix_command();
        command
            .args(["--server", &self.base, "--token", ADMIN])
            .args(args);
        command
    }

    /// Runs `phoenix --server <base> --token <admin> args...`.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).stdin(Stdio::null()).output().unwrap();
        Run::from_output(args, output)
    }

    /// Like [`Server::run`] with `stdin` as standard input.
    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        Run::from_output(args, child.wait_with_output().unwrap())
    }

    /// Starts `phoenix ... args` in the background, standard output piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Moves the deployment's one clock.
    pub(crate) fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        phoenix_core::clock::Clock::now(self.clock.as_ref())
    }

    /// One controller pass.
    pub(crate) fn tick(&self) {
        self.block_on(Controller::new(self.phoenix.clone()).tick())
            .unwrap();
    }

    /// Enrolls an agent with `labels` and heartbeats once.
    pub(crate) fn agent(&self, host: &str, labels: &[(&str, &str)]) -> Agent {
        let anonymous = Client::new(&self.base).unwrap();
        let enrolled = self
            .block_on(
                anonymous.enroll(
                    ENROLL,
                    &AgentRegistration {
                        host: host.to_owned(),
                        labels: labels
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        version: "test".to_owned(),
                        os: "linux".to_owned(),
                        ..AgentRegistration::default()
                    },
                ),
            )
            .unwrap();
        let agent = Agent {
            id: enrolled.agent.id,
            client: Client::new(&self.base)
                .unwrap()
                .with_token(enrolled.credential),
        };
        self.heartbeat(&agent);
        agent
    }

    pub(crate) fn heartbeat(&self, agent: &Agent) {
        self.block_on(agent.client.heartbeat(&Heartbeat::default()))
            .unwrap();
    }

    /// Long-polls `agent`'s next task and acknowledges it.
    pub(crate) fn ack_next(&self, agent: &Agent) -> LeasedTask {
        let mut tasks = self
            .block_on(agent.client.poll_tasks(Some(Duration::from_secs(5)), None))
            .unwrap();
        assert_eq!(tasks.len(), 1, "expected one task: {tasks:?}");
        let task = tasks.remove(0);
        self.block_on(agent.client.complete_task(&task, None))
            .unwrap();
        task
    }

    /// Reports 6 samples (baseline 400 series, candidate 40) for a running experiment and a
    /// cardinality snapshot of 100 series.
    pub(crate) fn report_metrics(&self, agent: &Agent, experiment: uuid::Uuid) {
        self.report_metrics_with_queries(agent, experiment, None);
    }

    /// [`Server::report_metrics`], each sample saying `queries` of the experiment's queries.
    pub(crate) fn report_metrics_with_queries(
        &self,
        agent: &Agent,
        experiment: uuid::Uuid,
        queries: Option<phoenix_client::api::query::SampleQueries>,
    ) {
        let start = self.now();
        let stats = |series: u64| VariantStats {
            series,
            points: series,
            bytes: series * 40,
            ..VariantStats::default()
        };
        let samples = (1..=6)
            .map(|seq| MeasurementSample {
                experiment_id: experiment,
                agent_id: agent.id,
                seq,
                taken_at: start + chrono::Duration::seconds(i64::try_from(seq).unwrap()),
                interval_secs: 10,
                baseline: stats(400),
                candidate: stats(40),
                host: HostStats::default(),
                queries: queries.clone(),
            })
            .collect();
        let mut series = Vec::new();
        for pid in 0..50 {
            for metric in ["process.cpu.time", "process.memory.usage"] {
                series.push(SnapshotSeries {
                    metric: metric.to_owned(),
                    labels: BTreeMap::from([
                        ("process.pid".to_owned(), pid.to_string()),
                        (
                            "process.executable.name".to_owned(),
                            format!("exe{}", pid % 5),
                        ),
                        ("service.name".to_owned(), "web".to_owned()),
                    ]),
                    points: 1,
                    value: None,
                });
            }
        }
        let receipt = self
            .block_on(agent.client.report_metrics(&MetricsReport {
                packed_snapshot: None,
                samples,
                snapshot: Some(CardinalitySnapshot {
                    agent_id: agent.id,
                    source: phoenix_client::api::measure::SnapshotSource::Input,
                    host: "web-1".to_owned(),
                    taken_at: start,
                    interval_secs: 10,
                    series,
                }),
            }))
            .unwrap();
        assert_eq!(receipt.inserted, 6);
        assert!(receipt.snapshot_stored);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(PROMPT, handle).await });
        }
    }
}

pub(crate) struct Agent {
    pub(crate) id: uuid::Uuid,
    pub(crate) client: Client,
}

/// Reads the next line the background command printed (fails after [`PROMPT`]).
pub(crate) fn first_line(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    });
    rx.recv_timeout(PROMPT).expect("a first line in time")
}

/// Waits for a background command to exit (kills it and fails after [`PROMPT`]).
pub(crate) fn wait_exit(child: &mut Child) -> i32 {
    let deadline = Instant::now() + PROMPT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
            }
            panic!("the command did not exit in time; stderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that the first table in `text` (a header line in capitals followed by rows,
/// up to a blank line) has its columns aligned: every column of every row starts at the
/// header's column offset, after at least two spaces, with a visible character.
#[track_caller]
pub(crate) fn assert_aligned(text: &str, header_starts_with: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(header_starts_with))
        .unwrap_or_else(|| panic!("no table header `{header_starts_with}` in:\n{text}"));
    let header: Vec<char> = lines[start].chars().collect();
    let columns: Vec<usize> = (0..header.len())
        .filter(|&i| {
            header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 1] == ' ' && header[i - 2] == ' '))
        })
        .collect();
    assert!(columns.len() >= 2, "not a table header: {}", lines[start]);
    let rows: Vec<&str> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .copied()
        .collect();
    assert!(!rows.is_empty(), "table without rows:\n{text}");
    for row in rows {
        let chars: Vec<char> = row.chars().collect();
        for &c in &columns[1..] {
            assert!(
                chars.len() > c && chars[c] != ' ' && chars[c - 1] == ' ' && chars[c - 2] == ' ',
                "column at {c} misaligned in row `{row}` under header `{}`",
                lines[start]
            );
        }
    }
}
