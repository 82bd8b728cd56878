//! The otelcol runtime's measurement side: which experiment the tap measures, its windows,
//! and the samples reported from each closed window (see the parent module's docs).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use phoenix_core::cost::churn::sample_identities;
use phoenix_core::ids::ExperimentId;
use phoenix_core::measure::{MeasurementSample, Variant, VariantStats};
use phoenix_core::pipeline::Engine;
use phoenix_core::pipeline::render::tap::TapStream;
use phoenix_core::pipeline::spec::{ReceiverSpec, Stage};
use phoenix_core::queries::{QuerySet, series_of};
use tokio::process::Child;

use super::{Inner, lock};
use crate::host::process_cpu_and_rss;
use crate::runtime::ExperimentDeployment;
use crate::runtime::tap::ClosedWindow;

/// The experiment being measured through the tap.
#[derive(Debug, Clone)]
pub(super) struct Measuring {
    pub(super) generation: u64,
    pub(super) experiment_id: ExperimentId,
    /// Measures outputs against the experiment's critical lists.
    pub(super) engine: Engine,
    /// The experiment's queries, evaluated on both outputs of every window.
    pub(super) queries: Option<Arc<QuerySet>>,
    /// Reported only once the input has CPU utilisation (the process scraper's second scrape).
    pub(super) needs_utilization: bool,
    pub(super) interval_secs: u32,
    pub(super) grace_secs: u32,
}

/// Window length and grace of an experiment: the longest receiver interval, and the
/// longest batch timeout plus two seconds.
pub(super) fn window_of(d: &ExperimentDeployment) -> (u32, u32, bool) {
    let specs = [Some(&d.baseline), d.candidate.as_ref()];
    let mut interval = 0;
    let mut batch = 0;
    let mut needs_utilization = false;
    for p in specs.into_iter().flatten() {
        for r in &p.spec.receivers {
            match r {
                ReceiverSpec::HostmetricsProcess(h) => {
                    interval = interval.max(h.collection_interval_secs);
                    needs_utilization |= h.cpu_utilization;
                }
                ReceiverSpec::Prometheus(p) => interval = interval.max(p.scrape_interval_secs),
            }
        }
        for s in &p.spec.stages {
            if let Stage::Batch(b) = s {
                batch = batch.max(b.timeout_secs);
            }
        }
    }
    let interval = if interval == 0 {
        d.sample_interval_secs.max(1)
    } else {
        interval
    };
    (interval, batch + 2, needs_utilization)
}

/// Closes due windows of the measured experiment and reports them.
pub(super) async fn measure_windows(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let (measuring, pid) = {
            let s = inner.supervised.lock().await;
            (s.measuring.clone(), s.child.as_ref().and_then(Child::id))
        };
        let Some(m) = measuring else {
            continue;
        };
        let now_ms = Utc::now().timestamp_millis();
        let closed = inner
            .tap
            .with_windows(m.generation, |w| w.close_due(now_ms))
            .unwrap_or_default();
        for window in closed {
            report_window(&inner, &m, window, pid).await;
        }
    }
}

/// The Collector's CPU (percent of one core since the previous call) and RSS.
async fn collector_usage(inner: &Inner, pid: Option<u32>) -> Option<(f64, u64)> {
    let (cpu, rss) = process_cpu_and_rss(pid?)?;
    let now = tokio::time::Instant::now();
    let mut s = inner.supervised.lock().await;
    let (then, before) = s.cpu_mark?;
    s.cpu_mark = Some((now, cpu));
    let wall = now.duration_since(then).as_secs_f64();
    let pct = if wall > 0.0 {
        100.0 * (cpu - before).max(0.0) / wall
    } else {
        0.0
    };
    Some((pct, rss))
}

