//! What the agent reads from the operating system: every process (the `process` receiver)
//! and host figures (CPU, memory, process count, the agent's own CPU and RSS).
//!
//! Processes are read with `sysinfo`. Two figures the Collector's hostmetrics process
//! scraper reports are not in `sysinfo`'s model, so on Linux they are read from
//! `/proc/<pid>/stat` next to it: CPU time split by state (`utime`, `stime` and
//! `delayacct_blkio_ticks`, the scraper's `user`, `system` and `wait`). Elsewhere the whole
//! accumulated CPU time is reported as `user`.
//!
//! Threads (`sysinfo` lists Linux tasks as processes) and kernel threads are skipped, as
//! the scraper skips them.

use std::collections::HashMap;
use std::time::Instant;

use phoenix_core::measure::HostStats;
use phoenix_core::pipeline::ProcessRecord;
use phoenix_core::pipeline::sample::CpuStates;
use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
    UpdateKind, Users,
};

/// Reads processes and host figures. Not `Sync`: one owner calls it (behind a mutex), from a
/// blocking thread, because every refresh reads `/proc`.
#[derive(Debug)]
pub struct HostProbe {
    system: System,
    users: Users,
    users_refreshed: Instant,
    cores: f64,
    /// Previous CPU times per pid (with the process start time, so a reused pid is a new
    /// process) and when they were read: the base of `process.cpu.utilization`.
    previous: HashMap<u32, (u64, CpuStates)>,
    previous_at: Option<Instant>,
    own_pid: Pid,
    own_cpu: Option<(Instant, f64)>,
    #[cfg(target_os = "linux")]
    ticks_per_second: f64,
}

/// One read of every process.
#[derive(Debug, Clone)]
pub struct ProcessScan {
    /// The processes, in pid order.
    pub processes: Vec<ProcessRecord>,
    /// True when `process.cpu.utilization` could be computed (there was a previous scan).
    pub has_utilization: bool,
}

