//! Fleet scale: `PHOENIX_BENCH_AGENTS` (10,000) simulated agents at the agent's real
//! cadence, against one server on the memory store or two replicas on one database
//! (agents split between them).
//!
//! Each simulated agent is enrolled, then, as `phoenix-agent` does with its default
//! configuration: a heartbeat every interval the server announced at enrollment (10 s),
//! spread over the interval; a long-poll held at all times (`wait=30`, `max=4`); each task
//! received is reported `succeeded`; once it runs the experiment, one measurement report
//! per sample interval (the experiment's, 10 s by default) carrying one sample of this
//! machine, with the host's cardinality snapshot attached once a minute (the agent's
//! default is once every 30 intervals, 5 min: a minute is the cadence, the heavier).
//!
//! When every poll is waiting, an experiment targeting every agent is created and started
//! through the API: the time from sending `start` until the last agent received its deploy
//! task is the start figure. The sustained window of `PHOENIX_BENCH_FLEET_SECS` (60 s)
//! follows, over which server CPU (each replica) and the load generator's own CPU are read
//! from `/proc`; RSS at its end. Latencies and errors count from `start` to the window's end.
//!
//! Sockets: each agent's long-poll has its own keep-alive connection (one client pool with
//! room for all); heartbeats, task reports and measurement reports of all agents share a
//! second pool of keep-alive connections, since a process cannot hold two connections per
//! agent (20,000) under the usual open-file limit. A real agent's server sees one or two
//! connections per agent; here it sees one per agent plus the shared pool's. The pool
//! (`CALLS` connections per server) is opened before the run, and at most that many calls
//! are in flight: a call's latency is timed from when it has a connection, so that the
//! load generator's own queueing (which a real fleet does not have) is not counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use phoenix_client::Client;
use phoenix_client::api::agent::Heartbeat;
use phoenix_client::api::experiment::{ExperimentSpec, NewExperiment};
use phoenix_client::api::measure::MetricsReport;
use phoenix_client::api::pipeline::PipelineRef;
use phoenix_client::api::task::TaskKind;
use phoenix_client::api::token::{NewToken, Role};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::payload::HostPayload;
use crate::product::Meter;
use crate::{
    ADMIN, Fleet, FleetStore, Metric, Results, ServerProcess, Setup, enroll, percentile, rss_kib,
};

const POLL_WAIT: Duration = Duration::from_secs(30);

/// Keep-alive connections of the shared pool, per server: calls beyond wait for one.
const CALLS: usize = 512;

/// The section's paragraph on the fleet's configuration.
pub(crate) fn describe(s: &Setup) -> String {
    format!(
        "Fleet: {n} simulated agents in one load-generator process (the bench) at the agent's \
real cadence: a heartbeat every 10 s (the interval the server announces), spread over the \
interval; a long-poll held at all times (`wait=30`, `max=4`) on the agent's own keep-alive \
connection; every task reported `succeeded`; while it runs the experiment, one measurement \
report per sample interval (10 s) with one sample of this machine, and its cardinality snapshot \
({series} series) attached once a minute. Heartbeats and reports of all agents share a pool \
of keep-alive connections (two connections per agent would exceed the open-file limit). When \
every poll waits, an experiment targeting all agents is created and started through the API; \
then a sustained window of {secs} s. Latencies and errors count from `start` to the end of the \
window; CPU over the window, RSS at its end; the load generator's CPU is shown so that it can \
be seen not to be the bottleneck (server, load generator and database share the machine).",
        n = s.fleet_agents,
        secs = s.fleet_secs,
        series = s.snapshot_series,
    )
}

/// Call latencies and failures of the whole fleet.
struct Stats {
    heartbeat: Mutex<Vec<f64>>,
    report: Mutex<Vec<f64>>,
    metrics: Mutex<Vec<f64>>,
    late: Mutex<Vec<f64>>,
    delivery: Mutex<Vec<f64>>,
    errors: AtomicU64,
    /// Once set, latencies are kept (from `start` on).
    recording: std::sync::atomic::AtomicBool,
    delivered: AtomicUsize,
    all_delivered: Notify,
    /// When `start` was sent.
    start_sent: Mutex<Option<Instant>>,
}

