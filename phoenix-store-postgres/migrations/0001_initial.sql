-- Phoenix on PostgreSQL: one schema (chosen at connect, `phoenix` by default) holding
-- every aggregate.
--
-- Typed bodies (experiments, events, agents, deployments, payloads, samples) are JSONB
-- written and read by serde, so they round-trip exactly; the columns next to them are
-- the ones that are filtered, ordered, compared or indexed. Enumerations are text with
-- CHECK constraints; their names come from the Rust enums' `as_str`, and a test checks
-- that every Rust variant is accepted and nothing else is.
--
-- No rule lives here: which transition is legal, when a task is retried, when an agent
-- is lost are all decided in Rust (phoenix-core). SQL applies decisions atomically.

-- The deployment's single time source: the database clock, plus a shift that only tests
-- move (`TimeShift`). Every lease deadline, run_at and task timestamp comes from it.
CREATE FUNCTION phoenix_now(shift_ms bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN now() + shift_ms * interval '1 millisecond';

-- Experiments -----------------------------------------------------------------------

CREATE TABLE experiments (
    id uuid PRIMARY KEY,
    phase text NOT NULL CHECK (phase IN (
        'created', 'deploying', 'running', 'analyzing', 'completed', 'promoting',
        'promoted', 'stopping', 'stopped', 'rolling_back', 'rolled_back', 'failed')),
    -- Compare-and-set key: +1 per applied transition.
    version bigint NOT NULL CHECK (version >= 1),
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Lists are newest first by id (UUID v7); the controller lists active phases.
CREATE INDEX experiments_by_phase ON experiments (phase, id DESC);

CREATE TABLE experiment_events (
    experiment_id uuid NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq >= 1),
    body jsonb NOT NULL,
    PRIMARY KEY (experiment_id, seq)
);

-- Task queue --------------------------------------------------------------------------
--
-- The hot table. Finished tasks are pruned by the controller's retention pass, so it
-- holds open tasks plus a bounded tail. Every access path is an index bound to literal
-- states, so the planner never has to guess from statistics.

CREATE TABLE tasks (
    id uuid PRIMARY KEY,
    agent_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN (
        'deploy_pipelines', 'remove_pipeline', 'replace_pipeline', 'collect_snapshot')),
    experiment_id uuid,
    deployment_id uuid,
    priority smallint NOT NULL,
    unique_key text,
    state text NOT NULL CHECK (state IN (
        'pending', 'leased', 'succeeded', 'failed', 'dead_lettered', 'cancelled')),
    run_at timestamptz NOT NULL,
    attempts integer NOT NULL CHECK (attempts >= 0),
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    -- The fencing token of the current lease (a fresh UUID v4 per claim).
    lease_token uuid,
    lease_expires_at timestamptz,
    last_error text,
    result jsonb,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT tasks_lease_iff_leased CHECK (
        (state = 'leased') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL))
) WITH (
    -- A queue table churns: vacuum and analyze it long before the 20% default.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);

-- Claim: the pending tasks of one agent, in claim order.
CREATE INDEX tasks_claimable ON tasks (agent_id, priority DESC, run_at, id)
    WHERE state = 'pending';
-- Expiry: leases by deadline.
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state = 'leased';
-- At most one open task per unique key.
CREATE UNIQUE INDEX tasks_unique_open ON tasks (unique_key)
    WHERE state IN ('pending', 'leased') AND unique_key IS NOT NULL;
-- Listing and cancelling by owner.
CREATE INDEX tasks_by_agent ON tasks (agent_id, id DESC);
CREATE INDEX tasks_by_experiment ON tasks (experiment_id, id DESC)
    WHERE experiment_id IS NOT NULL;
CREATE INDEX tasks_by_deployment ON tasks (deployment_id, id DESC)
    WHERE deployment_id IS NOT NULL;
-- Retention: finished tasks by age.
CREATE INDEX tasks_prunable ON tasks (updated_at) WHERE state IN ('succeeded', 'cancelled');

-- Agents and user tokens ------------------------------------------------------------------

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('healthy', 'degraded', 'lost')),
    revoked boolean NOT NULL,
    -- SHA-256 (hex) of the agent's secret; the secret itself is never stored.
    secret_hash text NOT NULL,
    body jsonb NOT NULL
);

CREATE TABLE api_tokens (
    id uuid PRIMARY KEY,
    -- SHA-256 (hex) of a 256-bit secret: looked up by equality (nothing to brute-force).
    hash text NOT NULL UNIQUE,
    revoked boolean NOT NULL,
    body jsonb NOT NULL
);

-- Measurements ------------------------------------------------------------------------

CREATE TABLE samples (
    experiment_id uuid NOT NULL,
    agent_id uuid NOT NULL,
    seq bigint NOT NULL,
    taken_at timestamptz NOT NULL,
    -- NULL once trimmed past the per-experiment cap: the row stays as the dedup key, so a
    -- re-sent old sample is still recognised as a duplicate.
    body jsonb,
    PRIMARY KEY (experiment_id, agent_id, seq)
);

CREATE INDEX samples_in_order ON samples (experiment_id, taken_at, agent_id, seq)
    WHERE body IS NOT NULL;

-- Samples kept per experiment (maintained with each append, so trimming needs no count).
CREATE TABLE sample_counts (
    experiment_id uuid PRIMARY KEY,
    kept bigint NOT NULL CHECK (kept >= 0)
);

CREATE TABLE snapshots (
    agent_id uuid PRIMARY KEY,
    body jsonb NOT NULL
);

-- Quick deployments -----------------------------------------------------------------------

CREATE TABLE deployments (
    id uuid PRIMARY KEY,
    state text NOT NULL CHECK (state IN (
        'rolling', 'paused', 'completed', 'rolling_back', 'rolled_back')),
    version bigint NOT NULL CHECK (version >= 1),
    body jsonb NOT NULL
);
