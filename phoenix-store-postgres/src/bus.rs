//! [`EventBus`] on LISTEN/NOTIFY.
//!
//! - **Local first.** An event is delivered to this process's subscribers at once (a
//!   tokio broadcast), then queued for the other replicas.
//! - **One NOTIFY per batch.** A publisher task drains the queue and sends everything
//!   queued meanwhile in one statement, so under load many transactions share a NOTIFY
//!   and no data transaction ever takes the NOTIFY commit lock (which serialises every
//!   notifying commit in the database). The publishing transaction commits with
//!   `synchronous_commit = off`: it writes nothing worth an fsync.
//! - **Ids, not bodies.** A payload stays under Postgres' 8000-byte limit: it carries ids
//!   and states; experiment events travel as `(experiment, seq)` and the receiving
//!   replica reads their bodies from `experiment_events`. A batch larger than one payload
//!   is split (several NOTIFYs in the same statement).
//! - **One listener connection per store**, outside the pool, on a channel named after
//!   the schema (`phoenix_bus_<schema>`), so stores on other schemas never hear it. Each
//!   payload names its origin store, which skips its own messages.
//! - **Reconnects with backoff** ([`BACKOFF`], core's `Backoff`: 50 ms doubling to 5 s,
//!   equal jitter); publishing retries a failed batch twice on the same policy before
//!   dropping it. Notifications sent while the listener was disconnected
//!   are lost; delivery is best effort by contract, and long-polls recover through their
//!   safety poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use phoenix_core::agent::AgentStatus;
use phoenix_core::backoff::Backoff;
use phoenix_core::experiment::ExperimentEvent;
use phoenix_core::ids::{AgentId, DeploymentId, ExperimentId, TaskId};
use phoenix_core::store::{BusEvent, EventBus, StoreError};
use phoenix_core::task::TaskState;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::types::Json;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::error::store_error;
use crate::pool::PoolHealth;
use crate::{BUS_CAPACITY, PgStore, channel_name};

/// Largest NOTIFY payload we send (Postgres refuses 8000 bytes and more).
const MAX_PAYLOAD: usize = 7_900;
/// Agents per `TasksAvailable` entry on the wire (keeps one entry well under a payload).
const AGENTS_PER_ENTRY: usize = 100;
/// Most events the publisher takes per batch.
const MAX_BATCH: usize = 8_192;
/// Reconnect backoff of the listener and retry backoff of the publisher: 50 ms doubling to
/// 5 s, equal jitter.
const BACKOFF: Backoff = Backoff::new(StdDuration::from_millis(50), StdDuration::from_secs(5));

/// One event on the wire: ids and states only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t")]
enum Wire {
    /// An experiment event, read back from `experiment_events` by the receiver.
    #[serde(rename = "x")]
    Experiment { e: ExperimentId, s: u64, v: u64 },
    #[serde(rename = "d")]
    ExperimentDeleted { e: ExperimentId },
    #[serde(rename = "a")]
    TasksAvailable { a: Vec<AgentId> },
    #[serde(rename = "u")]
    TaskUpdated {
        i: TaskId,
        a: AgentId,
        e: Option<ExperimentId>,
        s: TaskState,
    },
    #[serde(rename = "g")]
    AgentUpdated { a: AgentId, s: AgentStatus },
    #[serde(rename = "k")]
    KpisUpdated { e: ExperimentId },
    #[serde(rename = "p")]
    DeploymentUpdated { d: DeploymentId },
}

/// One NOTIFY payload.
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    /// The store that sent it.
    o: Uuid,
    /// Its events, in order.
    v: Vec<Wire>,
}

fn to_wire(event: &BusEvent, out: &mut Vec<Wire>) {
    match event {
        BusEvent::Experiment { event, version } => out.push(Wire::Experiment {
            e: event.experiment_id,
            s: event.seq,
            v: *version,
        }),
        BusEvent::ExperimentDeleted { experiment_id } => {
            out.push(Wire::ExperimentDeleted { e: *experiment_id });
        }
        BusEvent::TasksAvailable { agents } => {
            for chunk in agents.chunks(AGENTS_PER_ENTRY) {
                out.push(Wire::TasksAvailable { a: chunk.to_vec() });
            }
        }
        BusEvent::TaskUpdated {
            task_id,
            agent_id,
            experiment_id,
            state,
        } => out.push(Wire::TaskUpdated {
            i: *task_id,
            a: *agent_id,
            e: *experiment_id,
            s: *state,
        }),
        BusEvent::AgentUpdated { agent_id, status } => out.push(Wire::AgentUpdated {
            a: *agent_id,
            s: *status,
        }),
        BusEvent::KpisUpdated { experiment_id } => {
            out.push(Wire::KpisUpdated { e: *experiment_id });
        }
        BusEvent::DeploymentUpdated { deployment_id } => {
            out.push(Wire::DeploymentUpdated { d: *deployment_id })
        }
    }
}

