//! Measurement reporting: a bounded buffer between the sampler and the server.
//!
//! The sampler never waits for the network: it pushes each interval's measurement here.
//! The reporter sends them in batches (one experiment per request, oldest first), retries
//! with backoff while the server is unreachable, and when the buffer is full drops the
//! oldest samples (counted), so memory stays bounded during a long outage. Every sample
//! carries its sequence number, and the server stores each (experiment, agent, seq) once:
//! a batch retried after a lost answer is acknowledged as duplicates, never counted twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use phoenix_core::ids::ExperimentId;
use phoenix_core::inputs;
use phoenix_core::measure::{CardinalitySnapshot, MeasurementSample, SnapshotSource};
use tokio::sync::{Notify, watch};

use phoenix_core::backoff::Backoff;

use crate::config::backoff_sequence;
use crate::control::{ControlError, ControlPlane};

/// Reporter settings.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Most samples per request.
    pub batch_size: usize,
    /// Most samples buffered; the oldest are dropped beyond.
    pub buffer_capacity: usize,
    /// Backoff while the server is unreachable.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            buffer_capacity: 8_640,
            backoff_initial: Backoff::default().initial(),
            backoff_max: Backoff::default().max(),
        }
    }
}

/// Counters of what happened to measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportStats {
    /// Samples the server stored as new.
    pub inserted: u64,
    /// Samples the server already had (retries after a lost answer).
    pub duplicates: u64,
    /// Samples dropped because the buffer was full.
    pub dropped: u64,
    /// Samples the server refused (e.g. the experiment no longer targets this agent).
    pub rejected: u64,
    /// Snapshots sent.
    pub snapshots: u64,
    /// Samples waiting.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Buffer {
    samples: VecDeque<MeasurementSample>,
    /// The latest snapshot of each source not sent yet (one per request, input first).
    snapshots: BTreeMap<SnapshotSource, CardinalitySnapshot>,
    stats: ReportStats,
}

/// The buffer and its sender.
#[derive(Debug)]
pub struct Reporter {
    config: ReportConfig,
    buffer: Mutex<Buffer>,
    notify: Notify,
}

impl Reporter {
    /// An empty reporter.
    #[must_use]
    pub fn new(config: ReportConfig) -> Self {
        Self {
            config,
            buffer: Mutex::new(Buffer::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a sample, dropping the oldest one when the buffer is full.
    pub fn push(&self, sample: MeasurementSample) {
        let mut b = self.lock();
        while b.samples.len() >= self.config.buffer_capacity.max(1) {
            b.samples.pop_front();
            b.stats.dropped += 1;
        }
        b.samples.push_back(sample);
        drop(b);
        self.notify.notify_one();
    }

    /// Replaces the snapshot of its source to send with the next requests.
    pub fn set_snapshot(&self, mut snapshot: CardinalitySnapshot) {
        // Label values are whatever processes carry (command lines of thousands of
        // characters): fit them into what the server accepts rather than lose the snapshot.
        inputs::fit_snapshot(&mut snapshot);
        self.lock().snapshots.insert(snapshot.source, snapshot);
        self.notify.notify_one();
    }

    /// What happened so far.
    #[must_use]
    pub fn stats(&self) -> ReportStats {
        let b = self.lock();
        ReportStats {
            pending: b.samples.len() as u64,
            ..b.stats
        }
    }

    /// Forgets the samples of `experiment` (it was removed from this host).
    pub fn discard(&self, experiment: ExperimentId) {
        self.lock()
            .samples
            .retain(|s| s.experiment_id != experiment);
    }

    /// The next batch: the oldest sample's experiment, up to `batch_size` of its samples,
    /// and the pending snapshot.
    fn next_batch(&self) -> Option<(Vec<MeasurementSample>, Option<CardinalitySnapshot>)> {
        let mut b = self.lock();
        let snapshot = b.snapshots.pop_first().map(|(_, s)| s);
        let batch: Vec<MeasurementSample> = match b.samples.front() {
            Some(first) => {
                let experiment = first.experiment_id;
                b.samples
                    .iter()
                    .filter(|s| s.experiment_id == experiment)
                    .take(self.config.batch_size.max(1))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        if batch.is_empty() && snapshot.is_none() {
            None
        } else {
            Some((batch, snapshot))
        }
    }

    /// Puts back a snapshot that was not sent, unless a newer one of its source came.
    fn keep(&self, snapshot: CardinalitySnapshot) {
        self.lock()
            .snapshots
            .entry(snapshot.source)
            .or_insert(snapshot);
    }

    fn settle(&self, sent: &[MeasurementSample]) {
        let ids: BTreeSet<(ExperimentId, u64)> =
            sent.iter().map(|s| (s.experiment_id, s.seq)).collect();
        self.lock()
            .samples
            .retain(|s| !ids.contains(&(s.experiment_id, s.seq)));
    }

    /// Sends everything buffered once (no retries); used at shutdown.
    pub async fn flush_once(&self, control: &dyn ControlPlane, credential: &str) {
        while let Some((batch, snapshot)) = self.next_batch() {
            if self
                .send(control, credential, &batch, snapshot.as_ref())
                .await
                .is_err()
            {
                if let Some(s) = snapshot {
                    self.keep(s);
                }
                return;
            }
        }
    }

    async fn send(
        &self,
        control: &dyn ControlPlane,
        credential: &str,
        batch: &[MeasurementSample],
        snapshot: Option<&CardinalitySnapshot>,
    ) -> Result<(), ControlError> {
        match control.report_metrics(credential, batch, snapshot).await {
            Ok(ack) => {
                self.settle(batch);
                let mut b = self.lock();
                b.stats.inserted += ack.inserted;
                b.stats.duplicates += ack.duplicates;
                b.stats.snapshots += u64::from(snapshot.is_some());
                Ok(())
            }
            Err(ControlError::Rejected { status, message }) => {
                // Retrying the same batch cannot help; keep the others flowing.
                tracing::warn!(status, %message, samples = batch.len(), "server refused measurements; dropping them");
                self.settle(batch);
                self.lock().stats.rejected += batch.len() as u64;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends batches until `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        control: Arc<dyn ControlPlane>,
        credential: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = backoff_sequence(self.config.backoff_initial, self.config.backoff_max);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let Some((batch, snapshot)) = self.next_batch() else {
                tokio::select! {
                    () = self.notify.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            match self
                .send(control.as_ref(), &credential, &batch, snapshot.as_ref())
                .await
            {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    if let Some(s) = snapshot {
                        self.keep(s);
                    }
                    let delay = match &e {
                        ControlError::RateLimited {
                            retry_after: Some(d),
                        } => *d,
                        _ => backoff.next_delay(),
                    };
                    tracing::debug!(error = %e, ?delay, "measurement report failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}
