//! The agent's life: enroll (or reuse the saved credential), restore the last-known-good
//! pipelines, then heartbeat, long-poll and run tasks, report measurements, until asked to
//! stop; then finish or release the tasks in hand and stop the pipelines.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use phoenix_core::agent::{AgentRegistration, Heartbeat};
use phoenix_core::ids::AgentId;
use phoenix_core::inputs;
use phoenix_core::phoenix::TaskReport;
use phoenix_core::task::{LeaseRef, LeasedTask};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{AgentConfig, RuntimeKind, backoff_sequence};
use crate::control::{ControlError, ControlPlane};
use crate::host::HostProbe;
use crate::leases::HeldLeases;
use crate::otlp_receiver::{self, OtlpInputs, OtlpReceiver};
use crate::report::{ReportConfig, Reporter};
use crate::runtime::PipelineRuntime;
use crate::runtime::native::{NativeConfig, NativeRuntime};
use crate::runtime::otelcol::{MeasureContext, OtelcolRuntime};
use crate::seq::Sequences;
use crate::serve::{Expositions, serve};
use crate::snapshot::{SnapshotConfig, Snapshotter};
use crate::state::{StateDir, StateError, StoredCredential};
use crate::tasks::{Executor, error_chain};

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory failed.
    #[error("state directory failed")]
    State(#[from] StateError),
    /// No credential is saved and no enrollment token is configured.
    #[error(
        "not enrolled: set an enrollment token (--enrollment-token / PHOENIX_AGENT_ENROLLMENT_TOKEN)"
    )]
    NotEnrolled,
    /// The enrollment token was refused.
    #[error("the server refused the enrollment token")]
    EnrollmentRefused,
    /// The server refused the registration itself.
    #[error("the server refused the registration")]
    Registration(#[source] ControlError),
    /// The exposition listener could not be bound.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OTLP receiver could not be bound.
    #[error("cannot start the OTLP receiver on {addr} (--otlp-receiver)")]
    OtlpReceiver {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline runtime could not start.
    #[error("pipeline runtime failed to start")]
    Runtime(#[source] crate::runtime::RuntimeError),
}

/// Who the agent is to the server.
#[derive(Debug, Clone)]
struct Identity {
    agent_id: AgentId,
    credential: String,
}

/// What a running agent exposes to its embedder.
#[derive(Debug, Clone)]
pub struct AgentStatus {
    /// The agent's id, once enrolled.
    pub agent_id: Option<AgentId>,
    /// The exposition listener's address.
    pub listen: Option<std::net::SocketAddr>,
    /// The OTLP receiver's address, when it runs.
    pub otlp_receiver: Option<std::net::SocketAddr>,
}

/// The agent. Build it with [`Agent::new`], then [`run`](Agent::run) it.
pub struct Agent {
    config: AgentConfig,
    control: Arc<dyn ControlPlane>,
    listener: Option<TcpListener>,
    status: watch::Sender<AgentStatus>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Everything the loops share.
struct Running {
    config: AgentConfig,
    control: Arc<dyn ControlPlane>,
    state: StateDir,
    identity: watch::Sender<Identity>,
    registration: AgentRegistration,
    probe: Arc<Mutex<HostProbe>>,
    executor: Arc<Executor>,
    reporter: Arc<Reporter>,
    held: HeldLeases,
    started_at: DateTime<Utc>,
    /// The snapshot period the server asked for (every heartbeat answer says; `None`
    /// before the first answer).
    snapshot_interval: watch::Sender<Option<Duration>>,
}

impl Agent {
    /// An agent with `config` talking to `control`.
    #[must_use]
    pub fn new(config: AgentConfig, control: Arc<dyn ControlPlane>) -> Self {
        Self {
            config,
            control,
            listener: None,
            status: watch::channel(AgentStatus {
                agent_id: None,
                listen: None,
                otlp_receiver: None,
            })
            .0,
        }
    }

    /// Serves the expositions on an already-bound listener instead of `config.listen`.
    #[must_use]
    pub fn with_listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// A subscription to the agent's status (id once enrolled, listener address).
    #[must_use]
    pub fn status(&self) -> watch::Receiver<AgentStatus> {
        self.status.subscribe()
    }

    /// The registration this agent sends.
    fn registration(&self) -> AgentRegistration {
        let host = self
            .config
            .host_name
            .clone()
            .or_else(sysinfo::System::host_name)
            .unwrap_or_else(|| "unknown-host".to_owned());
        let os = sysinfo::System::long_os_version()
            .or_else(sysinfo::System::name)
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let runtime = match self.config.runtime {
            RuntimeKind::Native => "runtime:native",
            RuntimeKind::Otelcol => "runtime:otelcol",
        };
        AgentRegistration {
            host,
            labels: self.config.labels.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec![
                runtime.to_owned(),
                "receiver:process".to_owned(),
                "receiver:prometheus".to_owned(),
                "exporter:prometheus".to_owned(),
                "exporter:otlphttp".to_owned(),
            ],
            os,
        }
    }

    /// Runs until `shutdown` resolves (then stops gracefully) or a fatal error.
    ///
    /// # Errors
    /// Fatal startup problems: state directory, enrollment refused, listener.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), AgentError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        let state = StateDir::open(&self.config.state_dir)?;
        // The OTLP receiver runs from the start, before the server is reached: applications
        // whose data goes through it must not wait on Phoenix's server.
        let otlp = match self.config.otlp_receiver {
            Some(addr) => {
                Some(start_otlp_receiver(&self.config, addr, &state, stop_rx.clone()).await?)
            }
            None => None,
        };
        let otlp_addr = otlp.as_ref().map(|(addr, _)| *addr);
        let otlp_inputs = otlp.map(|(_, inputs)| inputs);
        self.status.send_modify(|s| s.otlp_receiver = otlp_addr);
        let registration = self.registration();
        let identity = tokio::select! {
            identity = identify(&self.config, self.control.as_ref(), &state, &registration) => identity?,
            () = &mut shutdown => return Ok(()),
        };
        tracing::info!(agent = %identity.agent_id, host = %registration.host, "agent identified");

        let listener =
            match self.listener {
                Some(l) => Some(l),
                None => match self.config.listen {
                    Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| {
                        AgentError::Listen {
                            addr: addr.to_string(),
                            source,
                        }
                    })?),
                    None => None,
                },
            };
        let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(addr) = listen_addr {
            // Lets operators and tests find the listener when it was bound to port 0.
            crate::state::write_private(
                &state.path().join("listen.addr"),
                addr.to_string().as_bytes(),
            )?;
            tracing::info!(%addr, "serving /metrics/baseline and /metrics/candidate");
        }
        self.status.send_replace(AgentStatus {
            agent_id: Some(identity.agent_id),
            listen: listen_addr,
            otlp_receiver: otlp_addr,
        });

        let reporter = Arc::new(Reporter::new(ReportConfig {
            batch_size: self.config.report_batch_size,
            buffer_capacity: self.config.report_buffer,
            backoff_initial: self.config.backoff_initial,
            backoff_max: self.config.backoff_max,
        }));
        let sequences = Arc::new(Sequences::load(state.clone())?);
        let probe = Arc::new(Mutex::new(HostProbe::new()));
        let expositions = Arc::new(Expositions::default());
        let runtime: Arc<dyn PipelineRuntime> = match self.config.runtime {
            RuntimeKind::Native => Arc::new(NativeRuntime::start(
                NativeConfig {
                    agent_id: identity.agent_id,
                    host: registration.host.clone(),
                    otlp_endpoint: self.config.otlp_endpoint.clone(),
                    io_timeout: self.config.io_timeout,
                },
                Arc::clone(&probe),
                Arc::clone(&expositions),
                Arc::clone(&reporter),
                Arc::clone(&sequences),
            )),
            RuntimeKind::Otelcol => Arc::new(
                OtelcolRuntime::start(
                    self.config.otelcol.clone(),
                    state.subdir("otelcol")?,
                    MeasureContext {
                        agent_id: identity.agent_id,
                        host: registration.host.clone(),
                        probe: Arc::clone(&probe),
                    },
                    Arc::clone(&reporter),
                    Arc::clone(&sequences),
                )
                .map_err(AgentError::Runtime)?,
            ),
        };
        let snapshot_interval = watch::channel(None).0;
        let executor = Arc::new(Executor::new(
            Arc::clone(&runtime),
            state.clone(),
            identity.agent_id,
            self.config.deploy_timeout,
            Snapshotter::new(
                SnapshotConfig {
                    agent_id: identity.agent_id,
                    host: registration.host.clone(),
                    scrape: self.config.scrape.clone(),
                    scrape_interval: self.config.scrape_interval,
                    host_interval: self.config.host_interval,
                    io_timeout: self.config.io_timeout,
                    otlp: otlp_inputs,
                },
                Arc::clone(&reporter),
            ),
            snapshot_interval.subscribe(),
            self.config.snapshot_interval,
        )?);
        if let Err(e) = executor.restore().await {
            tracing::error!(error = %e, "last-known-good pipelines could not be restored; starting empty");
        }

        // Tasks this agent held when it last stopped without giving them back (a crash, a
        // kill): pending again now rather than when their leases expire.
        let held = HeldLeases::load(state.clone())?;
        held.release_previous(self.control.as_ref(), &identity.credential)
            .await;

        let running = Arc::new(Running {
            config: self.config.clone(),
            control: Arc::clone(&self.control),
            state,
            identity: watch::channel(identity).0,
            registration,
            probe,
            executor,
            reporter: Arc::clone(&reporter),
            held,
            started_at: Utc::now(),
            snapshot_interval,
        });

        let mut background = JoinSet::new();
        if let Some(listener) = listener {
            let mut stop = stop_rx.clone();
            background.spawn(serve(listener, expositions, async move {
                until_true(&mut stop).await;
            }));
        }
        background.spawn(heartbeat_loop(Arc::clone(&running), stop_rx.clone()));
        background.spawn(snapshot_loop(Arc::clone(&running), stop_rx.clone()));
        {
            let running = Arc::clone(&running);
            let stop = stop_rx.clone();
            background.spawn(async move {
                // The reporter follows re-enrollment: restart it with each new credential.
                let mut identity = running.identity.subscribe();
                loop {
                    let credential = identity.borrow_and_update().credential.clone();
                    let run = Arc::clone(&running.reporter).run(
                        Arc::clone(&running.control),
                        credential,
                        stop.clone(),
                    );
                    tokio::select! {
                        () = run => return,
                        changed = identity.changed() => if changed.is_err() { return },
                    }
                }
            });
        }

        poll_loop(Arc::clone(&running), &mut shutdown).await;

        // Shutdown: tasks were finished or released by poll_loop; stop pipelines, flush.
        let _ = stop_tx.send(true);
        running.executor.runtime().shutdown().await;
        let credential = running.identity.borrow().credential.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            running
                .reporter
                .flush_once(running.control.as_ref(), &credential),
        )
        .await;
        while background.join_next().await.is_some() {}
        tracing::info!(stats = ?running.reporter.stats(), "agent stopped");
        Ok(())
    }
}

