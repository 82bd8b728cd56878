//! The server's own Prometheus metrics (prometheus-client), rendered at `/metrics`.

use std::sync::Mutex;
use std::time::Instant;

use phoenix_core::Phoenix;
use phoenix_core::agent::AgentFilter;
use phoenix_core::experiment::Phase;
use phoenix_core::store::ExperimentFilter;
use phoenix_core::task::TaskState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

fn new_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// Counters and gauges of one server process.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Route patterns (`/api/v1/experiments/{id}`) used as labels; anything else is
    /// counted as `unmatched`, so fuzzed paths cannot grow the label set.
    routes: std::sync::OnceLock<std::collections::HashSet<String>>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    queue_tasks: Family<StateLabel, Gauge>,
    experiments: Family<PhaseLabel, Gauge>,
    agents: Family<StatusLabel, Gauge>,
    long_polls: Gauge,
    /// Connected WebSocket clients.
    pub ws_clients: Gauge,
    /// WebSocket clients dropped for being too slow.
    pub ws_dropped: Counter,
    /// Expired task leases returned to the queue or dead-lettered by the controller.
    pub lease_expiries: Counter,
    /// Agents the controller marked lost.
    pub agents_lost: Counter,
    /// Transitions the controller applied.
    pub controller_transitions: Counter,
    /// Controller ticks that failed.
    pub controller_errors: Counter,
    /// Agent requests refused with 429.
    pub rate_limited: Counter,
    /// Requests whose credential was refused (401).
    pub auth_failures: Counter,
    /// Requests refused with 429 for too many failed authentications.
    pub auth_throttled: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("phoenix");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            routes: std::sync::OnceLock::new(),
            requests: Family::default(),
            durations: Family::new_with_constructor(new_histogram),
            queue_tasks: Family::default(),
            experiments: Family::default(),
            agents: Family::default(),
            long_polls: Gauge::default(),
            ws_clients: Gauge::default(),
            ws_dropped: Counter::default(),
            lease_expiries: Counter::default(),
            agents_lost: Counter::default(),
            controller_transitions: Counter::default(),
            controller_errors: Counter::default(),
            rate_limited: Counter::default(),
            auth_failures: Counter::default(),
            auth_throttled: Counter::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route (long-polls included)",
            m.durations.clone(),
        );
        registry.register(
            "queue_tasks",
            "Tasks in the queue by state",
            m.queue_tasks.clone(),
        );
        registry.register("experiments", "Experiments by phase", m.experiments.clone());
        registry.register(
            "agents",
            "Enrolled, non-revoked agents by status",
            m.agents.clone(),
        );
        registry.register(
            "long_polls_waiting",
            "Agent long-polls waiting in this process",
            m.long_polls.clone(),
        );
        registry.register(
            "ws_clients",
            "WebSocket clients connected to this process",
            m.ws_clients.clone(),
        );
        registry.register(
            "ws_dropped",
            "WebSocket clients dropped for falling behind",
            m.ws_dropped.clone(),
        );
        registry.register(
            "lease_expiries",
            "Expired task leases handled by this process's controller",
            m.lease_expiries.clone(),
        );
        registry.register(
            "agents_lost",
            "Agents marked lost by this process's controller",
            m.agents_lost.clone(),
        );
        registry.register(
            "controller_transitions",
            "Experiment transitions applied by this process's controller",
            m.controller_transitions.clone(),
        );
        registry.register(
            "controller_errors",
            "Controller ticks that failed",
            m.controller_errors.clone(),
        );
        registry.register(
            "agent_rate_limited",
            "Agent requests refused with 429",
            m.rate_limited.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests whose credential was refused (401)",
            m.auth_failures.clone(),
        );
        registry.register(
            "auth_throttled",
            "Requests refused with 429 after too many failed authentications from their address or against their agent",
            m.auth_throttled.clone(),
        );
        *m.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = registry;
        m
    }

    /// Sets the known route patterns (once), from the OpenAPI document's paths.
    pub fn set_routes(&self, routes: impl IntoIterator<Item = String>) {
        let _ = self
            .routes
            .set(routes.into_iter().map(|r| normalize_pattern(&r)).collect());
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Refreshes the gauges read from the stores and renders the exposition text.
    pub async fn render(&self, phoenix: &Phoenix) -> Result<String, phoenix_core::PhoenixError> {
        let stats = phoenix.queue_stats().await?;
        for state in TaskState::ALL {
            let n = stats.by_state.get(&state).copied().unwrap_or(0);
            self.queue_tasks
                .get_or_create(&StateLabel {
                    state: state.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let experiments = phoenix
            .all_experiments(&ExperimentFilter::default())
            .await?;
        for phase in Phase::ALL {
            let n = experiments.iter().filter(|e| e.phase == phase).count();
            self.experiments
                .get_or_create(&PhaseLabel {
                    phase: phase.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let agents = phoenix.all_agents(&AgentFilter::default()).await?;
        for status in phoenix_core::agent::AgentStatus::ALL {
            let n = agents.iter().filter(|a| a.status == status).count();
            self.agents
                .get_or_create(&StatusLabel {
                    status: status.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.long_polls
            .set(i64::try_from(phoenix.waiting_agents()).unwrap_or(i64::MAX));
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map_err(|_| phoenix_core::PhoenixError::Forbidden("encoding failed".to_owned()))?;
        Ok(out)
    }
}

/// Counts a request by matched route pattern (never the raw path: ids would explode the
/// label set).
pub(crate) fn record(metrics: &Metrics, method: &str, path: &str, status: u16, start: Instant) {
    let mut route = route_label(path);
    if metrics
        .routes
        .get()
        .is_some_and(|known| !known.contains(&route))
    {
        route = "unmatched".to_owned();
    }
    metrics.observe(method, &route, status, start.elapsed().as_secs_f64());
}

/// `/a/{experiment_id}/b` -> `/a/{id}/b`.
fn normalize_pattern(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') || s.starts_with(':') {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Replaces UUID path segments with `{id}` so labels stay bounded.
fn route_label(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if uuid::Uuid::parse_str(segment).is_ok() {
            out.push_str("{id}");
        } else if segment.len() > 64 {
            out.push_str("{long}");
        } else {
            out.push_str(segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_hide_ids() {
        assert_eq!(
            route_label("/api/v1/experiments/0190b5d2-5b7e-7c4e-9a4e-2a3d3b1c0d9e/start"),
            "/api/v1/experiments/{id}/start"
        );
        assert_eq!(route_label("/healthz"), "/healthz");
    }
}
