//! The per-replica fleet cache behind the fleet views (cost flow, cardinality,
//! recommendations, an experiment's fleet coverage).
//!
//! **Hosts.** The cache keeps every stored snapshot in interned form, one
//! [`HostTable`] per agent and source (input, shipped) with the store's version of it. A sync reads the versions only
//! ([`MetricStore::snapshot_versions`]), drops the agents no longer listed, and fetches and
//! interns only the snapshots whose version differs ([`MetricStore::snapshots_of`]). Every
//! replica keeps its own cache; the store stays the one source of truth.
//!
//! **Views.** Each view is memoized per key (its options and pricing model) with the instant
//! it was computed for (the instant of the sync it used) and the host set it analysed
//! (agent and version of each host). A request is answered from the memo while the memo is
//! younger than [`super::PhoenixConfig::fleet_view_staleness`]; once it is older than half
//! of that, the first request starts a recomputation in the background (stale while
//! revalidate), and a request finding it older than the bound waits for a fresh one. A
//! recomputation whose host set is the memo's own keeps the result and only moves the
//! instant. Views state the instant in `Coverage::computed_at`: nothing claims to be fresher
//! than it is. With a bound of zero every request syncs and computes (or reuses an
//! identical host set's result).
//!
//! **Exactness.** The host set is chosen by the same rule as the uncached path
//! ([`super::analysis::select_hosts`], over each cached snapshot's agent, source, time and
//! interval) and each merged table is the table the snapshots themselves give
//! ([`SeriesTable::from_hosts`]): the inputs for the analysis and recommendations, the
//! shipping hosts' inputs and their shipped outputs for raw vs shipped. A view equals the
//! uncached computation over the snapshots of the synced versions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::analysis::{Coverage, select_hosts};
use super::{Phoenix, PhoenixError};
use crate::agent::AgentFilter;
use crate::cardinality::{CardinalityReport, HostTable, RawVsShipped, Recommendation, SeriesTable};
use crate::error::StoreError;
use crate::ids::AgentId;
use crate::measure::{SnapshotMeta, SnapshotSource};
use crate::store::MetricStore;
use crate::validation::ValidationErrors;

/// Snapshots fetched per store call while syncing.
const FETCH_CHUNK: usize = 32;

/// A stored snapshot: its agent and source.
type SnapshotKey = (AgentId, SnapshotSource);

/// (agent, source, snapshot version) of every snapshot of a set, in the set's order.
type HostKey = Vec<(AgentId, SnapshotSource, u64)>;

/// Merged tables kept for reuse (the inputs, the shipping hosts' inputs, their outputs).
const MERGED_KEPT: usize = 4;

#[derive(Clone)]
struct CachedHost {
    version: u64,
    table: Arc<HostTable>,
}

/// A fleet view's result, memoized.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per memo, held behind an Arc and never moved in bulk"
)]
pub(crate) enum CachedView {
    /// The analysis (breakdowns, label cardinalities, cost flow when priced).
    Report(CardinalityReport),
    /// The analysis under a pricing model, its recommendations, and raw vs shipped.
    Flow(CardinalityReport, Vec<Recommendation>, Option<RawVsShipped>),
}

/// A view with the instant it was computed for and the host set it covers.
#[derive(Debug, Clone)]
pub(crate) struct Memo {
    /// What was computed.
    pub(crate) view: Arc<CachedView>,
    /// The host set; `coverage.computed_at` is the instant.
    pub(crate) coverage: Coverage,
    key: Arc<HostKey>,
}

/// The host set at one instant, from the cache.
pub(crate) struct FleetHosts {
    /// Coverage at the sync's instant.
    pub(crate) coverage: Coverage,
    /// The input snapshots used, ordered by agent id.
    pub(crate) inputs: Vec<Arc<HostTable>>,
    /// The current shipped outputs of those hosts, ordered by agent id.
    pub(crate) shipped: Vec<Arc<HostTable>>,
    key: HostKey,
}

impl FleetHosts {
    fn key_of(tables: &[Arc<HostTable>], versions: &BTreeMap<SnapshotKey, u64>) -> HostKey {
        tables
            .iter()
            .map(|t| {
                let key = (t.agent_id(), t.source());
                (key.0, key.1, versions.get(&key).copied().unwrap_or(0))
            })
            .collect()
    }
}

/// The shipping hosts' inputs and their shipped outputs, each merged.
pub(crate) type RawAndShipped = (Arc<SeriesTable>, Arc<SeriesTable>);

/// The merged tables a view computes from, built on first use and shared by the views of
/// the same host set.
pub(crate) struct ViewTables<'a> {
    cache: &'a FleetCache,
    hosts: &'a FleetHosts,
    versions: &'a BTreeMap<SnapshotKey, u64>,
}

