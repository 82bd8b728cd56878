//! What a simulated agent sends: this machine's processes, measured as the agent measures
//! them (the agent's host probe, the built-in `baseline` and `topk` templates evaluated by
//! the pipeline engine), so request bodies have the size and shape of a real agent's.

use std::time::Instant;

use chrono::Utc;
use phoenix_agent::host::HostProbe;
use phoenix_client::api::measure::{
    CardinalitySnapshot, HostStats, MeasurementSample, VariantStats,
};
use phoenix_core::ids::AgentId;
use phoenix_core::pipeline::{Engine, PipelineRef, RenderContext, Sample, TemplateRegistry};
use uuid::Uuid;

/// One host's measurement and snapshot, reused by every simulated agent.
pub(crate) struct HostPayload {
    baseline: VariantStats,
    candidate: VariantStats,
    host: HostStats,
    snapshot: phoenix_core::measure::CardinalitySnapshot,
    /// Series in the snapshot.
    pub(crate) snapshot_series: usize,
}

impl HostPayload {
    /// Scans this machine's processes (twice, so CPU utilisation is known) and evaluates
    /// both pipelines on the sample.
    pub(crate) fn read() -> Self {
        let mut probe = HostProbe::new();
        let _ = probe.scan();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let scan = probe.scan();
        let sample = Sample::from_processes(Utc::now().timestamp_millis(), &scan.processes);
        let registry = TemplateRegistry::builtin();
        let stats = |template: &str| -> VariantStats {
            let rendered = registry
                .render(&PipelineRef::new(template), &RenderContext::default())
                .expect("render a built-in template");
            let mut engine = Engine::new(rendered.spec);
            let started = Instant::now();
            let mut stats = engine.evaluate(&sample).stats;
            stats.eval_nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.into()
        };
        let baseline = stats("baseline");
        let candidate = stats("topk");
        let host = probe.host_stats(Some(scan.processes.len() as u64)).into();
        let series = sample.snapshot_series();
        let mut snapshot = phoenix_core::measure::CardinalitySnapshot {
            agent_id: AgentId::new(),
            source: phoenix_core::measure::SnapshotSource::Input,
            host: String::new(),
            taken_at: Utc::now(),
            interval_secs: 60,
            series,
        };
        // As the agent's reporter does before sending (command lines become free text).
        phoenix_core::inputs::fit_snapshot(&mut snapshot);
        Self {
            baseline,
            candidate,
            host,
            snapshot_series: snapshot.series.len(),
            snapshot,
        }
    }

    /// The sample an agent sends for one interval of an experiment.
    pub(crate) fn sample(
        &self,
        experiment: Uuid,
        agent: Uuid,
        seq: u64,
        interval_secs: u32,
    ) -> MeasurementSample {
        MeasurementSample {
            experiment_id: experiment,
            agent_id: agent,
            seq,
            taken_at: Utc::now(),
            interval_secs,
            baseline: self.baseline.clone(),
            candidate: self.candidate.clone(),
            host: self.host.clone(),
            queries: None,
        }
    }

    /// The host's cardinality snapshot, as agent `agent` on host `host` sends it.
    pub(crate) fn snapshot(&self, agent: Uuid, host: &str) -> CardinalitySnapshot {
        let mut snapshot = self.snapshot.clone();
        snapshot.agent_id = AgentId(agent);
        snapshot.host = host.to_owned();
        snapshot.taken_at = Utc::now();
        snapshot.into()
    }
}