/// Binds the OTLP receiver on `addr` (a failure stops the agent: a receiver asked for that
/// cannot run is not silently left out) and serves it until `stop`; its address is written
/// to `otlp.addr` in the state directory (useful with port 0).
async fn start_otlp_receiver(
    config: &AgentConfig,
    addr: std::net::SocketAddr,
    state: &StateDir,
    stop: watch::Receiver<bool>,
) -> Result<(std::net::SocketAddr, Arc<OtlpInputs>), AgentError> {
    let bind_error = |source| AgentError::OtlpReceiver {
        addr: addr.to_string(),
        source,
    };
    let listener = otlp_receiver::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    crate::state::write_private(
        &state.path().join("otlp.addr"),
        bound.to_string().as_bytes(),
    )?;
    let forward = config
        .otlp_receiver_forward
        .clone()
        .unwrap_or(otlp_receiver::Forward::Off);
    match &forward {
        otlp_receiver::Forward::Off => {
            tracing::warn!(addr = %bound, "OTLP receiver is a measurement-only sink: what it accepts is measured and dropped, not forwarded")
        }
        otlp_receiver::Forward::To(upstream) => {
            tracing::info!(addr = %bound, %upstream, "OTLP receiver measuring and forwarding")
        }
    }
    let inputs = Arc::new(OtlpInputs::new());
    let receiver = Arc::new(OtlpReceiver::new(
        Arc::clone(&inputs),
        forward,
        config.io_timeout,
    ));
    tokio::spawn(otlp_receiver::serve(listener, receiver, stop));
    Ok((bound, inputs))
}