impl ViewTables<'_> {
    fn merged(&self, tables: &[Arc<HostTable>]) -> Result<Arc<SeriesTable>, PhoenixError> {
        self.cache
            .merged(FleetHosts::key_of(tables, self.versions), tables)
    }

    /// The host set's input snapshots, merged.
    pub(crate) fn inputs(&self) -> Result<Arc<SeriesTable>, PhoenixError> {
        self.merged(&self.hosts.inputs)
    }

    /// The inputs of the hosts that report a shipped output and those outputs, merged
    /// (`None` when no host reports one).
    pub(crate) fn raw_and_shipped(&self) -> Result<Option<RawAndShipped>, PhoenixError> {
        if self.hosts.shipped.is_empty() {
            return Ok(None);
        }
        let shipping: std::collections::BTreeSet<AgentId> =
            self.hosts.shipped.iter().map(|t| t.agent_id()).collect();
        let raw: Vec<Arc<HostTable>> = self
            .hosts
            .inputs
            .iter()
            .filter(|t| shipping.contains(&t.agent_id()))
            .cloned()
            .collect();
        Ok(Some((
            self.merged(&raw)?,
            self.merged(&self.hosts.shipped)?,
        )))
    }
}

/// What a view computes from the merged tables of its host set.
pub(crate) type Compute =
    Arc<dyn Fn(&ViewTables<'_>) -> Result<CachedView, PhoenixError> + Send + Sync + 'static>;

#[derive(Default)]
struct Slot {
    /// The memo and the number of requests it answers: those that drew a ticket before its
    /// computation started.
    memo: Mutex<Option<(Memo, u64)>>,
    /// Tickets drawn by requests that wait for a recomputation.
    tickets: AtomicU64,
    refreshing: AtomicBool,
    /// One recomputation at a time per view.
    compute: tokio::sync::Mutex<()>,
}

/// One replica's cache of interned snapshots and memoized views.
#[derive(Default)]
pub(crate) struct FleetCache {
    /// Held for a whole sync: concurrent syncs queue, and the second finds little to do.
    hosts: tokio::sync::Mutex<BTreeMap<SnapshotKey, CachedHost>>,
    views: Mutex<HashMap<String, Arc<Slot>>>,
    /// The last merged tables by the snapshots they hold, shared by every view of those.
    merged: Mutex<Vec<(HostKey, Arc<SeriesTable>)>>,
}

fn invalid(message: String) -> PhoenixError {
    let mut errors = ValidationErrors::new();
    errors.push("snapshots", message);
    PhoenixError::Validation(errors)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs CPU work off the async workers; a panic in it is resumed here.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PhoenixError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e)).into()),
    }
}

