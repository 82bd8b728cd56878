//! The checked-in test corpus (`phoenix-core/testdata`), for tests.

use serde::Deserialize;

use super::exposition::sample_from_exposition;
use super::sample::{ProcessRecord, Sample};

/// One host's processes at one instant, as stored in `testdata/processes/*.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct HostFile {
    pub(crate) taken_at_ms: i64,
    pub(crate) processes: Vec<ProcessRecord>,
}

/// The process hosts of the corpus with the critical processes an operator of each would name.
pub(crate) const HOSTS: [(&str, &str, &[&str]); 3] = [
    (
        "web-01",
        include_str!("../../testdata/processes/web-01.json"),
        &["nginx", "sshd", "kubelet", "otelcol-contrib"],
    ),
    (
        "db-01",
        include_str!("../../testdata/processes/db-01.json"),
        &["patroni", "pgbouncer", "sshd"],
    ),
    (
        "ci-runner-01",
        include_str!("../../testdata/processes/ci-runner-01.json"),
        &["gitlab-runner", "dockerd", "sshd"],
    ),
];

/// web-01 ten seconds after `HOSTS[0]` (short-lived PIDs replaced).
pub(crate) const WEB_01_NEXT: &str = include_str!("../../testdata/processes/web-01-next.json");

/// A node_exporter exposition.
pub(crate) const NODE_EXPORTER: &str = include_str!("../../testdata/prometheus/node_exporter.prom");

pub(crate) fn parse_host(json: &str) -> HostFile {
    serde_json::from_str(json).expect("corpus file parses")
}

pub(crate) fn host_sample(json: &str) -> Sample {
    let file = parse_host(json);
    Sample::from_processes(file.taken_at_ms, &file.processes)
}

pub(crate) fn node_exporter_sample() -> Sample {
    sample_from_exposition(
        NODE_EXPORTER,
        1_767_225_600_000,
        [
            ("service.name", "node"),
            ("service.instance.id", "web-01:9100"),
        ],
    )
    .expect("corpus exposition parses")
}