/// Loads the saved credential or enrolls (retrying while the server is unreachable).
async fn identify(
    config: &AgentConfig,
    control: &dyn ControlPlane,
    state: &StateDir,
    registration: &AgentRegistration,
) -> Result<Identity, AgentError> {
    if let Some(saved) = state.credential()? {
        if saved.server_url == config.server_url {
            return Ok(Identity {
                agent_id: saved.agent_id,
                credential: saved.credential,
            });
        }
        tracing::info!(saved = %saved.server_url, configured = %config.server_url, "credential belongs to another server; enrolling again");
    }
    enroll(config, control, state, registration).await
}

async fn enroll(
    config: &AgentConfig,
    control: &dyn ControlPlane,
    state: &StateDir,
    registration: &AgentRegistration,
) -> Result<Identity, AgentError> {
    let token = config
        .enrollment_token
        .as_deref()
        .ok_or(AgentError::NotEnrolled)?;
    let mut backoff = backoff_sequence(config.backoff_initial, config.backoff_max);
    loop {
        match control.enroll(token, registration).await {
            Ok(enrollment) => {
                state.save_credential(&StoredCredential {
                    agent_id: enrollment.agent_id,
                    credential: enrollment.credential.clone(),
                    server_url: config.server_url.clone(),
                    enrolled_at: Utc::now(),
                })?;
                return Ok(Identity {
                    agent_id: enrollment.agent_id,
                    credential: enrollment.credential,
                });
            }
            Err(ControlError::Unauthenticated) => return Err(AgentError::EnrollmentRefused),
            Err(e @ ControlError::Rejected { .. }) => return Err(AgentError::Registration(e)),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %error_chain(&e), ?delay, "enrollment failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The credential was refused mid-life (revoked, or the server lost its state): enroll
/// again when an enrollment token is configured.
async fn reenroll(running: &Running) -> bool {
    if running.config.enrollment_token.is_none() {
        tracing::error!("credential refused and no enrollment token configured");
        return false;
    }
    if let Err(e) = running.state.remove_credential() {
        tracing::warn!(error = %error_chain(&e), "cannot remove the refused credential");
    }
    match enroll(
        &running.config,
        running.control.as_ref(),
        &running.state,
        &running.registration,
    )
    .await
    {
        Ok(identity) => {
            tracing::warn!(agent = %identity.agent_id, "credential was refused; enrolled again");
            running.identity.send_replace(identity);
            true
        }
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "enrolling again failed");
            false
        }
    }
}

async fn heartbeat_loop(running: Arc<Running>, mut stop: watch::Receiver<bool>) {
    let mut backoff = backoff_sequence(
        running.config.backoff_initial,
        running.config.heartbeat_interval,
    );
    loop {
        let probe = Arc::clone(&running.probe);
        let resources = tokio::task::spawn_blocking(move || {
            probe
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .host_stats(None)
        })
        .await
        .unwrap_or_default();
        let mut pipelines = running.executor.runtime().active();
        // Health details quote a Collector's output: never let their wording (escape
        // sequences, length) get a heartbeat refused.
        for p in &mut pipelines {
            if let Some(detail) = &mut p.detail {
                *detail = inputs::fit_free_text(detail, inputs::MAX_DETAIL_CHARS);
            }
        }
        let heartbeat = Heartbeat {
            resources,
            pipelines,
            started_at: Some(running.started_at),
        };
        let credential = running.identity.borrow().credential.clone();
        let delay = match running.control.heartbeat(&credential, &heartbeat).await {
            Ok(ack) => {
                backoff.reset();
                if let Some(every) = ack.snapshot_interval {
                    running.snapshot_interval.send_if_modified(|current| {
                        let changed = *current != Some(every);
                        *current = Some(every);
                        changed
                    });
                }
                running.config.heartbeat_interval
            }
            Err(ControlError::Unauthenticated) => {
                reenroll(&running).await;
                backoff.next_delay()
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %error_chain(&e), ?delay, "heartbeat failed");
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = until_true(&mut stop) => return,
        }
    }
}

/// Snapshots the host's inputs at once and then every snapshot interval (the server's,
/// from the heartbeat answers; a change takes effect at once), whatever is deployed, and
/// at once when the deployed set changed.
async fn snapshot_loop(running: Arc<Running>, mut stop: watch::Receiver<bool>) {
    let mut interval = running.snapshot_interval.subscribe();
    // The first snapshot waits for the server's interval (the first heartbeat answer),
    // but not forever: an older server does not say.
    tokio::select! {
        _ = interval.wait_for(Option::is_some) => {}
        () = tokio::time::sleep(running.config.heartbeat_interval * 3) => {}
        () = until_true(&mut stop) => return,
    }
    loop {
        match running.executor.collect_snapshot().await {
            Ok(result) => tracing::debug!(%result, "cardinality snapshot taken"),
            Err(e) => tracing::warn!(error = %e, "cardinality snapshot failed"),
        }
        let every = interval
            .borrow_and_update()
            .unwrap_or(running.config.snapshot_interval);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = interval.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = running.executor.snapshot_due().notified() => {}
            () = until_true(&mut stop) => return,
        }
    }
}

