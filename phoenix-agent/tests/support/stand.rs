//! The test stand the agent's integration tests share: the real server in-process on
//! `127.0.0.1:0` over an in-memory store, and real `phoenix-agent` processes started
//! against it with the short intervals a test needs.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use phoenix_client::Client;
use phoenix_core::clock::SystemClock;
use phoenix_core::experiment::{Experiment, Phase};
use phoenix_core::ids::ExperimentId;
use phoenix_core::{MemoryStore, Phoenix, PhoenixConfig};
use phoenix_server::config::ServerConfig;
use tokio::process::{Child, Command};

/// The admin token of every stand.
pub const ADMIN: &str = "phx_admin_stand_0123456789abcdef";
/// The enrollment token of every stand.
pub const ENROLL: &str = "phx_enroll_stand_0123456789abcdef";

/// The server of a test: stopped (and its result checked) by [`Stand::stop`], or aborted
/// when dropped.
pub struct Stand {
    /// The facade the server runs, for what a test reads behind the API.
    pub phoenix: Phoenix,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// An admin client.
    pub client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), phoenix_server::ServeError>>>,
}

impl Stand {
    /// The server over a fresh in-memory store with `config`, the stand's tokens, a 100 ms
    /// controller and no agent rate limit to speak of.
    pub async fn start(config: PhoenixConfig) -> Self {
        let phoenix = Phoenix::new(MemoryStore::new().stores(), Arc::new(SystemClock), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(phoenix_server::serve_with(
            listener,
            phoenix.clone(),
            ServerConfig {
                admin_token: Some(ADMIN.to_owned()),
                enrollment_token: Some(ENROLL.to_owned()),
                controller_interval_ms: 100,
                agent_rate_per_sec: 1000.0,
                agent_rate_burst: 1000,
                ..ServerConfig::default()
            },
            phoenix_server::ServeOptions::default(),
            async {
                let _ = stopped.await;
            },
        ));
        let client = Client::new(&base).unwrap().with_token(ADMIN);
        Self {
            phoenix,
            base,
            client,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// An agent command for this server: enrolled with the stand's token, state in
    /// `state_dir`, host `name`, heartbeats every second, 2 s polls, 100 ms to 1 s backoff
    /// and a 2 s shutdown grace. A test adds its own flags (`--listen` is `off` unless it
    /// sets one), then [`spawn`]s it.
    pub fn agent(&self, state_dir: &Path, name: &str) -> AgentCommand {
        let mut command = Command::new(env!("CARGO_BIN_EXE_phoenix-agent"));
        command
            .args(["--server", &self.base, "--enrollment-token", ENROLL])
            .arg("--state-dir")
            .arg(state_dir)
            .args([
                "--host-name",
                name,
                "--heartbeat-interval-secs",
                "1",
                "--poll-wait-secs",
                "2",
                "--backoff-initial-ms",
                "100",
                "--backoff-max-ms",
                "1000",
                "--shutdown-grace-secs",
                "2",
            ]);
        AgentCommand {
            command,
            listen: None,
        }
    }

    /// Stops the server and checks it ran without error.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task")
                .expect("the server ran");
        }
    }
}

impl Drop for Stand {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// An agent process about to be started (see [`Stand::agent`]).
pub struct AgentCommand {
    command: Command,
    listen: Option<String>,
}

impl AgentCommand {
    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    /// The exposition listener (`off` when not set).
    pub fn listen(mut self, address: &str) -> Self {
        self.listen = Some(address.to_owned());
        self
    }

    /// Starts the agent (killed when the child is dropped), logging warnings only.
    pub fn spawn(mut self) -> Child {
        self.command
            .args(["--listen", self.listen.as_deref().unwrap_or("off")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("agent binary starts")
    }
}

/// Polls `f` every 200 ms until it gives a value, for at most `secs` seconds.
///
/// # Panics
/// When `secs` pass first, naming `what`.
pub async fn eventually<T>(what: &str, secs: u64, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The phases an experiment ends in.
pub const FINAL_PHASES: [Phase; 3] = [Phase::Completed, Phase::Failed, Phase::RolledBack];

/// Polls the experiment every 200 ms until it is in one of `phases`, for at most `secs`
/// seconds; returns it.
///
/// # Panics
/// When `secs` pass first, naming the phase it is stuck in and its targets.
pub async fn wait_phase(
    phoenix: &Phoenix,
    id: ExperimentId,
    phases: &[Phase],
    secs: u64,
) -> Experiment {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let e = phoenix.experiment(id).await.unwrap();
        if phases.contains(&e.phase) {
            return e;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "experiment stuck in {:?}: {:#?}",
            e.phase,
            e.targets
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
