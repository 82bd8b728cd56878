//! Real processes with names no other program on the machine uses, so that a test's
//! expectations do not depend on what else happens to run on the host.
//!
//! A process's name (`process.executable.name`) comes from the file it was started from,
//! so each fixture copies the system `sleep` binary under a fresh, short name (Linux keeps
//! 15 bytes of it) into a temporary directory and starts it from there.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Processes started under test-owned names; all are killed when this is dropped.
#[derive(Debug)]
pub struct NamedProcesses {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl NamedProcesses {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
            children: Vec::new(),
        }
    }

    /// A name unique to this run: `prefix` (at most 6 bytes) and 8 random hex digits.
    pub fn unique_name(prefix: &str) -> String {
        assert!(prefix.len() <= 6, "Linux keeps 15 bytes of a process name");
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{prefix}{}", &id[..8])
    }

    /// Starts `count` sleeping processes named `name`.
    pub fn spawn(&mut self, name: &str, count: usize) {
        let exe = self.executable(name);
        for _ in 0..count {
            let child = Command::new(&exe)
                .arg("900")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("the copied sleep binary starts");
            self.children.push(child);
        }
    }

    /// Stops every process started so far and starts `count` new ones named `name`: the
    /// same executable under new process ids (a restarted service, a short-lived job).
    pub fn replace(&mut self, name: &str, count: usize) {
        for mut child in self.children.drain(..) {
            let _ = child.start_kill();
        }
        self.spawn(name, count);
    }

    /// Starts enough sleeping processes named `name` for the agent to see at least `total`
    /// processes on the host (a quiet container may run only a handful), and returns how
    /// many it started.
    pub fn fill_host_to(&mut self, name: &str, total: usize) -> usize {
        let running = count_processes();
        let missing = total.saturating_sub(running);
        self.spawn(name, missing);
        missing
    }

    fn executable(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if !path.exists() {
            std::fs::copy(sleep_binary(), &path).expect("copy the sleep binary");
        }
        path
    }
}

fn sleep_binary() -> &'static Path {
    ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a sleep binary in /usr/bin or /bin")
}

/// The processes the agent's `process` receiver sees on this host right now (kernel
/// threads and threads are not processes to it, though `/proc` lists them).
pub fn count_processes() -> usize {
    phoenix_agent::host::HostProbe::new().scan().processes.len()
}
