//! Cost history on the facade: recording an observation of the fleet views' host set once
//! per interval (any number of replicas may try; the stamp makes it count once), folding
//! complete hours into days, pruning by retention, and reading a range with the
//! promotions and rollbacks in it. The rules are [`crate::history`]'s.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::deployment::DeploymentState;
use crate::experiment::{DEFAULT_PRICING_MODEL, Phase};
use crate::history::{
    self, BreakdownKind, CostFigure, Granularity, HistoryPoint, MAX_HISTORY_BUCKETS, RollupBucket,
    Skip,
};
use crate::page::{MAX_PAGE_SIZE, PageRequest};
use crate::store::ExperimentFilter;
use crate::validation::ValidationErrors;

use super::{Phoenix, PhoenixError};

/// Deployments read for markers, at most (pages of [`MAX_PAGE_SIZE`]).
const MAX_DEPLOYMENT_PAGES: usize = 20;

/// What one history step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryTick {
    /// This replica added the interval's observation.
    pub recorded: bool,
    /// Hours folded into their day.
    pub folded: u64,
    /// Buckets deleted by retention.
    pub pruned: u64,
}

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Hour or day buckets.
    pub granularity: Granularity,
    /// Which rows besides the total.
    pub breakdown: BreakdownKind,
    /// Cost under this catalogue entry (default [`DEFAULT_PRICING_MODEL`]).
    pub pricing_model: Option<String>,
    /// Start (default: 7 days before `to` for hours, 90 days for days).
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive (default: now).
    pub to: Option<DateTime<Utc>>,
}

/// A promotion or a rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerKind {
    /// An experiment promoted, or a quick deployment completed.
    Promoted,
    /// An experiment or a quick deployment rolled back.
    RolledBack,
}

/// What a marker is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerSubject {
    /// An experiment.
    Experiment,
    /// A quick deployment.
    Deployment,
}

/// A promotion or rollback within the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMarker {
    /// When it took effect.
    pub at: DateTime<Utc>,
    /// Promoted or rolled back.
    pub kind: MarkerKind,
    /// Experiment or deployment.
    pub subject: MarkerSubject,
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// A range of cost history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryView {
    /// Hour or day.
    pub granularity: Granularity,
    /// Rows besides the total.
    pub breakdown: BreakdownKind,
    /// The model costs are under.
    pub pricing_model: String,
    /// Its currency.
    pub currency: String,
    /// Start of the range.
    pub from: DateTime<Utc>,
    /// End of the range (exclusive).
    pub to: DateTime<Utc>,
    /// One per recorded bucket, oldest first.
    pub points: Vec<HistoryPoint>,
    /// Promotions and rollbacks in the range, oldest first.
    pub markers: Vec<HistoryMarker>,
    /// The month's cost (measured or projected; `None` before any data).
    pub monthly: Option<CostFigure>,
    /// The year's cost.
    pub yearly: Option<CostFigure>,
    /// Hourly buckets are kept this many days.
    pub hourly_retention_days: u64,
    /// Daily buckets are kept this many days.
    pub daily_retention_days: u64,
    /// One observation per this many seconds.
    pub interval_secs: u64,
}

fn invalid(field: &str, message: String) -> PhoenixError {
    let mut errors = ValidationErrors::new();
    errors.push(field, message);
    PhoenixError::Validation(errors)
}

