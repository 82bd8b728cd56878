//! The agent's overhead on the product path, side by side with a peer; results go to
//! `docs/benchmarks.md` (between the `bench-agent` markers of `## Agent overhead`).
//!
//! Run: `scripts/bench-agent` (installs the peer from Debian when missing, builds in
//! release, runs this).
//!
//! Each repetition starts, as separate processes: the real `phoenix-server` (memory
//! store), the real `phoenix-agent` binary enrolled against it over HTTP, and Debian's
//! `prometheus-process-exporter` twice (every process in a group of its own, and every
//! process grouped by name). An experiment (`baseline` against `topk`, K=10, sampled every
//! interval) is created and started through the API, so the agent samples the host's
//! processes, evaluates both pipelines, heartbeats and reports to the server as in
//! production. `sleep` children bring the host to a known number of processes. This
//! process then scrapes the agent's `/metrics/baseline` and `/metrics/candidate` and each
//! exporter's `/metrics` at the same instants, once per interval, and over the same window
//! reads every process's CPU time (`utime + stime` from `/proc/<pid>/stat`) and RSS
//! (`VmRSS` every second, `VmHWM` at the end).
//!
//! `PHOENIX_BENCH_REPS` repetitions (3 by default), each with fresh processes; the section
//! states min, median and max, the machine and peer version read at run time, the load
//! average before and after, and verdicts computed from the medians against the one
//! `TARGETS` table. `PHOENIX_BENCH_WINDOW_SECS` (120), `PHOENIX_BENCH_INTERVAL_SECS` (10)
//! and `PHOENIX_BENCH_PROCESSES` (300) set the configuration; `PHOENIX_BENCH_NO_WRITE=1`
//! prints the section without touching the docs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_bench::{Bound, Machine, Report, Target, write_generated};
use phoenix_client::{AgentQuery, Client};
use phoenix_core::experiment::ExperimentSpec;
use phoenix_core::pipeline::{ParamValue, PipelineRef};

const ADMIN: &str = "phx_user_bench-admin-0123456789abcdef";
const ENROLL: &str = "bench-enrollment-0123456789";
const PEER: &str = "prometheus-process-exporter";

/// The processes measured, in the order of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Agent,
    ExporterPerProcess,
    ExporterPerName,
    Server,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Self::Agent => "phoenix-agent",
            Self::ExporterPerProcess => "process-exporter, a group per process",
            Self::ExporterPerName => "process-exporter, a group per name",
            Self::Server => "phoenix-server (control plane, for context)",
        }
    }
}

/// One measured figure of one repetition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    /// CPU time over the window per wall second, % of one core.
    CpuPct(Who),
    /// The agent's CPU over this exporter's, same window.
    CpuRatio(Who),
    /// Largest `VmRSS` sampled each second of the window, MiB.
    RssMaxMib(Who),
    /// `VmHWM` (peak RSS since the process started) at the end of the window, MiB.
    PeakRssMib(Who),
    /// The agent's peak RSS over this exporter's.
    PeakRssRatio(Who),
    /// Series in one scrape (agent: baseline and candidate together).
    Series(Who),
    /// Bytes of one scrape, KiB.
    ScrapeKib(Who),
}

impl Metric {
    fn describe(self) -> String {
        match self {
            Self::CpuPct(w) => format!("{} CPU (% of one core)", w.name()),
            Self::CpuRatio(w) => format!("agent CPU / {} CPU", w.name()),
            Self::RssMaxMib(w) => {
                format!("{} RSS, largest 1 s sample in the window (MiB)", w.name())
            }
            Self::PeakRssMib(w) => format!("{} peak RSS, `VmHWM` since start (MiB)", w.name()),
            Self::PeakRssRatio(w) => format!("agent peak RSS / {} peak RSS", w.name()),
            Self::Series(Who::Agent) => {
                "phoenix-agent series per scrape (`/metrics/baseline` + `/metrics/candidate`)"
                    .to_owned()
            }
            Self::Series(w) => format!("{} series per scrape", w.name()),
            Self::ScrapeKib(Who::Agent) => {
                "phoenix-agent exposition per scrape, both documents (KiB)".to_owned()
            }
            Self::ScrapeKib(w) => format!("{} exposition per scrape (KiB)", w.name()),
        }
    }
}

/// MiB in `mb` megabytes (10^6 bytes): the design states RSS targets in MB.
const fn mb_in_mib(mb: f64) -> f64 {
    mb * 1_000_000.0 / 1_048_576.0
}

