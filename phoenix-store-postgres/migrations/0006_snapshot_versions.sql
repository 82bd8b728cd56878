-- A version stamp, the time taken and the interval beside every snapshot body (one per
-- agent and source), so that the fleet's host set is chosen and a fleet cache learns what
-- changed from one small read (`snapshot_versions`), fetching only the changed bodies.
-- Every write of a snapshot draws a new stamp from the sequence; the rows already stored
-- (inputs and shipped outputs alike) get one each here.
CREATE SEQUENCE snapshot_versions;

ALTER TABLE snapshots
    ADD COLUMN version bigint,
    ADD COLUMN taken_at timestamptz,
    ADD COLUMN interval_secs integer;

UPDATE snapshots
SET version = nextval('snapshot_versions'),
    taken_at = (body->>'taken_at')::timestamptz,
    interval_secs = (body->>'interval_secs')::integer;

ALTER TABLE snapshots
    ALTER COLUMN version SET DEFAULT nextval('snapshot_versions'),
    ALTER COLUMN version SET NOT NULL,
    ALTER COLUMN taken_at SET NOT NULL,
    ALTER COLUMN interval_secs SET NOT NULL;