/// Packs `events` into payloads of at most [`MAX_PAYLOAD`] bytes, in order.
fn encode(origin: Uuid, events: &[BusEvent]) -> Vec<String> {
    let mut wires = Vec::with_capacity(events.len());
    for event in events {
        to_wire(event, &mut wires);
    }
    let envelope = serde_json::to_string(&Message {
        o: origin,
        v: Vec::new(),
    })
    .map_or(64, |s| s.len());
    let mut payloads = Vec::new();
    let mut current: Vec<Wire> = Vec::new();
    let mut size = envelope;
    for wire in wires {
        let len = serde_json::to_string(&wire).map_or(0, |s| s.len()) + 1;
        if !current.is_empty() && size + len > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut current));
            size = envelope;
        }
        size += len;
        current.push(wire);
    }
    if !current.is_empty() {
        payloads.push(current);
    }
    payloads
        .into_iter()
        .filter_map(|v| serde_json::to_string(&Message { o: origin, v }).ok())
        .collect()
}

/// What the bus listener knows about its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusListenerState {
    /// Listening right now (false between losing the connection and re-listening).
    pub connected: bool,
    /// Times the connection was lost and re-established.
    pub reconnects: u64,
}

/// The bus of one store: local fan-out, the publisher and the listener.
pub(crate) struct Bus {
    local: broadcast::Sender<BusEvent>,
    outbox: mpsc::UnboundedSender<BusEvent>,
    state: watch::Receiver<BusListenerState>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Bus {
    /// Starts the publisher and the listener (LISTEN succeeds before this returns, so a
    /// subscription taken afterwards hears every later event of every replica).
    pub(crate) async fn start(
        pool: PgPool,
        connect: PgConnectOptions,
        schema: &str,
        health: Arc<PoolHealth>,
    ) -> Result<Self, StoreError> {
        let channel = channel_name(schema);
        let origin = Uuid::new_v4();
        let (local, _) = broadcast::channel(BUS_CAPACITY);
        // The listener's own single-connection pool: it only serves reconnects, and keeps
        // the listening connection out of the operations' pool.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(StdDuration::from_secs(5))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(connect);
        let mut listener = PgListener::connect_with(&listener_pool)
            .await
            .map_err(store_error)?;
        listener.listen(&channel).await.map_err(store_error)?;
        let (outbox, queue) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(BusListenerState {
            connected: true,
            reconnects: 0,
        });
        let publisher = tokio::spawn(publish_loop(pool.clone(), channel, origin, queue));
        let listening = tokio::spawn(listen_loop(Listening {
            listener,
            pool,
            origin,
            local: local.clone(),
            state: state_tx,
            health,
        }));
        Ok(Self {
            local,
            outbox,
            state,
            tasks: vec![publisher.abort_handle(), listening.abort_handle()],
        })
    }

    pub(crate) fn emit(&self, events: impl IntoIterator<Item = BusEvent>) {
        for event in events {
            // No local subscriber, or the publisher stopped: neither is an error.
            let _ = self.local.send(event.clone());
            let _ = self.outbox.send(event);
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.local.subscribe()
    }

    pub(crate) fn listener_state(&self) -> watch::Receiver<BusListenerState> {
        self.state.clone()
    }

    pub(crate) fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn publish_loop(
    pool: PgPool,
    channel: String,
    origin: Uuid,
    mut queue: mpsc::UnboundedReceiver<BusEvent>,
) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let payloads = encode(origin, &batch);
        batch.clear();
        let mut backoff = BACKOFF.sequence();
        for attempt in 0..3 {
            let sent = sqlx::query(
                "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, payload) \
                 FROM unnest($2::text[]) AS payload",
            )
            .bind(&channel)
            .bind(&payloads)
            .execute(&pool)
            .await;
            match sent {
                Ok(_) => break,
                Err(error) => {
                    // Best effort: after a few tries the batch is dropped; long-polls on
                    // other replicas recover through their safety poll.
                    tracing::warn!(%error, attempt, "publishing bus events failed");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}

/// What the listener task owns.
struct Listening {
    listener: PgListener,
    pool: PgPool,
    origin: Uuid,
    local: broadcast::Sender<BusEvent>,
    state: watch::Sender<BusListenerState>,
    health: Arc<PoolHealth>,
}

async fn listen_loop(mut l: Listening) {
    let mut backoff = BACKOFF.sequence();
    loop {
        match l.listener.try_recv().await {
            Ok(Some(notification)) => {
                backoff.reset();
                l.state
                    .send_if_modified(|s| !std::mem::replace(&mut s.connected, true));
                match serde_json::from_str::<Message>(notification.payload()) {
                    Ok(message) if message.o == l.origin => {}
                    Ok(message) => {
                        for event in resolve(&l.pool, message.v).await {
                            let _ = l.local.send(event);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ignoring an undecodable bus notification");
                    }
                }
            }
            Ok(None) => {
                // Lost and re-established (LISTEN re-issued). The server dropped this
                // connection, so it likely dropped the pool's too: have them tested.
                l.health.suspect();
                l.state.send_modify(|s| {
                    s.connected = true;
                    s.reconnects += 1;
                });
                tracing::info!(
                    "bus listener reconnected; events sent while it was away are not replayed"
                );
            }
            Err(error) => {
                l.health.suspect();
                l.state
                    .send_if_modified(|s| std::mem::replace(&mut s.connected, false));
                let delay = backoff.next_delay();
                tracing::warn!(%error, ?delay, "bus listener lost its connection; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Turns wire entries into events, reading experiment events' bodies in one query.
async fn resolve(pool: &PgPool, wires: Vec<Wire>) -> Vec<BusEvent> {
    let refs: Vec<(Uuid, i64)> = wires
        .iter()
        .filter_map(|w| match w {
            Wire::Experiment { e, s, .. } => i64::try_from(*s).ok().map(|s| (e.0, s)),
            _ => None,
        })
        .collect();
    let mut bodies: HashMap<(Uuid, i64), ExperimentEvent> = HashMap::new();
    if !refs.is_empty() {
        let (ids, seqs): (Vec<Uuid>, Vec<i64>) = refs.into_iter().unzip();
        let rows: Result<Vec<(Uuid, i64, Json<ExperimentEvent>)>, _> = sqlx::query_as(
            "SELECT e.experiment_id, e.seq, e.body FROM experiment_events e \
             JOIN unnest($1::uuid[], $2::bigint[]) AS r(id, seq) \
               ON e.experiment_id = r.id AND e.seq = r.seq",
        )
        .bind(&ids)
        .bind(&seqs)
        .fetch_all(pool)
        .await;
        match rows {
            Ok(rows) => bodies.extend(rows.into_iter().map(|(e, s, Json(body))| ((e, s), body))),
            Err(error) => tracing::warn!(%error, "reading announced experiment events failed"),
        }
    }
    wires
        .into_iter()
        .filter_map(|wire| match wire {
            Wire::Experiment { e, s, v } => {
                let key = (e.0, i64::try_from(s).ok()?);
                // Gone (deleted since) or unreadable: best effort, skip it.
                bodies
                    .remove(&key)
                    .map(|event| BusEvent::Experiment { event, version: v })
            }
            Wire::ExperimentDeleted { e } => Some(BusEvent::ExperimentDeleted { experiment_id: e }),
            Wire::TasksAvailable { a } => Some(BusEvent::TasksAvailable { agents: a }),
            Wire::TaskUpdated { i, a, e, s } => Some(BusEvent::TaskUpdated {
                task_id: i,
                agent_id: a,
                experiment_id: e,
                state: s,
            }),
            Wire::AgentUpdated { a, s } => Some(BusEvent::AgentUpdated {
                agent_id: a,
                status: s,
            }),
            Wire::KpisUpdated { e } => Some(BusEvent::KpisUpdated { experiment_id: e }),
            Wire::DeploymentUpdated { d } => Some(BusEvent::DeploymentUpdated { deployment_id: d }),
        })
        .collect()
}

#[async_trait]
impl EventBus for PgStore {
    async fn publish(&self, event: &BusEvent) -> Result<(), StoreError> {
        self.emit([event.clone()]);
        Ok(())
    }

    async fn publish_all(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        self.emit(events.iter().cloned());
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.subscribe_bus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_keep_order() {
        let origin = Uuid::new_v4();
        let agents: Vec<AgentId> = (0..1_000).map(|_| AgentId::new()).collect();
        let mut events = vec![BusEvent::TasksAvailable {
            agents: agents.clone(),
        }];
        for _ in 0..500 {
            events.push(BusEvent::TaskUpdated {
                task_id: TaskId::new(),
                agent_id: agents[0],
                experiment_id: Some(ExperimentId::new()),
                state: TaskState::Succeeded,
            });
        }
        let payloads = encode(origin, &events);
        assert!(payloads.len() > 1);
        let mut woken = Vec::new();
        let mut updates = 0;
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
            let message: Message = serde_json::from_str(payload).unwrap();
            assert_eq!(message.o, origin);
            for wire in message.v {
                match wire {
                    Wire::TasksAvailable { a } => {
                        assert_eq!(updates, 0, "order kept");
                        woken.extend(a);
                    }
                    Wire::TaskUpdated { .. } => updates += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(woken, agents);
        assert_eq!(updates, 500);
    }
}