impl FleetCache {
    /// Brings the cache to the store's current snapshots; returns them.
    async fn sync(
        &self,
        store: &dyn MetricStore,
    ) -> Result<BTreeMap<SnapshotKey, CachedHost>, PhoenixError> {
        let mut hosts = self.hosts.lock().await;
        let listed = store.snapshot_versions().await?;
        let keep: BTreeMap<SnapshotKey, u64> = listed
            .iter()
            .map(|v| ((v.agent_id, v.source), v.version))
            .collect();
        hosts.retain(|key, _| keep.contains_key(key));
        let changed: Vec<SnapshotKey> = keep
            .iter()
            .filter(|(key, version)| hosts.get(key).map(|h| h.version) != Some(**version))
            .map(|(key, _)| *key)
            .collect();
        for chunk in changed.chunks(FETCH_CHUNK) {
            let fetched = store.snapshots_of(chunk).await?;
            // Interning thousands of series per host is CPU work: off the async workers.
            let built = blocking(move || {
                fetched
                    .into_iter()
                    .map(|v| {
                        (
                            (v.snapshot.agent_id, v.snapshot.source),
                            v.version,
                            HostTable::from_packed(&v.snapshot),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            let mut seen = std::collections::BTreeSet::new();
            for (key, version, table) in built {
                let table = table.map_err(|e| invalid(e.to_string()))?;
                seen.insert(key);
                hosts.insert(
                    key,
                    CachedHost {
                        version,
                        table: Arc::new(table),
                    },
                );
            }
            // Listed but deleted before the fetch: gone.
            for key in chunk.iter().filter(|k| !seen.contains(k)) {
                hosts.remove(key);
            }
        }
        Ok(hosts.clone())
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        Arc::clone(lock(&self.views).entry(key.to_owned()).or_default())
    }

    /// The merged table of `tables` (whose snapshots `key` names), reusing a kept one.
    fn merged(
        &self,
        key: HostKey,
        tables: &[Arc<HostTable>],
    ) -> Result<Arc<SeriesTable>, PhoenixError> {
        if let Some((_, table)) = lock(&self.merged).iter().find(|(k, _)| *k == key) {
            return Ok(Arc::clone(table));
        }
        let refs: Vec<&HostTable> = tables.iter().map(|t| &**t).collect();
        let table = Arc::new(SeriesTable::from_hosts(&refs).map_err(|e| invalid(e.to_string()))?);
        let mut merged = lock(&self.merged);
        if merged.len() >= MERGED_KEPT {
            merged.remove(0);
        }
        merged.push((key, Arc::clone(&table)));
        Ok(table)
    }
}

impl Phoenix {
    /// The host set now, from the cache synced with the store: the same rule as
    /// [`Phoenix::fleet_snapshots`] ([`select_hosts`]), over the cached snapshots.
    pub(crate) async fn cached_fleet_hosts(&self) -> Result<FleetHosts, PhoenixError> {
        Ok(self.cached_fleet().await?.0)
    }

    /// [`Phoenix::cached_fleet_hosts`] with the version of every cached snapshot.
    async fn cached_fleet(&self) -> Result<(FleetHosts, BTreeMap<SnapshotKey, u64>), PhoenixError> {
        let computed_at = self.now();
        let hosts = self.fleet_cache().sync(&*self.stores().metrics).await?;
        let agents = self
            .all_agents(&AgentFilter {
                statuses: Vec::new(),
                include_revoked: true,
            })
            .await?;
        let cached: Vec<&CachedHost> = hosts.values().collect();
        let metas: Vec<SnapshotMeta> = cached.iter().map(|h| h.table.meta()).collect();
        let selection = select_hosts(
            &agents,
            &metas,
            computed_at,
            self.config().snapshot_retention,
        );
        let versions: BTreeMap<SnapshotKey, u64> =
            hosts.iter().map(|(key, h)| (*key, h.version)).collect();
        let pick = |positions: &[usize]| -> Vec<Arc<HostTable>> {
            positions
                .iter()
                .map(|&i| Arc::clone(&cached[i].table))
                .collect()
        };
        let inputs = pick(&selection.inputs);
        let shipped = pick(&selection.shipped);
        let mut key = FleetHosts::key_of(&inputs, &versions);
        key.extend(FleetHosts::key_of(&shipped, &versions));
        Ok((
            FleetHosts {
                coverage: selection.coverage,
                inputs,
                shipped,
                key,
            },
            versions,
        ))
    }

    /// The merged table of `hosts`, off the async workers.
    pub(crate) async fn merge_hosts(
        &self,
        hosts: Vec<Arc<HostTable>>,
    ) -> Result<SeriesTable, PhoenixError> {
        blocking(move || {
            let refs: Vec<&HostTable> = hosts.iter().map(|t| &**t).collect();
            SeriesTable::from_hosts(&refs).map_err(|e| invalid(e.to_string()))
        })
        .await?
    }

    /// The view `key`, from its memo while within the staleness bound (see the module).
    pub(crate) async fn fleet_view(
        &self,
        key: String,
        compute: Compute,
    ) -> Result<Memo, PhoenixError> {
        let slot = self.fleet_cache().slot(&key);
        let bound = self.config().fleet_view_staleness;
        let current = lock(&slot.memo).as_ref().map(|(memo, _)| memo.clone());
        if let Some(memo) = current {
            let age = self.now() - memo.coverage.computed_at;
            if age < bound {
                if age >= bound / 2 && !slot.refreshing.swap(true, Ordering::AcqRel) {
                    let phoenix = self.clone();
                    let slot = Arc::clone(&slot);
                    tokio::spawn(async move {
                        if let Err(e) = phoenix.refresh_view(&slot, compute, None).await {
                            tracing::warn!(error = %e, "fleet view refresh failed");
                        }
                        slot.refreshing.store(false, Ordering::Release);
                    });
                }
                return Ok(memo);
            }
        }
        let ticket = slot.tickets.fetch_add(1, Ordering::AcqRel);
        self.refresh_view(&slot, compute, Some(ticket)).await
    }

    /// Recomputes a view (one at a time per view). With a `ticket`, a memo whose
    /// computation started after the ticket was drawn (it ran while this request waited) is
    /// answered as is.
    async fn refresh_view(
        &self,
        slot: &Slot,
        compute: Compute,
        ticket: Option<u64>,
    ) -> Result<Memo, PhoenixError> {
        let _running = slot.compute.lock().await;
        let previous = lock(&slot.memo).clone();
        if let (Some(ticket), Some((memo, answers))) = (ticket, &previous)
            && *answers > ticket
        {
            return Ok(memo.clone());
        }
        let previous = previous.map(|(memo, _)| memo);
        let answers = slot.tickets.load(Ordering::Acquire);
        let (hosts, versions) = self.cached_fleet().await?;
        let memo = match previous {
            Some(memo) if *memo.key == hosts.key => Memo {
                coverage: hosts.coverage,
                ..memo
            },
            _ => {
                let cache = Arc::clone(&self.inner.fleet_cache);
                let (view, key, coverage) = blocking(move || {
                    let tables = ViewTables {
                        cache: &cache,
                        hosts: &hosts,
                        versions: &versions,
                    };
                    let view = compute(&tables)?;
                    Ok::<_, PhoenixError>((view, hosts.key, hosts.coverage))
                })
                .await??;
                Memo {
                    view: Arc::new(view),
                    coverage,
                    key: Arc::new(key),
                }
            }
        };
        *lock(&slot.memo) = Some((memo.clone(), answers));
        Ok(memo)
    }

    fn fleet_cache(&self) -> &FleetCache {
        &self.inner.fleet_cache
    }
}