impl Phoenix {
    /// Records this interval's observation unless it is recorded already, folds the
    /// complete hours into their days and prunes by retention. Does the work once per
    /// interval per process (the controller calls it every tick); any number of replicas
    /// may run it.
    pub async fn record_history(&self) -> Result<HistoryTick, PhoenixError> {
        let config = &self.config().history;
        let now = self.now();
        let stamp = history::stamp(now, config.interval);
        {
            let mut last = self
                .inner
                .history_last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last == Some(stamp) {
                return Ok(HistoryTick::default());
            }
            *last = Some(stamp);
        }
        let result = self.history_step(stamp, now).await;
        if result.is_err() {
            // Try again at the next tick.
            *self
                .inner
                .history_last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
        result
    }

    async fn history_step(
        &self,
        stamp: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<HistoryTick, PhoenixError> {
        let top = self.config().history.top;
        let store = &self.stores().history;
        let mut tick = HistoryTick::default();
        let hour_start = Granularity::Hour.start(stamp);
        let day_start = Granularity::Day.start(stamp);

        let day = store.rollup(Granularity::Day, day_start).await?;
        let hour = store.rollup(Granularity::Hour, hour_start).await?;
        if history::record(hour.as_ref(), day.as_ref(), &probe(stamp), top).is_ok() {
            // The fleet cache's host set: only the snapshots changed since its last sync
            // are read and interned.
            let fleet = self.cached_fleet_hosts().await?;
            if !fleet.inputs.is_empty() {
                let (live_hosts, reporting_live) =
                    (fleet.coverage.live_hosts, fleet.coverage.reporting_live);
                let table = self.merge_hosts(fleet.inputs).await?;
                let observation = history::observe_table(
                    &table,
                    live_hosts,
                    reporting_live,
                    self.catalogue(),
                    stamp,
                    top,
                )
                .map_err(|e| invalid("snapshots", e.to_string()))?;
                let (mut hour, mut day) = (hour, day);
                for _ in 0..=self.config().max_conflict_retries {
                    let next = match history::record(hour.as_ref(), day.as_ref(), &observation, top)
                    {
                        Ok(next) => next,
                        Err(Skip::AlreadyRecorded | Skip::HourFolded) => break,
                    };
                    let expected = hour.as_ref().map_or(0, |h| h.version);
                    match store.put_rollup(&next, expected).await {
                        Ok(_) => {
                            tick.recorded = true;
                            break;
                        }
                        Err(e) if e.is_conflict() => {
                            hour = store.rollup(Granularity::Hour, hour_start).await?;
                            day = store.rollup(Granularity::Day, day_start).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }

        tick.folded = self.fold_hours(now).await?;
        for granularity in Granularity::ALL {
            let before = history::retention_cutoff(&self.config().history, granularity, now);
            tick.pruned += store.prune_rollups(granularity, before).await?;
        }
        Ok(tick)
    }

    /// Folds every complete hour of [`history::foldable_hours`] not yet in its day.
    async fn fold_hours(&self, now: DateTime<Utc>) -> Result<u64, PhoenixError> {
        let top = self.config().history.top;
        let store = &self.stores().history;
        let hours = history::foldable_hours(now);
        let Some(first) = hours.first().copied() else {
            return Ok(0);
        };
        let hour_buckets = store
            .rollups(
                Granularity::Hour,
                first,
                Granularity::Hour.start(now),
                hours.len(),
            )
            .await?;
        let mut folded = 0;
        for hour in hour_buckets.iter().filter(|h| hours.contains(&h.start)) {
            let day_start = Granularity::Day.start(hour.start);
            let mut day = store.rollup(Granularity::Day, day_start).await?;
            for _ in 0..=self.config().max_conflict_retries {
                let Some(next) = history::fold(day.as_ref(), hour, top) else {
                    break;
                };
                match store
                    .put_rollup(&next, day.as_ref().map_or(0, |d| d.version))
                    .await
                {
                    Ok(_) => {
                        folded += 1;
                        break;
                    }
                    Err(e) if e.is_conflict() => {
                        day = store.rollup(Granularity::Day, day_start).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(folded)
    }

    /// A range of cost history with its markers and the monthly and yearly figures.
    /// A 422 for an unknown pricing model, `from` not before `to`, or a range of more than
    /// [`MAX_HISTORY_BUCKETS`] buckets.
    pub async fn cost_history(&self, query: &HistoryQuery) -> Result<HistoryView, PhoenixError> {
        let model_id = query
            .pricing_model
            .as_deref()
            .unwrap_or(DEFAULT_PRICING_MODEL);
        let model = self.pricing_model(model_id)?;
        let now = self.now();
        let span = query.granularity.span();
        let to = query.to.unwrap_or(now);
        let from = query.from.unwrap_or_else(|| {
            to - match query.granularity {
                Granularity::Hour => Duration::days(7),
                Granularity::Day => Duration::days(90),
            }
        });
        if from >= to {
            return Err(invalid("from", "`from` must be before `to`".to_owned()));
        }
        let first = query.granularity.start(from);
        let span_secs = span.num_seconds();
        let buckets = ((to - first).num_seconds() + span_secs - 1) / span_secs;
        if buckets > MAX_HISTORY_BUCKETS as i64 {
            return Err(invalid(
                "from",
                format!(
                    "the range spans {buckets} {} buckets; at most {MAX_HISTORY_BUCKETS}",
                    query.granularity
                ),
            ));
        }
        let store = &self.stores().history;
        let points = store
            .rollups(query.granularity, first, to, MAX_HISTORY_BUCKETS)
            .await?
            .iter()
            .map(|b| b.point(query.breakdown, model_id))
            .collect();
        let daily = store
            .rollups(
                Granularity::Day,
                Granularity::Day.start(now) - Duration::days(history::YEAR_DAYS),
                now,
                MAX_HISTORY_BUCKETS,
            )
            .await?;
        let hourly: Vec<RollupBucket> = store
            .rollups(
                Granularity::Hour,
                Granularity::Hour.start(now - history::PROJECTION_WINDOW),
                now,
                MAX_HISTORY_BUCKETS,
            )
            .await?;
        let (monthly, yearly) = history::figures(&daily, &hourly, model_id, now);
        let markers = self.history_markers(first, to).await?;
        let config = &self.config().history;
        Ok(HistoryView {
            granularity: query.granularity,
            breakdown: query.breakdown,
            pricing_model: model_id.to_owned(),
            currency: model.currency.clone(),
            from: first,
            to,
            points,
            markers,
            monthly,
            yearly,
            hourly_retention_days: u64::try_from(config.hourly_retention.num_days()).unwrap_or(0),
            daily_retention_days: u64::try_from(config.daily_retention.num_days()).unwrap_or(0),
            interval_secs: u64::try_from(config.interval.num_seconds()).unwrap_or(0),
        })
    }

    /// Experiments promoted or rolled back, and quick deployments completed or rolled
    /// back, within `[from, to)`.
    async fn history_markers(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<HistoryMarker>, PhoenixError> {
        let within = |t: DateTime<Utc>| t >= from && t < to;
        let mut markers = Vec::new();
        for experiment in self
            .all_experiments(&ExperimentFilter::phases([
                Phase::Promoted,
                Phase::RolledBack,
            ]))
            .await?
        {
            let at = experiment.finished_at.unwrap_or(experiment.updated_at);
            if within(at) {
                markers.push(HistoryMarker {
                    at,
                    kind: if experiment.phase == Phase::Promoted {
                        MarkerKind::Promoted
                    } else {
                        MarkerKind::RolledBack
                    },
                    subject: MarkerSubject::Experiment,
                    id: experiment.id.0,
                    name: experiment.name,
                });
            }
        }
        let mut page = PageRequest::with_limit(MAX_PAGE_SIZE);
        for _ in 0..MAX_DEPLOYMENT_PAGES {
            let listed = self
                .stores()
                .deployments
                .list_deployments(&page)
                .await
                .map_err(PhoenixError::from)?;
            for d in listed.items {
                let kind = match d.state {
                    DeploymentState::Completed => MarkerKind::Promoted,
                    DeploymentState::RolledBack => MarkerKind::RolledBack,
                    _ => continue,
                };
                if within(d.updated_at) {
                    markers.push(HistoryMarker {
                        at: d.updated_at,
                        kind,
                        subject: MarkerSubject::Deployment,
                        id: d.id.0,
                        name: d.name,
                    });
                }
            }
            match listed.next_cursor {
                Some(cursor) => page.after = Some(cursor),
                None => break,
            }
        }
        markers.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(markers)
    }
}

/// An empty observation at `stamp`: asks [`history::record`] whether the stamp is still
/// open before the fleet is analysed.
fn probe(stamp: DateTime<Utc>) -> history::Observation {
    history::Observation {
        stamp,
        bucket: RollupBucket::empty(Granularity::Hour, Granularity::Hour.start(stamp)),
    }
}
