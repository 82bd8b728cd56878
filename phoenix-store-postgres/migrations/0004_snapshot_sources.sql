-- One current cardinality snapshot per agent and source: the host's raw input, or the
-- output its deployed pipeline ships. Every snapshot stored before is an input.
ALTER TABLE snapshots
    ADD COLUMN source text NOT NULL DEFAULT 'input' CHECK (source IN ('input', 'shipped'));
ALTER TABLE snapshots DROP CONSTRAINT snapshots_pkey;
ALTER TABLE snapshots ADD PRIMARY KEY (agent_id, source);