/// The targets, in one table (design section 6 and its second wave, 6.1). A verdict is
/// computed from the median of the repetitions against these, never written.
static TARGETS: [Target; 4] = [
    Target {
        id: "cpu",
        bound: Bound::Below(1.0),
        text: "< 1 % of a core, design 6",
    },
    Target {
        id: "cpu-ratio",
        bound: Bound::AtMost(0.1),
        text: "<= 0.1x the exporter's CPU, design 6.1",
    },
    Target {
        id: "rss",
        bound: Bound::Below(mb_in_mib(30.0)),
        text: "< 30 MB, design 6",
    },
    Target {
        id: "rss-second-wave",
        bound: Bound::Below(mb_in_mib(10.0)),
        text: "< 10 MB, design 6.1",
    },
];

impl Metric {
    /// The targets this figure is checked against.
    fn targets(self) -> Vec<&'static Target> {
        let ids: &[&str] = match self {
            Self::CpuPct(Who::Agent) => &["cpu"],
            Self::CpuRatio(Who::ExporterPerProcess | Who::ExporterPerName) => &["cpu-ratio"],
            Self::PeakRssMib(Who::Agent) => &["rss", "rss-second-wave"],
            _ => &[],
        };
        ids.iter().map(|id| Target::find(&TARGETS, id)).collect()
    }

    fn decimals(self) -> usize {
        match self {
            Self::Series(_) => 0,
            Self::CpuPct(_) | Self::CpuRatio(_) | Self::PeakRssRatio(_) => 3,
            _ => 1,
        }
    }
}

/// Every repetition's figures, and the detail lines worth showing beside them.
#[derive(Default)]
struct Results {
    figures: BTreeMap<Metric, Vec<f64>>,
    details: Vec<String>,
}

