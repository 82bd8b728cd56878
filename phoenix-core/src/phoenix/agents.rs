//! Agents, user tokens and measurements.

use std::collections::{BTreeMap, BTreeSet};

use super::{Phoenix, PhoenixError};
use crate::agent::{
    Agent, AgentCredential, AgentFilter, AgentRegistration, HealthPoint, Heartbeat, SecretHash,
    heartbeat_status,
};
use crate::auth::{ApiToken, Role};
use crate::ids::AgentId;
use crate::measure::{
    CardinalitySnapshot, MeasurementSample, PackedSnapshot, ReportedSnapshot, SnapshotSource,
};
use crate::page::{Page, PageRequest};
use crate::store::{AppendReport, MAX_HEALTH_POINTS_PER_AGENT, StoreError};
use crate::validation::ValidationErrors;
use crate::{inputs, plausibility};

/// Most labels an agent may carry.
pub const MAX_AGENT_LABELS: usize = inputs::MAX_LABELS;
/// Most samples accepted in one report.
pub const MAX_SAMPLES_PER_REPORT: usize = 1_000;
/// Most series accepted in one cardinality snapshot.
pub const MAX_SNAPSHOT_SERIES: usize = 1_000_000;

impl Phoenix {
    /// Enrolls an agent (the caller checked the enrollment token) and returns its
    /// credential, shown once.
    pub async fn enroll(
        &self,
        registration: AgentRegistration,
    ) -> Result<(Agent, AgentCredential), PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::registration(&mut errors, &registration);
        errors.into_result()?;
        let agent = Agent::enroll(registration, self.now());
        let credential = AgentCredential::generate(agent.id);
        self.stores()
            .agents
            .register(&agent, &credential.hash())
            .await?;
        Ok((agent, credential))
    }

    /// The agent a credential token belongs to; `Unauthenticated` when malformed, unknown,
    /// wrong or revoked.
    pub async fn authenticate_agent(&self, token: &str) -> Result<Agent, PhoenixError> {
        let credential = AgentCredential::parse(token).ok_or(PhoenixError::Unauthenticated)?;
        let hash = match self.stores().agents.secret_hash(credential.agent_id).await {
            Ok(hash) => hash,
            Err(StoreError::NotFound { .. }) => return Err(PhoenixError::Unauthenticated),
            Err(e) => return Err(e.into()),
        };
        if !hash.verify(&credential.secret) {
            return Err(PhoenixError::Unauthenticated);
        }
        let agent = self.stores().agents.get_agent(credential.agent_id).await?;
        if agent.revoked {
            return Err(PhoenixError::Unauthenticated);
        }
        Ok(agent)
    }

    /// Records a heartbeat; figures out of bounds or a start time out of the clock window
    /// are field errors and change nothing.
    pub async fn heartbeat(
        &self,
        agent: AgentId,
        heartbeat: Heartbeat,
    ) -> Result<Agent, PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::heartbeat(&mut errors, &heartbeat, self.now());
        self.count_refusal(agent, errors.into_result().map_err(Into::into))
            .await?;
        let status = heartbeat_status(&heartbeat);
        let now = self.now();
        let recorded = self
            .stores()
            .agents
            .record_heartbeat(agent, &heartbeat, status, now)
            .await?;
        self.stores()
            .agents
            .append_health(agent, &HealthPoint::of(&heartbeat, now))
            .await?;
        Ok(recorded)
    }

    /// The agent's health history within the retention, oldest first, at most `limit`
    /// points (the newest). `NotFound` for an unknown agent.
    pub async fn agent_health(
        &self,
        id: AgentId,
        limit: usize,
    ) -> Result<Vec<HealthPoint>, PhoenixError> {
        self.stores().agents.get_agent(id).await?;
        let since = self.now() - self.config().health_retention;
        Ok(self
            .stores()
            .agents
            .health_history(id, since, limit.min(MAX_HEALTH_POINTS_PER_AGENT))
            .await?)
    }

    /// Deletes health points older than the retention; returns how many.
    pub async fn prune_health(&self) -> Result<u64, PhoenixError> {
        let before = self.now() - self.config().health_retention;
        Ok(self.stores().agents.prune_health(before).await?)
    }

    /// One agent.
    pub async fn agent(&self, id: AgentId) -> Result<Agent, PhoenixError> {
        Ok(self.stores().agents.get_agent(id).await?)
    }

    /// A page of agents.
    pub async fn agents(
        &self,
        filter: &AgentFilter,
        page: &PageRequest,
    ) -> Result<Page<Agent>, PhoenixError> {
        Ok(self.stores().agents.list_agents(filter, page).await?)
    }

    /// Revokes an agent's credential.
    pub async fn revoke_agent(&self, id: AgentId) -> Result<(), PhoenixError> {
        Ok(self.stores().agents.revoke(id).await?)
    }

    /// The user token a bearer secret belongs to; `Unauthenticated` otherwise.
    pub async fn authenticate_user(&self, secret: &str) -> Result<ApiToken, PhoenixError> {
        self.stores()
            .tokens
            .find_token(&SecretHash::of(secret))
            .await?
            .ok_or(PhoenixError::Unauthenticated)
    }

    /// Creates a user token; returns it and its secret (shown once).
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        created_by: &str,
    ) -> Result<(ApiToken, String), PhoenixError> {
        let mut errors = ValidationErrors::new();
        inputs::name(&mut errors, "name", name, inputs::MAX_NAME_CHARS);
        errors.into_result()?;
        let (token, secret) = ApiToken::generate(name, role, created_by, self.now());
        self.stores().tokens.create_token(&token).await?;
        Ok((token, secret))
    }

    /// Registers a token whose secret comes from configuration (bootstrap), unless a token
    /// with that secret exists already.
    pub async fn ensure_token(
        &self,
        name: &str,
        role: Role,
        secret: &str,
    ) -> Result<ApiToken, PhoenixError> {
        if let Some(existing) = self
            .stores()
            .tokens
            .find_token(&SecretHash::of(secret))
            .await?
        {
            return Ok(existing);
        }
        let mut errors = ValidationErrors::new();
        inputs::name(&mut errors, "name", name, inputs::MAX_NAME_CHARS);
        errors.into_result()?;
        let token = ApiToken::from_secret(name, role, "configuration", secret, self.now());
        match self.stores().tokens.create_token(&token).await {
            Ok(()) => Ok(token),
            // Another replica registered it concurrently.
            Err(StoreError::Conflict { .. }) => self.authenticate_user(secret).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Stores an agent's measurements. Every sample must be the agent's own, belong to an
    /// experiment that targets it and stay within the bounds of [`inputs::sample`];
    /// otherwise nothing is stored and the refusal is counted on the agent
    /// ([`Agent::refused`]).
    pub async fn ingest_samples(
        &self,
        agent: AgentId,
        samples: &[MeasurementSample],
    ) -> Result<AppendReport, PhoenixError> {
        let checked = self.check_samples(agent, samples, None).await;
        self.count_refusal(agent, checked).await?;
        Ok(self.stores().metrics.append_samples(samples).await?)
    }

    /// Counts a refused report on the agent when `checked` holds field errors, then
    /// returns `checked` unchanged. Other errors (a store failing) are not the agent's
    /// doing and are not counted. When the count itself fails, the refusal still answers.
    async fn count_refusal(
        &self,
        agent: AgentId,
        checked: Result<(), PhoenixError>,
    ) -> Result<(), PhoenixError> {
        if let Err(PhoenixError::Validation(errors)) = &checked {
            let reason = crate::agent::refusal_reason(errors);
            if let Err(e) = self
                .stores()
                .agents
                .record_refusal(agent, &reason, self.now())
                .await
            {
                tracing::warn!(%agent, error = %e, "could not count a refused report");
            }
        }
        checked
    }

    /// Every check of [`Phoenix::ingest_samples`], storing nothing: bounds, ownership,
    /// then plausibility ([`crate::plausibility`]) against `snapshot` (the one reported with
    /// the samples) or else the agent's stored snapshot, and against the agent's recent
    /// accepted samples of each experiment.
    async fn check_samples(
        &self,
        agent: AgentId,
        samples: &[MeasurementSample],
        snapshot: Option<&PackedSnapshot>,
    ) -> Result<(), PhoenixError> {
        if samples.len() > MAX_SAMPLES_PER_REPORT {
            let mut errors = ValidationErrors::new();
            errors.push(
                "samples",
                format!("at most {MAX_SAMPLES_PER_REPORT} samples per report"),
            );
            return Err(errors.into());
        }
        let mut errors = ValidationErrors::new();
        let now = self.now();
        for (i, sample) in samples.iter().enumerate() {
            inputs::sample(&mut errors, &format!("samples[{i}]"), sample, now);
        }
        errors.into_result()?;
        let mut errors = ValidationErrors::new();
        let mut checked = BTreeSet::new();
        let mut queries = BTreeMap::new();
        let mut deployed_at = BTreeMap::new();
        for (i, sample) in samples.iter().enumerate() {
            if sample.agent_id != agent {
                errors.push(
                    format!("samples[{i}].agent_id"),
                    "must be the reporting agent's id",
                );
                continue;
            }
            if !checked.insert(sample.experiment_id) {
                continue;
            }
            match self.stores().experiments.get(sample.experiment_id).await {
                Ok(experiment) if experiment.target(agent).is_some() => {
                    queries.insert(sample.experiment_id, experiment.queries.len());
                    if let Some(target) = experiment.target(agent) {
                        deployed_at.insert(sample.experiment_id, target.updated_at);
                    }
                }
                Ok(_) => errors.push(
                    format!("samples[{i}].experiment_id"),
                    "the experiment does not target this agent",
                ),
                Err(StoreError::NotFound { .. }) => {
                    errors.push(format!("samples[{i}].experiment_id"), "no such experiment");
                }
                Err(e) => return Err(e.into()),
            }
        }
        // What a sample says of the queries must fit its experiment's frozen list.
        for (i, sample) in samples.iter().enumerate() {
            let (Some(q), Some(&count)) = (&sample.queries, queries.get(&sample.experiment_id))
            else {
                continue;
            };
            if count == 0 {
                errors.push(
                    format!("samples[{i}].queries"),
                    "the experiment has no queries to evaluate",
                );
            } else {
                inputs::sample_queries(
                    &mut errors,
                    &format!("samples[{i}].queries"),
                    q,
                    Some(count),
                );
            }
        }
        errors.into_result()?;

        let mut errors = ValidationErrors::new();
        let stored;
        // Samples are held to the host's input (a pipeline cannot output more series than it
        // receives), never to a shipped output.
        let snapshot = match snapshot.filter(|s| s.source == SnapshotSource::Input) {
            Some(s) => Some(s),
            None => {
                stored = self.stores().metrics.snapshot(agent).await?;
                stored.as_ref()
            }
        };
        if let Some(snapshot) = snapshot {
            plausibility::against_snapshot(&mut errors, "samples", samples, snapshot, &deployed_at);
        }
        let mut recent = Vec::new();
        for experiment in samples
            .iter()
            .map(|s| s.experiment_id)
            .collect::<BTreeSet<_>>()
        {
            recent.extend(
                self.stores()
                    .metrics
                    .recent_samples(experiment, agent, plausibility::HISTORY_SAMPLES)
                    .await?,
            );
        }
        plausibility::against_history(&mut errors, "samples", samples, &recent);
        Ok(errors.into_result()?)
    }

    /// Stores an agent's cardinality snapshot (bounded by [`inputs::packed_snapshot`]).
    pub async fn put_snapshot(
        &self,
        agent: AgentId,
        snapshot: &PackedSnapshot,
    ) -> Result<(), PhoenixError> {
        let checked = self
            .check_snapshot(agent, snapshot.into(), "")
            .into_result();
        self.count_refusal(agent, checked.map_err(Into::into))
            .await?;
        Ok(self.stores().metrics.put_snapshot(snapshot).await?)
    }

    /// One report of an agent: its samples ([`Phoenix::ingest_samples`]) and its latest
    /// snapshot, packed (errors under `packed_snapshot.`) or spelled out by an agent that
    /// predates packing (errors under `snapshot.`, stored packed). Either both are
    /// acceptable or nothing is stored (and the refusal is counted once on the agent).
    /// Returns what the samples did and whether a snapshot was stored.
    pub async fn report_metrics(
        &self,
        agent: AgentId,
        samples: &[MeasurementSample],
        snapshot: Option<ReportedSnapshot<'_>>,
    ) -> Result<(AppendReport, bool), PhoenixError> {
        let packed_here;
        let (snapshot, checked) = match snapshot {
            None => (None, Ok(())),
            Some(ReportedSnapshot::Packed(packed)) => (
                Some(packed),
                self.check_snapshot(agent, packed.into(), "packed_snapshot.")
                    .into_result()
                    .map_err(Into::into),
            ),
            Some(ReportedSnapshot::SpelledOut(spelled)) => {
                let checked = self
                    .check_snapshot(agent, spelled.into(), "snapshot.")
                    .into_result()
                    .map_err(Into::into);
                packed_here = PackedSnapshot::pack(spelled);
                (Some(&packed_here), checked)
            }
        };
        let checked = match checked {
            Ok(()) if !samples.is_empty() => self.check_samples(agent, samples, snapshot).await,
            other => other,
        };
        self.count_refusal(agent, checked).await?;
        let appended = if samples.is_empty() {
            AppendReport::default()
        } else {
            self.stores().metrics.append_samples(samples).await?
        };
        if let Some(snapshot) = snapshot {
            self.stores().metrics.put_snapshot(snapshot).await?;
        }
        Ok((appended, snapshot.is_some()))
    }

    fn check_snapshot(
        &self,
        agent: AgentId,
        snapshot: ReportedSnapshot<'_>,
        prefix: &str,
    ) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        let (agent_id, series, series_field) = match snapshot {
            ReportedSnapshot::Packed(p) => (p.agent_id, p.len(), "metrics"),
            ReportedSnapshot::SpelledOut(s) => (s.agent_id, s.series.len(), "series"),
        };
        if agent_id != agent {
            errors.push("agent_id", "must be the reporting agent's id");
        }
        if series > MAX_SNAPSHOT_SERIES {
            errors.push(
                series_field,
                format!("at most {MAX_SNAPSHOT_SERIES} series"),
            );
        } else {
            match snapshot {
                ReportedSnapshot::Packed(p) => inputs::packed_snapshot(&mut errors, p, self.now()),
                ReportedSnapshot::SpelledOut(s) => inputs::snapshot(&mut errors, s, self.now()),
            }
        }
        for e in &mut errors.errors {
            e.path.insert_str(0, prefix);
        }
        errors
    }

    /// Every agent's current snapshot of each source (input, shipped), ordered by agent,
    /// spelled out (stores keep them packed).
    pub async fn snapshots(&self) -> Result<Vec<CardinalitySnapshot>, PhoenixError> {
        let packed = self.stores().metrics.snapshots().await?;
        Ok(packed.iter().map(PackedSnapshot::unpack).collect())
    }

    /// Lists agents passing `filter` (all pages); see [`Phoenix::all_agents`].
    pub async fn fleet(&self) -> Result<Vec<Agent>, PhoenixError> {
        self.all_agents(&AgentFilter::default()).await
    }
}
