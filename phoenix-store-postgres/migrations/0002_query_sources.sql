-- The query inventory: imported sources of PromQL queries (rule files, dashboards, lists),
-- unique by name. The body is the `QuerySource` as serde writes it; `id` is authoritative
-- (a source imported again under the same name keeps the row's id).
CREATE TABLE query_sources (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    body jsonb NOT NULL
);
