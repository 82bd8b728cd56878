//! Running the real Collector on a rendered config in a test: the rendered receivers replaced
//! by an OTLP/HTTP receiver the test feeds (processors and exporters kept exactly as
//! rendered), its listeners moved to free loopback ports, and its output scraped from the
//! rendered Prometheus exporter.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A free loopback port for a Collector listener, chosen below the kernel's ephemeral
/// range (32768 and up on Linux) and never handed out twice by this process: a port
/// released by `bind(0)` can be taken again by any outgoing connection before the
/// Collector binds it (seen as "address already in use" on a loaded machine), a port out of
/// that range only by another listener.
pub fn free_port() -> u16 {
    use std::sync::{Mutex, PoisonError};
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..1000 {
        let port = rand::random_range(20_000..32_000);
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000")
}

/// `rendered` with its receivers section replaced by one `otlp` receiver (HTTP on
/// `otlp_port`) that every pipeline reads, the health check on `health_port`, and the
/// Collector's own telemetry listener off (several Collectors run at once). Processors and
/// exporters are untouched.
pub fn with_otlp_input(rendered: &str, otlp_port: u16, health_port: u16) -> String {
    let start = rendered
        .find("\nreceivers:\n")
        .expect("a receivers section");
    let end = rendered
        .find("\nprocessors:")
        .expect("a processors section");
    let mut out = String::new();
    out.push_str(&rendered[..start]);
    out.push_str(&format!(
        "\nreceivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: '127.0.0.1:{otlp_port}'\n"
    ));
    out.push_str(&rendered[end..]);
    let mut lines = Vec::new();
    for line in out.lines() {
        if let Some(indent) = line.find("receivers: [") {
            lines.push(format!("{}receivers: ['otlp']", &line[..indent]));
        } else {
            lines.push(line.to_owned());
        }
    }
    let out = lines.join("\n") + "\n";
    let out = out.replacen(
        "endpoint: 'localhost:13133'",
        &format!("endpoint: '127.0.0.1:{health_port}'"),
        1,
    );
    out.replacen(
        "\nservice:\n",
        "\nservice:\n  telemetry:\n    metrics:\n      level: none\n",
        1,
    )
}

/// `rendered` with its receivers kept (the real `hostmetrics` receiver), the health check on
/// `health_port` and the Collector's own telemetry listener off.
pub fn with_rendered_input(rendered: &str, health_port: u16) -> String {
    rendered
        .replacen(
            "endpoint: 'localhost:13133'",
            &format!("endpoint: '127.0.0.1:{health_port}'"),
            1,
        )
        .replacen(
            "\nservice:\n",
            "\nservice:\n  telemetry:\n    metrics:\n      level: none\n",
            1,
        )
}

/// A running Collector, killed when dropped.
pub struct RunningCollector {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunningCollector {
    /// Starts `binary` on `yaml` and waits until its health check on `health_port` answers.
    ///
    /// # Panics
    /// When the Collector exits or is not healthy within a minute (with its log).
    pub async fn start(binary: &Path, yaml: &str, health_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, yaml).expect("write the config");
        let log = dir.path().join("collector.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("the Collector starts");
        let mut running = Self {
            child,
            log,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!(
                    "the Collector exited ({status}) on\n{yaml}\n{}",
                    running.log()
                );
            }
            let healthy = client
                .get(format!("http://127.0.0.1:{health_port}/"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if healthy {
                return running;
            }
            assert!(
                Instant::now() < deadline,
                "the Collector did not become healthy:\n{}",
                running.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the Collector gracefully (SIGTERM: it flushes what its exporters hold) and
    /// waits for it to exit.
    ///
    /// # Panics
    /// When it does not exit within 30 seconds.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().and_then(|id| {
            rustix::process::Pid::from_raw(i32::try_from(id).expect("a pid fits i32"))
        });
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("the Collector did not stop:\n{}", self.log()))
            .expect("wait for the Collector")
    }

    /// What the Collector logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