impl Results {
    fn record(&mut self, metric: Metric, value: f64) {
        println!("{metric:?}: {value:.3}");
        self.figures.entry(metric).or_default().push(value);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A child process killed (and reaped) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(cmd: &mut Command, what: &str) -> Self {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    #[allow(clippy::cast_precision_loss, reason = "clock ticks")]
    let secs = (utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64;
    secs
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[allow(clippy::cast_precision_loss, reason = "KiB of a process")]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Processes with a command line (kernel threads have none; neither the agent nor the
/// exporter as configured here reports them), and every `/proc` entry.
fn count_processes() -> (usize, usize) {
    let mut user = 0;
    let mut all = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        all += 1;
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| !c.is_empty()) {
            user += 1;
        }
    }
    (user, all)
}

/// Series (sample lines) in a Prometheus text exposition.
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// The exporter's configuration: every process with a command line, grouped by `name`.
fn exporter_config(dir: &Path, file: &str, name: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!("process_names:\n  - name: \"{name}\"\n    cmdline:\n      - \".+\"\n"),
    )
    .expect("write exporter config");
    path
}

/// The exporter groupings measured: (who, config file, group name template).
const GROUPINGS: [(Who, &str, &str); 2] = [
    (
        Who::ExporterPerProcess,
        "per-process.yml",
        "{{.Comm}}:{{.PID}}",
    ),
    (Who::ExporterPerName, "per-name.yml", "{{.Comm}}"),
];

struct Config {
    window: Duration,
    interval: Duration,
}

/// Scrapes every endpoint at once; returns (series, bytes) per subject.
async fn scrape_all(
    http: &reqwest::Client,
    targets: &[(Who, Vec<String>)],
) -> Vec<(Who, usize, usize)> {
    let scrapes = targets.iter().map(|(who, urls)| async move {
        let mut n = 0;
        let mut bytes = 0;
        for url in urls {
            let text = http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .unwrap_or_else(|e| panic!("scrape {url}: {e}"))
                .text()
                .await
                .unwrap_or_else(|e| panic!("scrape {url}: {e}"));
            n += series(&text);
            bytes += text.len();
        }
        (*who, n, bytes)
    });
    futures::future::join_all(scrapes).await
}

/// Idle `sleep` children bring the host to `processes` processes with a command line;
/// the agent and the exporters see the same processes. Other work on the machine may end
/// processes meanwhile, so this runs again before each window.
fn top_up(processes: usize, fillers: &mut Vec<Proc>) {
    while count_processes().0 < processes {
        fillers.push(Proc::spawn(
            Command::new("sleep").arg("100000"),
            "sleep filler",
        ));
    }
}

async fn repetition(
    results: &mut Results,
    config: &Config,
    rep: usize,
    processes: usize,
    fillers: &mut Vec<Proc>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    let secs = config.interval.as_secs();

    let server_port = free_port();
    let base = format!("http://127.0.0.1:{server_port}");
    let server = Proc::spawn(
        Command::new(exe.with_file_name("phoenix-server")).args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{server_port}"),
            "--store",
            "memory:",
            "--admin-token",
            ADMIN,
            "--enrollment-token",
            ENROLL,
            "--log",
            "warn",
        ]),
        "phoenix-server (build it in release first)",
    );
    let admin = Client::new(&base).expect("client").with_token(ADMIN);
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.readyz().await.is_err() {
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let agent_port = free_port();
    let agent = Proc::spawn(
        Command::new(exe.with_file_name("phoenix-agent"))
            .args([
                "--server",
                &base,
                "--enrollment-token",
                ENROLL,
                "--state-dir",
                &dir.path().join("agent").to_string_lossy(),
                "--listen",
                &format!("127.0.0.1:{agent_port}"),
                "--host-name",
                "bench-host",
            ])
            .env("RUST_LOG", "warn"),
        "phoenix-agent (build it in release first)",
    );

    // The exporters start with the agent, so each one's peak RSS covers the same life.
    let mut exporters = Vec::new();
    for (who, file, name) in GROUPINGS {
        let port = free_port();
        let config_path = exporter_config(dir.path(), file, name);
        let proc = Proc::spawn(
            Command::new(PEER).args([
                "-config.path",
                &config_path.to_string_lossy(),
                "-web.listen-address",
                &format!("127.0.0.1:{port}"),
            ]),
            "prometheus-process-exporter (scripts/bench-agent installs it)",
        );
        exporters.push((who, proc, format!("http://127.0.0.1:{port}/metrics")));
    }

    // The agent enrolls and heartbeats; then the experiment is created and started through
    // the API, and the server's controller hands the agent its deploy task.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = admin.list_agents(&AgentQuery::default()).await;
        if page.is_ok_and(|p| !p.items.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not enroll");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let interval_param = ParamValue::String(format!("{secs}s"));
    let mut spec = ExperimentSpec::new(
        PipelineRef::new("baseline").with_param("collection_interval", interval_param.clone()),
        PipelineRef::new("topk")
            .with_param("k", ParamValue::Int(10))
            .with_param("collection_interval", interval_param),
        // Runs past the end of the repetition.
        config.window.as_secs() + 3600,
    );
    spec.sample_interval_secs = u32::try_from(secs).expect("interval");
    spec.critical_processes = vec!["phoenix-agent".to_owned()];
    let experiment = admin
        .create_experiment(&phoenix_client::api::experiment::NewExperiment {
            name: format!("agent overhead, repetition {rep}"),
            description: "scripts/bench-agent".to_owned(),
            spec: spec.into(),
        })
        .await
        .expect("create experiment");
    admin
        .start_experiment(experiment.id)
        .await
        .expect("start experiment");

    let http = reqwest::Client::new();
    let agent_base = format!("http://127.0.0.1:{agent_port}");
    let baseline_url = format!("{agent_base}/metrics/baseline");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let served = match http.get(&baseline_url).send().await {
            Ok(r) if r.status().is_success() => r.text().await.map_or(0, |t| series(&t)),
            _ => 0,
        };
        if served > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not serve the deployed baseline within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut targets = vec![(
        Who::Agent,
        vec![
            baseline_url.clone(),
            format!("{agent_base}/metrics/candidate"),
        ],
    )];
    for (who, _, url) in &exporters {
        targets.push((*who, vec![url.clone()]));
    }
    let mut pids = vec![(Who::Agent, agent.pid()), (Who::Server, server.pid())];
    pids.extend(exporters.iter().map(|(who, p, _)| (*who, p.pid())));

    // Warm-up: two scrape rounds (the agent's first scan has no CPU utilisation, the
    // exporters build their process tables), not measured.
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..2 {
        tick.tick().await;
        scrape_all(&http, &targets).await;
    }

    // The window: exactly `rounds` scrape rounds, CPU read just before the first and just
    // before the one after the last.
    let rounds = (config.window.as_secs() / secs).max(1);
    tick.tick().await;
    top_up(processes, fillers);
    let (user_procs, all_procs) = count_processes();
    let mut seen_min = user_procs;
    let mut seen_max = user_procs;
    let cpu0: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let t0 = Instant::now();
    let mut rss_max: BTreeMap<Who, u64> = BTreeMap::new();
    let mut last = Vec::new();
    let sample_rss = |rss_max: &mut BTreeMap<Who, u64>| {
        for (who, pid) in &pids {
            let rss = status_kib(*pid, "VmRSS");
            let slot = rss_max.entry(*who).or_default();
            *slot = (*slot).max(rss);
        }
    };
    for round in 0..rounds {
        if round > 0 {
            tick.tick().await;
        }
        last = scrape_all(&http, &targets).await;
        // RSS once a second until the next round.
        let next = t0 + config.interval * u32::try_from(round + 1).expect("rounds");
        while Instant::now() + Duration::from_secs(1) < next {
            sample_rss(&mut rss_max);
            let (now, _) = count_processes();
            seen_min = seen_min.min(now);
            seen_max = seen_max.max(now);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sample_rss(&mut rss_max);
    }
    tick.tick().await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu1: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let hwm: BTreeMap<Who, u64> = pids
        .iter()
        .map(|(who, pid)| (*who, status_kib(*pid, "VmHWM")))
        .collect();
    let cpu: BTreeMap<Who, f64> = pids
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
        .map(|((who, _), (a, b))| (*who, 100.0 * (b - a) / wall))
        .collect();

    for (who, pct) in &cpu {
        results.record(Metric::CpuPct(*who), *pct);
    }
    for (who, kib) in &rss_max {
        results.record(Metric::RssMaxMib(*who), mib(*kib));
    }
    for (who, kib) in &hwm {
        results.record(Metric::PeakRssMib(*who), mib(*kib));
    }
    for (who, _, _) in &exporters {
        results.record(Metric::CpuRatio(*who), cpu[&Who::Agent] / cpu[who]);
        #[allow(clippy::cast_precision_loss, reason = "KiB of a process")]
        let ratio = hwm[&Who::Agent] as f64 / hwm[who] as f64;
        results.record(Metric::PeakRssRatio(*who), ratio);
    }
    for (who, n, bytes) in &last {
        #[allow(clippy::cast_precision_loss, reason = "counts")]
        {
            results.record(Metric::Series(*who), *n as f64);
            results.record(Metric::ScrapeKib(*who), *bytes as f64 / 1024.0);
        }
    }
    let line = |who: Who| {
        format!(
            "{} {:.3} % CPU, peak RSS {:.1} MiB",
            who.name(),
            cpu[&who],
            mib(hwm[&who])
        )
    };
    results.details.push(format!(
        "repetition {rep}: {rounds} scrape rounds in {wall:.1} s, {user_procs} processes with a \
command line at its start ({all_procs} `/proc` entries), {seen_min} to {seen_max} during it; {}; {}; {}; {}",
        line(Who::Agent),
        line(Who::ExporterPerProcess),
        line(Who::ExporterPerName),
        line(Who::Server),
    ));
    drop(exporters);
    drop(agent);
    drop(server);
}

/// The peer's version as Debian's package database states it.
fn peer_version() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", PEER])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .map_or_else(
            || format!("{PEER} (version not found by dpkg-query)"),
            |v| format!("Debian `{PEER}` {v}"),
        )
}

fn render_section(
    results: &Results,
    machine: &Machine,
    config: &Config,
    processes: usize,
    reps: usize,
) -> String {
    let mut report = Report::new();
    for (metric, values) in &results.figures {
        report.row(
            metric.describe(),
            values.clone(),
            metric.decimals(),
            &metric.targets(),
        );
    }
    let mut out = format!(
        "{machine}\n\nThe peer runs at its defaults (threads and smaps gathered) with a \
`-config.path` file matching every process with a command line (`cmdline: [\".+\"]`), once \
with group name `{{{{.Comm}}}}:{{{{.PID}}}}` (a group per process, as the agent reports a \
series set per process) and once with `{{{{.Comm}}}}` (a group per name). Configuration: \
the host topped up with idle `sleep` processes to at least {processes} processes with a \
command line at the start of each window (other work on the machine starts and ends \
processes during it: each repetition's line gives the count); agent sampling every \
{interval} s (experiment `baseline` vs `topk` K=10, started through the API); every \
{interval} s the bench scrapes the agent's two documents and each exporter's `/metrics` at \
the same instant; window {window} s ({rounds} scrape rounds) after two unmeasured rounds; \
{reps} repetitions, each with fresh processes.\n\n{table}",
        machine = machine.describe(),
        interval = config.interval.as_secs(),
        window = config.window.as_secs(),
        rounds = (config.window.as_secs() / config.interval.as_secs()).max(1),
        table = report.render(),
    );
    out.push_str("\nEach repetition:\n\n");
    for d in &results.details {
        out.push_str(&format!("- {d}\n"));
    }
    out
}

fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let reps = usize::try_from(env_u64("PHOENIX_BENCH_REPS", 3).max(1)).expect("reps");
    let processes = usize::try_from(env_u64("PHOENIX_BENCH_PROCESSES", 300)).expect("count");
    let config = Config {
        window: Duration::from_secs(env_u64("PHOENIX_BENCH_WINDOW_SECS", 120)),
        interval: Duration::from_secs(env_u64("PHOENIX_BENCH_INTERVAL_SECS", 10).max(1)),
    };
    let mut machine = Machine::read();
    machine.with_peer(peer_version());
    let mut fillers = Vec::new();
    let mut results = Results::default();
    for rep in 1..=reps {
        println!("repetition {rep} of {reps}");
        repetition(&mut results, &config, rep, processes, &mut fillers).await;
    }
    drop(fillers);
    machine.finish();
    let section = render_section(&results, &machine, &config, processes, reps);
    print!("{section}");
    if std::env::var_os("PHOENIX_BENCH_NO_WRITE").is_none() {
        write_generated("agent", "scripts/bench-agent", &section);
    }
}