impl Default for HostProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl HostProbe {
    /// A probe; the first [`scan`](Self::scan) has no CPU utilisation yet.
    #[must_use]
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_list(CpuRefreshKind::nothing());
        let cores = system.cpus().len().max(1);
        #[allow(clippy::cast_precision_loss, reason = "core counts are small")]
        let cores = cores as f64;
        Self {
            system,
            users: Users::new_with_refreshed_list(),
            users_refreshed: Instant::now(),
            cores,
            previous: HashMap::new(),
            previous_at: None,
            own_pid: Pid::from_u32(std::process::id()),
            own_cpu: None,
            #[cfg(target_os = "linux")]
            ticks_per_second: {
                #[allow(clippy::cast_precision_loss, reason = "a tick rate such as 100")]
                let t = rustix::param::clock_ticks_per_second() as f64;
                if t > 0.0 { t } else { 100.0 }
            },
        }
    }

    /// Logical cores.
    #[must_use]
    pub fn cores(&self) -> f64 {
        self.cores
    }

    /// Reads every process the way the hostmetrics process scraper reports them.
    pub fn scan(&mut self) -> ProcessScan {
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_disk_usage()
            .with_exe(UpdateKind::OnlyIfNotSet)
            .with_cmd(UpdateKind::OnlyIfNotSet)
            .with_user(UpdateKind::OnlyIfNotSet);
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        let now = Instant::now();
        let elapsed = self
            .previous_at
            .map(|t| now.duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        if self.users_refreshed.elapsed().as_secs() > 300 {
            self.users.refresh();
            self.users_refreshed = now;
        }
        let mut next = HashMap::with_capacity(self.previous.len().max(64));
        let mut processes = Vec::with_capacity(self.system.processes().len());
        for (pid, p) in self.system.processes() {
            if p.thread_kind().is_some() {
                continue;
            }
            let pid = pid.as_u32();
            let cpu_time = self.cpu_time(pid, p.accumulated_cpu_time());
            let key = p.start_time();
            let cpu_utilization = match (elapsed, self.previous.get(&pid)) {
                (Some(secs), Some((start, before))) if *start == key => {
                    let per = |now: f64, then: f64| (now - then).max(0.0) / secs / self.cores;
                    Some(within_one(CpuStates {
                        user: per(cpu_time.user, before.user),
                        system: per(cpu_time.system, before.system),
                        wait: cpu_time
                            .wait
                            .zip(before.wait)
                            .map(|(now, then)| per(now, then)),
                    }))
                }
                (Some(_), _) => Some(CpuStates {
                    wait: cpu_time.wait.map(|_| 0.0),
                    ..CpuStates::default()
                }),
                (None, _) => None,
            };
            next.insert(pid, (key, cpu_time));
            let cmd: Vec<String> = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let disk = p.disk_usage();
            processes.push(ProcessRecord {
                pid,
                parent_pid: p.parent().map(Pid::as_u32),
                executable_name: p.name().to_string_lossy().into_owned(),
                executable_path: p.exe().map(|e| e.to_string_lossy().into_owned()),
                command: cmd.first().cloned(),
                command_line: (!cmd.is_empty()).then(|| cmd.join(" ")),
                owner: p
                    .user_id()
                    .and_then(|uid| self.users.get_user_by_id(uid))
                    .map(|u| u.name().to_owned()),
                cpu_time,
                cpu_utilization,
                memory_usage_bytes: p.memory(),
                memory_virtual_bytes: p.virtual_memory(),
                disk_read_bytes: Some(disk.total_read_bytes),
                disk_write_bytes: Some(disk.total_written_bytes),
                threads: None,
                open_file_descriptors: None,
            });
        }
        processes.sort_unstable_by_key(|p| p.pid);
        let has_utilization = elapsed.is_some();
        self.previous = next;
        self.previous_at = Some(now);
        ProcessScan {
            processes,
            has_utilization,
        }
    }

    /// CPU seconds by state.
    #[cfg(target_os = "linux")]
    fn cpu_time(&self, pid: u32, accumulated_ms: u64) -> CpuStates {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => parse_proc_stat(&stat, self.ticks_per_second)
                .unwrap_or_else(|| total_as_user(accumulated_ms)),
            Err(_) => total_as_user(accumulated_ms),
        }
    }

    /// CPU seconds by state.
    #[cfg(not(target_os = "linux"))]
    fn cpu_time(&self, _pid: u32, accumulated_ms: u64) -> CpuStates {
        total_as_user(accumulated_ms)
    }

    /// Host figures, with the agent's own CPU (since the previous call) and RSS.
    pub fn host_stats(&mut self, process_count: Option<u64>) -> HostStats {
        self.system
            .refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let own = [self.own_pid];
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&own),
            false,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let agent_rss_bytes = self.system.process(self.own_pid).map_or(0, |p| p.memory());
        let process_count = process_count.unwrap_or_else(|| {
            self.system
                .processes()
                .values()
                .filter(|p| p.thread_kind().is_none())
                .count() as u64
        });
        HostStats {
            cpu_pct: f64::from(self.system.global_cpu_usage()),
            memory_used_bytes: self.system.used_memory(),
            memory_total_bytes: self.system.total_memory(),
            process_count,
            agent_cpu_pct: self.own_cpu_pct(),
            agent_rss_bytes,
        }
    }

    /// The agent's CPU since the previous call, percent of one core, from `getrusage`.
    fn own_cpu_pct(&mut self) -> f64 {
        let now = Instant::now();
        let used = own_cpu_seconds();
        let pct = match self.own_cpu {
            Some((then, before)) => {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    100.0 * (used - before).max(0.0) / wall
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.own_cpu = Some((now, used));
        pct
    }
}

/// User plus system CPU seconds this process used so far (all threads).
#[must_use]
pub fn own_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    #[allow(clippy::cast_precision_loss, reason = "seconds of CPU time")]
    let secs = t.tv_sec as f64 + t.tv_nsec as f64 / 1e9;
    secs
}

