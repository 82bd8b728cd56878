-- Cost history: one row per rollup bucket (hourly or daily), written with compare-and-set
-- on `version`. The body is the `RollupBucket` as serde writes it (sums over its
-- observations, bounded rows per breakdown); every rule that fills it is in phoenix-core.
CREATE TABLE history_rollups (
    granularity text NOT NULL CHECK (granularity IN ('hour', 'day')),
    start_at timestamptz NOT NULL,
    version bigint NOT NULL CHECK (version > 0),
    body jsonb NOT NULL,
    PRIMARY KEY (granularity, start_at)
);