async fn poll_loop(running: Arc<Running>, shutdown: &mut (impl Future<Output = ()> + Unpin)) {
    let max = running.config.max_concurrent_tasks.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (release_tx, release_rx) = watch::channel(false);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = backoff_sequence(running.config.backoff_initial, running.config.backoff_max);
    loop {
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                () = &mut *shutdown => break,
                _ = tasks.join_next() => continue,
            }
        }
        let credential = running.identity.borrow().credential.clone();
        let polled = tokio::select! {
            () = &mut *shutdown => break,
            polled = running.control.poll_tasks(&credential, running.config.poll_wait, free) => polled,
        };
        match polled {
            Ok(leased) => {
                backoff.reset();
                for task in leased {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        // More tasks than asked for: give the extra back.
                        release(&running, &credential, &task).await;
                        continue;
                    };
                    running.held.hold(LeaseRef {
                        task_id: task.task.id,
                        token: task.lease_token,
                    });
                    let running = Arc::clone(&running);
                    let release = release_rx.clone();
                    tasks.spawn(async move {
                        let task_id = task.task.id;
                        run_task(&running, task, release).await;
                        // Reported, released or lost: no longer ours to give back.
                        running.held.forget(task_id);
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                let delay = match &e {
                    ControlError::RateLimited {
                        retry_after: Some(d),
                    } => *d,
                    ControlError::Unauthenticated => {
                        reenroll(&running).await;
                        backoff.next_delay()
                    }
                    _ => backoff.next_delay(),
                };
                tracing::warn!(error = %error_chain(&e), ?delay, "polling for tasks failed");
                tokio::select! {
                    () = &mut *shutdown => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    // Finish what is in hand within the grace period, then release the rest.
    if !tasks.is_empty() {
        tracing::info!(tasks = tasks.len(), grace = ?running.config.shutdown_grace, "waiting for running tasks");
        let finished = tokio::time::timeout(running.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            let _ = release_tx.send(true);
            while tasks.join_next().await.is_some() {}
        }
    }
}

async fn release(running: &Running, credential: &str, task: &LeasedTask) {
    let lease = LeaseRef {
        task_id: task.task.id,
        token: task.lease_token,
    };
    if let Err(e) = running.control.release_task(credential, lease).await {
        tracing::warn!(task = %task.task.id, error = %error_chain(&e), "cannot release task; its lease will expire");
    }
}

/// Runs one task: extends its lease while it runs, reports the outcome with the lease
/// token, or releases it when the agent stops first.
async fn run_task(running: &Running, task: LeasedTask, mut release_signal: watch::Receiver<bool>) {
    let lease = LeaseRef {
        task_id: task.task.id,
        token: task.lease_token,
    };
    // The lease length in the server's clock (claim time to expiry), so clock skew
    // between agent and server does not matter.
    let lease_len = (task.lease_expires_at - task.task.updated_at)
        .to_std()
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_millis(300));
    let extend_every = lease_len / 3;
    tracing::info!(task = %task.task.id, kind = %task.task.kind(), attempt = task.task.attempts, "running task");
    let execute = running.executor.execute(&task.task);
    tokio::pin!(execute);
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + extend_every, extend_every);
    let outcome = loop {
        tokio::select! {
            outcome = &mut execute => break Some(outcome),
            _ = ticker.tick() => {
                let credential = running.identity.borrow().credential.clone();
                match running.control.report_task(&credential, lease, TaskReport::Running).await {
                    Ok(_) => {}
                    Err(ControlError::LeaseLost) => {
                        tracing::warn!(task = %task.task.id, "lease lost while running; the task will be delivered again");
                        // Let the work finish (it is idempotent) but do not report it.
                        let _ = (&mut execute).await;
                        return;
                    }
                    Err(e) => tracing::warn!(task = %task.task.id, error = %error_chain(&e), "lease extension failed"),
                }
            }
            () = until_true(&mut release_signal) => break None,
        }
    };
    let credential = running.identity.borrow().credential.clone();
    let Some(outcome) = outcome else {
        release(running, &credential, &task).await;
        return;
    };
    let report = match outcome {
        Ok(result) => TaskReport::Succeeded {
            result: Some(result),
        },
        Err(failure) => {
            tracing::warn!(task = %task.task.id, error = %failure.message, retryable = failure.retryable, "task failed");
            TaskReport::Failed {
                error: inputs::fit_free_text(&failure.message, inputs::MAX_DETAIL_CHARS),
                retryable: failure.retryable,
            }
        }
    };
    let mut backoff = backoff_sequence(running.config.backoff_initial, lease_len / 4);
    let deadline = tokio::time::Instant::now() + lease_len;
    loop {
        match running
            .control
            .report_task(&credential, lease, report.clone())
            .await
        {
            Ok(_) => {
                tracing::info!(task = %task.task.id, "task reported");
                return;
            }
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(task = %task.task.id, error = %error_chain(&e), "task result not accepted; it will be delivered again and answered from the record");
                return;
            }
        }
    }
}

/// Resolves once `flag` is true (or its sender is gone).
async fn until_true(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}