async fn report_window(inner: &Arc<Inner>, m: &Measuring, window: ClosedWindow, pid: Option<u32>) {
    let input_points = window.points(TapStream::Input);
    if !window.complete || input_points == 0 {
        tracing::debug!(
            complete = window.complete,
            input_points,
            "tap window not reported (incomplete or no input)"
        );
        return;
    }
    if m.needs_utilization && !window.input_has_utilization() {
        tracing::debug!("tap window has no CPU utilisation yet (first scrape): not reported");
        return;
    }
    let engine = m.engine.clone();
    let query_set = m.queries.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let stats = |v: Variant| -> VariantStats {
            let stream = TapStream::Variant(v);
            let mut s = engine.output_stats(window.sample(TapStream::Input), window.sample(stream));
            s.points = window.points(stream);
            s
        };
        let baseline = stats(Variant::Baseline);
        let candidate = stats(Variant::Candidate);
        // The series identities of each variant's actual output, for its churn tracker.
        let identities = [Variant::Baseline, Variant::Candidate]
            .map(|v| sample_identities(window.sample(TapStream::Variant(v))));
        // The queries, on the series each variant's output carries as Prometheus names them.
        let queries = query_set.map(|set| {
            set.evaluate(
                &series_of(window.sample(TapStream::Variant(Variant::Baseline))),
                &series_of(window.sample(TapStream::Variant(Variant::Candidate))),
            )
        });
        let input = window.sample(TapStream::Input);
        let processes = (0..input.resources().len())
            .filter(|r| {
                input.is_process_resource(phoenix_core::pipeline::sample::ResourceId(
                    u32::try_from(*r).unwrap_or(u32::MAX),
                ))
            })
            .count() as u64;
        let ClosedWindow {
            at_ms,
            samples: [input, _, _],
            ..
        } = window;
        (
            baseline,
            candidate,
            identities,
            queries,
            Arc::new(input),
            processes,
            at_ms,
        )
    })
    .await;
    let Ok((mut baseline, mut candidate, identities, queries, input, processes, at_ms)) = computed
    else {
        return;
    };
    let mut host = lock(&inner.measure.probe).host_stats((processes > 0).then_some(processes));
    if let Some((cpu_pct, rss)) = collector_usage(inner, pid).await {
        host.agent_cpu_pct += cpu_pct;
        host.agent_rss_bytes += rss;
    }
    let taken_at = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap_or_else(Utc::now);
    {
        let mut churn = lock(&inner.churn);
        churn.retain(|id| id == m.experiment_id);
        let [base_ids, cand_ids] = &identities;
        churn.record(
            m.experiment_id,
            Variant::Baseline,
            taken_at,
            base_ids,
            &mut baseline,
        );
        churn.record(
            m.experiment_id,
            Variant::Candidate,
            taken_at,
            cand_ids,
            &mut candidate,
        );
    }
    let seq = match inner.sequences.next(m.experiment_id) {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve measurement sequence numbers; sample not reported");
            return;
        }
    };
    inner.reporter.push(MeasurementSample {
        experiment_id: m.experiment_id,
        agent_id: inner.measure.agent_id,
        seq,
        taken_at,
        interval_secs: m.interval_secs,
        baseline,
        candidate,
        host,
        queries,
    });
    *lock(&inner.last_input) = Some(input);
}

#[cfg(test)]
mod tests {
    use phoenix_core::pipeline::{ParamValue, PipelineRef, TemplateRegistry};

    use super::*;

    #[test]
    fn windows_follow_the_receivers_interval_and_the_longest_batch_timeout() {
        let every = |s: &str| ParamValue::String(s.to_owned());
        let rendered = TemplateRegistry::builtin()
            .render_experiment(
                &PipelineRef::new("baseline").with_param("collection_interval", every("30s")),
                &PipelineRef::new("topk").with_param("collection_interval", every("30s")),
                &[],
                &[],
            )
            .unwrap();
        let mut d = ExperimentDeployment {
            op_seq: 1,
            baseline: rendered.baseline.clone(),
            candidate: Some(rendered.candidate.clone()),
            sample_interval_secs: 10,
            critical_processes: Vec::new(),
            critical_metrics: Vec::new(),
            collector_yaml: rendered.collector_yaml.clone(),
            queries: Vec::new(),
        };
        // 30 s scrapes; the templates' batch timeout is the interval capped at 10 s.
        assert_eq!(window_of(&d), (30, 12, true));
        // Without receivers (not a real template), the experiment's sampling interval.
        d.baseline.spec.receivers.clear();
        if let Some(c) = d.candidate.as_mut() {
            c.spec.receivers.clear();
        }
        assert_eq!(window_of(&d), (10, 12, false));
    }
}
