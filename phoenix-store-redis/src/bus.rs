//! [`EventBus`] on Redis pub/sub: one channel per namespace, one dedicated subscriber
//! connection per [`RedisStore`], fanned out in process on a tokio broadcast channel.
//!
//! A message carries one or more lines (one publish per batch): a JSON [`BusEvent`], or a
//! compact record written by a script (see `lua/lib.lua`), decoded here with the core's own
//! parsers. Scripts publish from inside the atomic step, so an enqueue, its commit and its
//! wake-up cost one round trip.
//!
//! Delivery is best effort, as the trait says: while the subscriber reconnects, events are
//! missed, and long-polls fall back to their safety poll. The subscriber reconnects on
//! [`BACKOFF`] (core's `Backoff`: 50 ms doubling to 2 s, equal jitter).

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use futures::StreamExt;
use phoenix_core::agent::AgentStatus;
use phoenix_core::backoff::Backoff;
use phoenix_core::error::StoreError;
use phoenix_core::ids::{AgentId, ExperimentId, TaskId};
use phoenix_core::store::{BusEvent, EventBus};
use phoenix_core::task::TaskState;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::RedisStore;
use crate::codec::encode_json;

/// Resubscribe backoff of the subscriber: 50 ms doubling to 2 s, equal jitter.
const BACKOFF: Backoff = Backoff::new(StdDuration::from_millis(50), StdDuration::from_secs(2));

/// The channel of a namespace.
pub(crate) fn channel(namespace: &str) -> String {
    format!("{namespace}:bus")
}

/// The subscriber task (aborted when the last clone of its store is dropped) and its state.
pub(crate) struct Listener {
    task: JoinHandle<()>,
    pub(crate) state: watch::Receiver<BusState>,
}

