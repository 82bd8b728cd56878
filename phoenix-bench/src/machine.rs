//! Facts about the machine and the peers, read when the benchmark runs.

use std::process::Command;

/// The machine a benchmark ran on, read from `/proc` and the peers' own clients at run time.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores available to the process.
    pub cores: usize,
    /// Total memory.
    pub memory_gib: f64,
    /// Operating system (`PRETTY_NAME` of `/etc/os-release`).
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// Rust compiler that built the benchmark (`rustc -V` at run time).
    pub rustc: String,
    /// Load average (1, 5, 15 min) when the benchmark started.
    pub load_before: String,
    /// Load average when it ended (set by [`Machine::finish`]).
    pub load_after: String,
    /// Peers' versions, e.g. "PostgreSQL 15.20", in the order they were added.
    pub peers: Vec<String>,
}

fn read_or(path: &str, default: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| default.to_owned())
}

/// The load average (1, 5, 15 min), as `/proc/loadavg` states it.
#[must_use]
pub fn load_average() -> String {
    read_or("/proc/loadavg", "unknown")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The standard output of a command that succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

impl Machine {
    /// Reads the machine's facts and the load average now.
    #[must_use]
    pub fn read() -> Self {
        let cpuinfo = read_or("/proc/cpuinfo", "");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map_or("unknown CPU", |v| v.trim_start_matches([' ', '\t', ':']))
            .to_owned();
        #[allow(clippy::cast_precision_loss, reason = "GiB for display")]
        let memory_gib = read_or("/proc/meminfo", "")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
        let os = read_or("/etc/os-release", "")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map_or_else(
                || "unknown OS".to_owned(),
                |v| v.trim_matches('"').to_owned(),
            );
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib,
            os,
            kernel: read_or("/proc/sys/kernel/osrelease", "unknown")
                .trim()
                .to_owned(),
            rustc: output("rustc", &["-V"]).map_or_else(
                || "rustc (version not read)".to_owned(),
                |v| v.trim().to_owned(),
            ),
            load_before: load_average(),
            load_after: String::new(),
            peers: Vec::new(),
        }
    }

    /// Adds the version of the PostgreSQL server at `url`, as `psql` reads it.
    pub fn with_postgres(&mut self, url: &str) -> &mut Self {
        let version = output("psql", &[url, "-Atqc", "show server_version"])
            .and_then(|out| out.lines().next().map(|l| l.trim().to_owned()));
        self.peers.push(version.map_or_else(
            || "PostgreSQL (version not read)".to_owned(),
            |v| format!("PostgreSQL {v}"),
        ));
        self
    }

    /// Adds the version of the Redis server at `url`, as `redis-cli` reads it.
    pub fn with_redis(&mut self, url: &str) -> &mut Self {
        let version = output("redis-cli", &["-u", url, "INFO", "server"]).and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(|v| v.trim().to_owned())
        });
        self.peers.push(version.map_or_else(
            || "Redis (version not read)".to_owned(),
            |v| format!("Redis {v}"),
        ));
        self
    }

    /// Adds a peer's version as the benchmark knows it (e.g. a crate's version from its
    /// lock file).
    pub fn with_peer(&mut self, peer: impl Into<String>) -> &mut Self {
        self.peers.push(peer.into());
        self
    }

    /// Records the load average at the end of the run.
    pub fn finish(&mut self) {
        self.load_after = load_average();
    }

    /// One sentence for a generated section.
    #[must_use]
    pub fn describe(&self) -> String {
        let peers = if self.peers.is_empty() {
            String::new()
        } else {
            format!(" Peers: {}.", self.peers.join("; "))
        };
        format!(
            "Machine: {cpu}, {cores} logical cores, {mem:.1} GiB RAM, {os}, Linux {kernel}, \
{rustc}; load average (1, 5, 15 min) {before} before and {after} after the run.{peers}",
            cpu = self.cpu,
            cores = self.cores,
            mem = self.memory_gib,
            os = self.os,
            kernel = self.kernel,
            rustc = self.rustc,
            before = self.load_before,
            after = self.load_after,
        )
    }
}