impl Stats {
    fn new() -> Self {
        Self {
            heartbeat: Mutex::default(),
            report: Mutex::default(),
            metrics: Mutex::default(),
            late: Mutex::default(),
            delivery: Mutex::default(),
            errors: AtomicU64::new(0),
            recording: std::sync::atomic::AtomicBool::new(false),
            delivered: AtomicUsize::new(0),
            all_delivered: Notify::new(),
            start_sent: Mutex::new(None),
        }
    }

    fn keep(&self, into: &Mutex<Vec<f64>>, since: Instant) {
        if self.recording.load(Ordering::Relaxed) {
            into.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(since.elapsed().as_secs_f64() * 1000.0);
        }
    }

    fn error(&self, what: &str, e: &phoenix_client::ClientError) {
        if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("fleet: {what} failed: {e:?}");
        }
    }

    fn p99(list: &Mutex<Vec<f64>>) -> (f64, usize) {
        let mut v = list.lock().unwrap_or_else(PoisonError::into_inner).clone();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 99.0), v.len())
    }
}

/// One simulated agent.
struct Sim {
    poll: Client,
    calls: Client,
    id: Uuid,
    host: String,
    /// Offset of its heartbeats within the interval.
    offset: Duration,
    /// Calls in flight on its server's share of the pool.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// The experiment it runs, once deployed (sample interval, experiment id).
    running: tokio::sync::watch::Sender<Option<(Uuid, u32)>>,
}