/// Whether the subscriber connection is subscribed, and how many subscriptions it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BusState {
    pub(crate) subscribed: bool,
    pub(crate) subscriptions: u64,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Subscribes (returning once Redis confirmed the subscription), then keeps forwarding
    /// messages to `tx`, reconnecting with backoff whenever the connection drops.
    pub(crate) async fn start(
        client: redis::Client,
        channel: String,
        tx: broadcast::Sender<BusEvent>,
    ) -> Result<Self, StoreError> {
        let first = subscribe(&client, &channel)
            .await
            .map_err(StoreError::unavailable)?;
        let (sender, state) = watch::channel(BusState {
            subscribed: true,
            subscriptions: 1,
        });
        let task = tokio::spawn(run(client, channel, tx, first, sender));
        Ok(Self { task, state })
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

async fn run(
    client: redis::Client,
    channel: String,
    tx: broadcast::Sender<BusEvent>,
    first: redis::aio::PubSub,
    state: watch::Sender<BusState>,
) {
    let mut pubsub = Some(first);
    let mut backoff = BACKOFF.sequence();
    loop {
        let current = match pubsub.take() {
            Some(p) => p,
            None => match subscribe(&client, &channel).await {
                Ok(p) => {
                    tracing::info!(%channel, "event bus resubscribed");
                    state.send_modify(|s| {
                        s.subscribed = true;
                        s.subscriptions += 1;
                    });
                    backoff.reset();
                    p
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%channel, %error, ?delay, "event bus cannot subscribe; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        let mut messages = current.into_on_message();
        while let Some(message) = messages.next().await {
            if tx.receiver_count() == 0 {
                // Nobody in this process listens: skip the decoding.
                continue;
            }
            for event in decode(message.get_payload_bytes()) {
                // No subscriber is not an error.
                let _ = tx.send(event);
            }
        }
        state.send_modify(|s| s.subscribed = false);
        tracing::warn!(%channel, "event bus connection lost; reconnecting");
    }
}

/// Decodes one bus message into events; a malformed line is logged and skipped.
pub(crate) fn decode(payload: &[u8]) -> Vec<BusEvent> {
    let Ok(text) = std::str::from_utf8(payload) else {
        tracing::warn!("event bus message is not UTF-8; ignored");
        return Vec::new();
    };
    let mut events = Vec::new();
    let mut available: Vec<AgentId> = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        match decode_line(line) {
            Some(Line::Event(event)) => events.push(event),
            Some(Line::Available(agent)) => available.push(agent),
            None => tracing::warn!(line, "malformed event bus line; ignored"),
        }
    }
    if !available.is_empty() {
        available.sort();
        available.dedup();
        events.push(BusEvent::TasksAvailable { agents: available });
    }
    events
}

enum Line {
    Event(BusEvent),
    Available(AgentId),
}

fn decode_line(line: &str) -> Option<Line> {
    if line.starts_with('{') {
        return serde_json::from_str(line).ok().map(Line::Event);
    }
    let mut parts = line.split(' ');
    let tag = parts.next()?;
    let fields: Vec<&str> = parts.collect();
    match (tag, fields.as_slice()) {
        ("A", [agent]) => agent.parse().ok().map(Line::Available),
        ("T", [task, agent, experiment, state]) => {
            let task_id: TaskId = task.parse().ok()?;
            let agent_id: AgentId = agent.parse().ok()?;
            let experiment_id: Option<ExperimentId> = match *experiment {
                "-" => None,
                e => Some(e.parse().ok()?),
            };
            let state: TaskState = state.parse().ok()?;
            Some(Line::Event(BusEvent::TaskUpdated {
                task_id,
                agent_id,
                experiment_id,
                state,
            }))
        }
        ("G", [agent, status]) => {
            let agent_id: AgentId = agent.parse().ok()?;
            let status: AgentStatus = status.parse().ok()?;
            Some(Line::Event(BusEvent::AgentUpdated { agent_id, status }))
        }
        _ => None,
    }
}

/// JSON lines for events a script publishes on success.
pub(crate) fn event_line(event: &BusEvent) -> Result<String, StoreError> {
    encode_json(event)
}

#[async_trait]
impl EventBus for RedisStore {
    async fn publish(&self, event: &BusEvent) -> Result<(), StoreError> {
        self.publish_all(std::slice::from_ref(event)).await
    }

    async fn publish_all(&self, events: &[BusEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let lines = events
            .iter()
            .map(event_line)
            .collect::<Result<Vec<_>, _>>()?
            .join("\n");
        let _: i64 = self
            .query(
                redis::cmd("PUBLISH")
                    .arg(channel(self.namespace()))
                    .arg(lines),
            )
            .await?;
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.inner.bus.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_script_records_and_json_lines() {
        let task = TaskId::new();
        let agent = AgentId::new();
        let other = AgentId::new();
        let experiment = ExperimentId::new();
        let json = serde_json::to_string(&BusEvent::KpisUpdated {
            experiment_id: experiment,
        })
        .unwrap();
        let message = format!(
            "{json}\nT {task} {agent} {experiment} succeeded\nA {other}\nT {task} {agent} - leased\nA {agent}\nA {other}\nG {agent} lost\nbogus line"
        );
        let events = decode(message.as_bytes());
        let mut both = vec![agent, other];
        both.sort();
        assert_eq!(
            events,
            vec![
                BusEvent::KpisUpdated {
                    experiment_id: experiment
                },
                BusEvent::TaskUpdated {
                    task_id: task,
                    agent_id: agent,
                    experiment_id: Some(experiment),
                    state: TaskState::Succeeded,
                },
                BusEvent::TaskUpdated {
                    task_id: task,
                    agent_id: agent,
                    experiment_id: None,
                    state: TaskState::Leased,
                },
                BusEvent::AgentUpdated {
                    agent_id: agent,
                    status: AgentStatus::Lost,
                },
                BusEvent::TasksAvailable { agents: both },
            ]
        );
        assert!(decode(b"\xff\xfe").is_empty());
    }
}
