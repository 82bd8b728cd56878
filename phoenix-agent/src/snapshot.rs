//! The host's cardinality snapshot: every series its inputs emit before any pipeline
//! reduces them, taken on the server's schedule whatever runs on the host.
//!
//! Inputs: the runtime's view of the host (the native runtime's last input or a fresh
//! process scan in the hostmetrics shape; the otelcol runtime's tap window or a process
//! scan), every Prometheus target configured as an input of the host (`scrape`), and the
//! OTLP the agent's receiver accepted since the previous snapshot ([`OtlpInputs`]).
//! Beside it, when a pipeline is deployed or promoted on the host, a second snapshot of
//! what that pipeline ships ([`SnapshotSource::Shipped`]), taken at the same moment.
//! A snapshot covers `interval` (the snapshot period); each series carries the points its
//! input produces in that period at the input's own collection interval (`host_interval`
//! or the deployed pipeline's interval for the host view, `scrape_interval` for scrape
//! targets, the points actually received for OTLP series), so points per minute are the
//! input's real rate, not the snapshot's.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use phoenix_core::ids::AgentId;
use phoenix_core::measure::{CardinalitySnapshot, SnapshotSeries, SnapshotSource};
use phoenix_core::pipeline::SampleBuilder;
use phoenix_core::pipeline::exposition::parse_exposition;

use crate::otlp_receiver::OtlpInputs;
use crate::report::Reporter;
use crate::runtime::{PipelineRuntime, RuntimeError};

/// What a [`Snapshotter`] needs to know about the host.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// This agent.
    pub agent_id: AgentId,
    /// The host name.
    pub host: String,
    /// Prometheus targets that are inputs of the host.
    pub scrape: Vec<String>,
    /// Their scrape interval.
    pub scrape_interval: Duration,
    /// The processes' collection interval when no pipeline sets one.
    pub host_interval: Duration,
    /// Timeout of one scrape.
    pub io_timeout: Duration,
    /// What the OTLP receiver received since the last snapshot (when it runs).
    pub otlp: Option<Arc<OtlpInputs>>,
}

/// Takes snapshots and hands them to the reporter (the one writer of the agent's snapshot).
pub struct Snapshotter {
    config: SnapshotConfig,
    reporter: Arc<Reporter>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Points an input collected every `every` produces in `period` (at least one: a series
/// seen once was emitted).
#[must_use]
pub fn points_in(period: Duration, every: Duration) -> u64 {
    let every = every.as_millis().max(1);
    u64::try_from(period.as_millis().div_ceil(every))
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Snapshotter {
    /// A snapshotter reporting through `reporter`.
    #[must_use]
    pub fn new(config: SnapshotConfig, reporter: Arc<Reporter>) -> Self {
        Self {
            config,
            reporter,
            http: reqwest::Client::new(),
        }
    }

    /// Takes a snapshot covering `period` and queues it for the next report. The host view
    /// comes from `runtime`, collected every `pipeline_interval` when a pipeline sets one.
    /// Returns the series count and the inputs that failed or are partial (scrape targets
    /// whose series are missing, OTLP series left out beyond the receiver's caps).
    ///
    /// # Errors
    /// When the runtime cannot give its view of the host.
    pub async fn take(
        &self,
        runtime: &dyn PipelineRuntime,
        period: Duration,
        pipeline_interval: Option<Duration>,
    ) -> Result<(usize, Vec<String>), RuntimeError> {
        let period = period.max(Duration::from_secs(1));
        let host_points = points_in(
            period,
            pipeline_interval.unwrap_or(self.config.host_interval),
        );
        let mut series: Vec<SnapshotSeries> = runtime
            .snapshot()
            .await?
            .into_iter()
            .map(|s| SnapshotSeries {
                points: host_points,
                ..s
            })
            .collect();
        let scrape_points = points_in(period, self.config.scrape_interval);
        let mut failed = Vec::new();
        for target in &self.config.scrape {
            match scrape(&self.http, target, self.config.io_timeout).await {
                Ok(text) => {
                    let target = target.clone();
                    let parsed = tokio::task::spawn_blocking(move || {
                        let mut builder = SampleBuilder::new(Utc::now().timestamp_millis());
                        let resource = builder.resource([
                            ("service.name", "scrape"),
                            ("service.instance.id", target.as_str()),
                        ]);
                        if let Err(e) = parse_exposition(
                            &text,
                            &mut builder,
                            resource,
                            Utc::now().timestamp_millis(),
                        ) {
                            tracing::warn!(%target, error = %e, "scraped exposition is malformed; kept the lines before the error");
                        }
                        builder.build().snapshot_series()
                    })
                    .await
                    .unwrap_or_default();
                    series.extend(parsed.into_iter().map(|s| SnapshotSeries {
                        points: scrape_points,
                        ..s
                    }));
                }
                Err(e) => {
                    tracing::warn!(%target, error = %e, "scrape input failed; its series are missing from this snapshot");
                    failed.push(format!("{target}: {e}"));
                }
            }
        }
        // What applications sent the OTLP receiver since the last snapshot, at the rate it
        // arrived (OTLP has no configured interval).
        if let Some(otlp) = &self.config.otlp {
            let taken = otlp.take(period);
            if let Some(why) = taken.partial() {
                tracing::warn!(%why, "OTLP input is partial in this snapshot");
                failed.push(why);
            }
            series.extend(taken.series);
        }
        // A target both configured and scraped by a deployed pipeline is one input.
        let mut seen = BTreeSet::new();
        series.retain(|s| seen.insert((s.metric.clone(), s.labels.clone())));
        let count = series.len();
        let taken_at = Utc::now();
        let interval_secs = u32::try_from(period.as_secs()).unwrap_or(u32::MAX);
        self.reporter.set_snapshot(CardinalitySnapshot {
            agent_id: self.config.agent_id,
            source: SnapshotSource::Input,
            host: self.config.host.clone(),
            taken_at,
            interval_secs,
            series,
        });
        // What the host's own pipeline ships, on the same schedule: its output is produced
        // once per pipeline interval, so its series carry the host view's points.
        match runtime.shipped().await {
            Ok(Some(shipped)) => self.reporter.set_snapshot(CardinalitySnapshot {
                agent_id: self.config.agent_id,
                source: SnapshotSource::Shipped,
                host: self.config.host.clone(),
                taken_at,
                interval_secs,
                series: shipped
                    .into_iter()
                    .map(|s| SnapshotSeries {
                        points: host_points,
                        ..s
                    })
                    .collect(),
            }),
            Ok(None) => {}
            Err(e) => {
                // Not an input: the input snapshot stands; the stored shipped one ages out.
                tracing::warn!(error = %e, "cannot read what the host pipeline ships; no shipped snapshot this time");
            }
        }
        Ok((count, failed))
    }
}

/// The exposition of a Prometheus target (`host:port`, read at `/metrics`, or a URL).
pub(crate) async fn scrape(
    client: &reqwest::Client,
    target: &str,
    timeout: Duration,
) -> Result<String, String> {
    let url = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_owned()
    } else {
        format!("http://{target}/metrics")
    };
    let response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("scrape answered {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_the_inputs_interval() {
        let minute = Duration::from_secs(60);
        assert_eq!(points_in(minute, Duration::from_secs(15)), 4);
        assert_eq!(points_in(minute, Duration::from_secs(10)), 6);
        assert_eq!(points_in(minute, Duration::from_secs(120)), 1);
        assert_eq!(
            points_in(Duration::from_secs(10), Duration::from_secs(3)),
            4
        );
    }
}