async fn poll_loop(sim: Arc<Sim>, stats: Arc<Stats>, total: usize) {
    loop {
        let asked = Instant::now();
        match sim.poll.poll_tasks(Some(POLL_WAIT), Some(4)).await {
            Ok(tasks) if tasks.is_empty() => {
                if stats.recording.load(Ordering::Relaxed) {
                    let late = asked.elapsed().saturating_sub(POLL_WAIT);
                    stats
                        .late
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(late.as_secs_f64() * 1000.0);
                }
            }
            Ok(tasks) => {
                for t in &tasks {
                    if t.task.kind == TaskKind::DeployPipelines {
                        let sent = *stats
                            .start_sent
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        if let Some(sent) = sent {
                            stats.keep(&stats.delivery, sent);
                        }
                        if let Some(experiment) = t.task.experiment_id {
                            // The payload's field, at the top or under the variant's tag.
                            let payload = &t.task.payload;
                            let interval = payload
                                .get("sample_interval_secs")
                                .or_else(|| {
                                    payload
                                        .as_object()?
                                        .values()
                                        .find_map(|v| v.get("sample_interval_secs"))
                                })
                                .and_then(serde_json::Value::as_u64)
                                .and_then(|v| u32::try_from(v).ok())
                                .unwrap_or(10);
                            let _ = sim.running.send(Some((experiment, interval)));
                        }
                        if stats.delivered.fetch_add(1, Ordering::SeqCst) + 1 == total {
                            stats.all_delivered.notify_one();
                        }
                    }
                    let _permit = sim.in_flight.acquire().await.expect("open");
                    let reported = Instant::now();
                    match sim.calls.complete_task(t, None).await {
                        Ok(_) => stats.keep(&stats.report, reported),
                        Err(e) => stats.error("task report", &e),
                    }
                }
            }
            Err(e) => {
                stats.error("long-poll", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn calls_loop(sim: Arc<Sim>, stats: Arc<Stats>, payload: Arc<HostPayload>) {
    let mut beat = tokio::time::interval_at(
        tokio::time::Instant::now() + sim.offset,
        Duration::from_secs(10),
    );
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = sim.running.subscribe();
    let mut sample: Option<tokio::time::Interval> = None;
    let mut experiment = (Uuid::nil(), 10u32);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let _permit = sim.in_flight.acquire().await.expect("open");
                let t = Instant::now();
                match sim.calls.heartbeat(&Heartbeat::default()).await {
                    Ok(_) => stats.keep(&stats.heartbeat, t),
                    Err(e) => stats.error("heartbeat", &e),
                }
            }
            changed = running.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Some(exp) = *running.borrow_and_update() {
                    experiment = exp;
                    let every = Duration::from_secs(u64::from(exp.1.max(1)));
                    let mut i = tokio::time::interval(every);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    sample = Some(i);
                }
            }
            () = async {
                match sample.as_mut() {
                    Some(i) => { i.tick().await; }
                    None => std::future::pending().await,
                }
            } => {
                seq += 1;
                // A snapshot with the first report, then once a minute.
                let per_minute = u64::from((60 / experiment.1.max(1)).max(1));
                let snapshot = (seq % per_minute == 1 || per_minute == 1)
                    .then(|| payload.snapshot(sim.id, &sim.host));
                let report = MetricsReport {
                    packed_snapshot: None,
                    samples: vec![payload.sample(experiment.0, sim.id, seq, experiment.1)],
                    snapshot,
                };
                let _permit = sim.in_flight.acquire().await.expect("open");
                let t = Instant::now();
                match sim.calls.report_metrics(&report).await {
                    Ok(_) => stats.keep(&stats.metrics, t),
                    Err(e) => stats.error("measurement report", &e),
                }
            }
        }
    }
}

/// Sum of `phoenix_long_polls_waiting` over the servers.
async fn polls_waiting(servers: &[ServerProcess]) -> usize {
    let mut total = 0;
    for s in servers {
        let text = Client::new(&s.base)
            .expect("client")
            .server_metrics()
            .await
            .unwrap_or_default();
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("phoenix_long_polls_waiting "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
    }
    total
}

#[allow(clippy::too_many_lines, reason = "one scenario, read top to bottom")]
pub(crate) async fn fleet(
    results: &mut Results,
    store: FleetStore,
    url: Option<&str>,
    setup: &Setup,
    payload: &Arc<HostPayload>,
) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let namespace = format!(
        "fleet_{}_{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let servers: Vec<ServerProcess> = match url {
        None => vec![ServerProcess::start(&["--store", "memory:"])],
        Some(url) => (0..2)
            .map(|_| ServerProcess::start(&["--store", url, "--store-namespace", &namespace]))
            .collect(),
    };
    for s in &servers {
        s.ready().await;
    }
    let n = setup.fleet_agents;
    let per_server = n.div_ceil(servers.len());
    let poll_http = crate::reqwest_client(per_server + 16);
    let calls_http = crate::reqwest_client(CALLS);
    // Open the shared pool's connections before the run.
    for server in &servers {
        let warm: Vec<_> = (0..CALLS)
            .map(|_| {
                let c = Client::with_http(&server.base, calls_http.clone()).expect("client");
                tokio::spawn(async move { c.healthz().await.map(|_| ()) })
            })
            .collect();
        for w in warm {
            w.await.expect("join").expect("healthz");
        }
    }
    let mut sims = Vec::with_capacity(n);
    for (k, server) in servers.iter().enumerate() {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(CALLS));
        let count = per_server.min(n - k * per_server);
        for e in enroll(&server.base, count, 256, &format!("fleet{k}")).await {
            let i = sims.len();
            let offset = Duration::from_micros(i as u64 * 10_000_000 / n as u64);
            sims.push(Arc::new(Sim {
                poll: Client::with_http(&server.base, poll_http.clone())
                    .expect("client")
                    .with_token(e.credential.clone()),
                calls: Client::with_http(&server.base, calls_http.clone())
                    .expect("client")
                    .with_token(e.credential),
                id: e.agent.id,
                host: e.agent.host.clone(),
                offset,
                in_flight: in_flight.clone(),
                running: tokio::sync::watch::channel(None).0,
            }));
        }
    }
    let stats = Arc::new(Stats::new());
    let mut tasks = Vec::with_capacity(2 * n);
    for sim in &sims {
        tasks.push(tokio::spawn(calls_loop(
            sim.clone(),
            stats.clone(),
            payload.clone(),
        )));
        tasks.push(tokio::spawn(poll_loop(sim.clone(), stats.clone(), n)));
    }
    // Every agent has heartbeated (one interval) and every poll waits.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut waiting = 0;
    while Instant::now() < deadline {
        waiting = polls_waiting(&servers).await;
        if waiting >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        waiting >= n,
        "only {waiting} of {n} polls waiting after 2 min"
    );

    let admin = Client::new(&servers[0].base)
        .expect("client")
        .with_token(ADMIN);
    let operator = admin
        .create_token(&NewToken {
            name: "fleet".to_owned(),
            role: Role::Operator,
        })
        .await
        .expect("token");
    let operator = Client::new(&servers[0].base)
        .expect("client")
        .with_token(operator.secret);
    let experiment = operator
        .create_experiment(&NewExperiment {
            name: "fleet".to_owned(),
            description: String::new(),
            spec: ExperimentSpec::new(PipelineRef::new("baseline"), PipelineRef::new("topk"), 3600),
        })
        .await
        .expect("create");
    stats.recording.store(true, Ordering::SeqCst);
    let all_delivered = stats.all_delivered.notified();
    let sent = Instant::now();
    *stats
        .start_sent
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(sent);
    let started = operator.start_experiment(experiment.id).await;
    let start_call = sent.elapsed();
    if let Err(e) = &started {
        stats.error("start", e);
    }
    let delivered_all = tokio::time::timeout(Duration::from_secs(120), all_delivered)
        .await
        .is_ok();
    let start_to_all = sent.elapsed();
    let delivered = stats.delivered.load(Ordering::SeqCst);

    // The sustained window.
    let window = Duration::from_secs(setup.fleet_secs);
    let meters: Vec<Meter> = servers
        .iter()
        .map(|s| Meter::start(vec![s.pid()]))
        .collect();
    let own = Meter::start(vec![std::process::id()]);
    tokio::time::sleep(window).await;
    let cpu: Vec<f64> = meters
        .iter()
        .map(|m| {
            let (ms, wall) = m.stop();
            ms / wall.as_secs_f64() / 10.0
        })
        .collect();
    let (own_ms, own_wall) = own.stop();
    let loadgen_pct = own_ms / own_wall.as_secs_f64() / 10.0;
    #[allow(clippy::cast_precision_loss, reason = "KiB counts far below 2^52")]
    let rss: Vec<f64> = servers
        .iter()
        .map(|s| rss_kib(s.pid()) as f64 / 1024.0)
        .collect();
    let recorded = sent.elapsed();
    stats.recording.store(false, Ordering::SeqCst);
    for t in &tasks {
        t.abort();
    }
    drop(servers);
    if let Some(url) = url.filter(|u| u.starts_with("redis")) {
        crate::drains::delete_keys_at(url, &format!("{namespace}*")).await;
    }

    let errors = stats.errors.load(Ordering::Relaxed);
    let label = store.describe();
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (delivery_p99, _) = Stats::p99(&stats.delivery);
    let (hb, hb_n) = Stats::p99(&stats.heartbeat);
    let (rep, rep_n) = Stats::p99(&stats.report);
    let (met, met_n) = Stats::p99(&stats.metrics);
    let (late, late_n) = Stats::p99(&stats.late);
    results.record(
        Metric::Fleet(store, Fleet::StartToAllSecs),
        if delivered_all {
            start_to_all.as_secs_f64()
        } else {
            f64::INFINITY
        },
        format!(
            "{n} agents, {label}: {delivered} of {n} deploy tasks received {:.2} s after `start` was sent (the `start` call took {:.2} s); in the {:.0} s from `start` to the end of the window: {hb_n} heartbeats answered (the cadence asks for {}), {rep_n} task reports, {met_n} measurement reports, {late_n} empty polls, {errors} errors; server CPU {} % of a core, RSS {} MiB (each replica); load generator {loadgen_pct:.1} % of a core",
            start_to_all.as_secs_f64(),
            start_call.as_secs_f64(),
            recorded.as_secs_f64(),
            n as u64 * recorded.as_secs() / 10,
            list(&cpu),
            list(&rss),
        ),
    );
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    #[allow(clippy::cast_precision_loss, reason = "error counts far below 2^52")]
    for (figure, value) in [
        (Fleet::DeliveryP99Ms, delivery_p99),
        (Fleet::HeartbeatP99Ms, hb),
        (Fleet::TaskReportP99Ms, rep),
        (Fleet::MetricsReportP99Ms, met),
        (Fleet::EmptyPollLateP99Ms, late),
        (Fleet::Errors, errors as f64),
        (Fleet::ServerCpuPctOfCore, max(&cpu)),
        (Fleet::ServerRssMib, max(&rss)),
        (Fleet::LoadgenCpuPctOfCore, loadgen_pct),
    ] {
        results.record(Metric::Fleet(store, figure), value, String::new());
    }
}