/// Another process's CPU (user plus system seconds so far) and resident set size (bytes),
/// from `/proc/<pid>/stat` and `/proc/<pid>/statm`; `None` when it is gone or not on Linux.
#[must_use]
pub fn process_cpu_and_rss(pid: u32) -> Option<(f64, u64)> {
    #[cfg(target_os = "linux")]
    {
        #[allow(clippy::cast_precision_loss, reason = "ticks per second is small")]
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let cpu = parse_proc_stat(&stat, ticks)?;
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let page = u64::try_from(rustix::param::page_size()).ok()?;
        Some((cpu.user + cpu.system, pages * page))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// CPU nanoseconds the calling thread used so far (for per-variant evaluation cost).
#[must_use]
pub fn thread_cpu_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

fn total_as_user(accumulated_ms: u64) -> CpuStates {
    #[allow(clippy::cast_precision_loss, reason = "milliseconds of CPU time")]
    let user = accumulated_ms as f64 / 1000.0;
    CpuStates {
        user,
        system: 0.0,
        wait: None,
    }
}

/// `utime`, `stime` and `delayacct_blkio_ticks` of a `/proc/<pid>/stat` line, in seconds.
/// The command field may contain spaces and parentheses, so fields are counted from the
/// last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code, reason = "Linux only"))]
fn parse_proc_stat(stat: &str, ticks_per_second: f64) -> Option<CpuStates> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "tick counts")]
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / ticks_per_second)
    };
    Some(CpuStates {
        user: field(14)?,
        system: field(15)?,
        wait: field(42),
    })
}

/// `process.cpu.utilization` is a share of the host's CPU time: at most 1 in total. CPU times
/// come in clock ticks (10 ms) read a little apart from the wall clock, so over a short
/// interval a busy process can appear above 1; the states are scaled back together.
fn within_one(states: CpuStates) -> CpuStates {
    let total = states.total();
    if total <= 1.0 {
        return states;
    }
    CpuStates {
        user: states.user / total,
        system: states.system / total,
        wait: states.wait.map(|w| w / total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_and_parens_in_the_command() {
        let line = "4242 (we ird) (name)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 12345 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 7 0 0 0 0 0 0 0 0 0 0";
        let cpu = parse_proc_stat(line, 100.0).unwrap();
        assert!((cpu.user - 2.5).abs() < 1e-9);
        assert!((cpu.system - 0.5).abs() < 1e-9);
        assert_eq!(cpu.wait, Some(0.07));
        assert_eq!(parse_proc_stat("garbage", 100.0), None);
        assert_eq!(parse_proc_stat("1 (x) S 1 2", 100.0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_another_process_cpu_and_rss() {
        let (cpu, rss) = process_cpu_and_rss(std::process::id()).unwrap();
        assert!(cpu >= 0.0 && rss > 1024 * 1024, "{cpu} {rss}");
        assert_eq!(process_cpu_and_rss(u32::MAX), None);
    }

    #[test]
    fn scans_real_processes_including_this_one() {
        let mut probe = HostProbe::new();
        let first = probe.scan();
        assert!(!first.has_utilization);
        let me = first
            .processes
            .iter()
            .find(|p| p.pid == std::process::id())
            .expect("the test process is listed");
        assert!(me.memory_usage_bytes > 0);
        assert!(me.cpu_utilization.is_none());
        // Burn CPU for 200 ms so the second scan has something to measure.
        let mut x = 0u64;
        let burn = std::time::Instant::now();
        while burn.elapsed() < std::time::Duration::from_millis(200) {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        assert_ne!(x, 1);
        let second = probe.scan();
        assert!(second.has_utilization);
        let me = second
            .processes
            .iter()
            .find(|p| p.pid == std::process::id())
            .unwrap();
        let u = me.cpu_utilization.unwrap();
        assert!(u.total() > 0.0 && u.total() <= 1.0, "{u:?}");
        // No thread of this (multi-threaded) test binary is listed as a process.
        let pids: std::collections::HashSet<u32> = second.processes.iter().map(|p| p.pid).collect();
        assert_eq!(pids.len(), second.processes.len());
        let stats = probe.host_stats(Some(second.processes.len() as u64));
        assert!(stats.memory_total_bytes >= stats.memory_used_bytes);
        assert!(stats.agent_rss_bytes > 0);
    }

    #[test]
    fn utilization_never_exceeds_the_whole_host() {
        let over = within_one(CpuStates {
            user: 0.84,
            system: 0.19,
            wait: Some(0.0),
        });
        assert!((over.total() - 1.0).abs() < 1e-12, "{over:?}");
        assert!(over.user > over.system);
        let fine = CpuStates {
            user: 0.5,
            system: 0.1,
            wait: None,
        };
        assert_eq!(within_one(fine), fine);
    }
}
