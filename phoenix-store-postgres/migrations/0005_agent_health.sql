-- Agents' health history: one row per heartbeat (the `HealthPoint` as serde writes it),
-- at most `MAX_HEALTH_POINTS_PER_AGENT` per agent (trimmed by the append, under the
-- agent's row lock), older ones deleted by the controller's health retention.
CREATE TABLE agent_health (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    at timestamptz NOT NULL,
    body jsonb NOT NULL
);

CREATE INDEX agent_health_agent_at ON agent_health (agent_id, at);
CREATE INDEX agent_health_at ON agent_health (at);
