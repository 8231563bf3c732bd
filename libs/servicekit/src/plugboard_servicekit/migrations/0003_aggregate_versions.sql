-- The last version a consumer applied per aggregate (plugboard_servicekit.versions).
-- Events of one aggregate travel on several topics (created, updated, deleted), so
-- they can arrive in any order; an event applies only when its version is newer.
-- A deletion keeps its row (deleted = true) as a tombstone: a late older event of a
-- deleted aggregate is stale and changes nothing.
CREATE TABLE aggregate_versions (
    aggregate     text        NOT NULL,
    aggregate_id  text        NOT NULL,
    version       bigint      NOT NULL CHECK (version >= 1),
    deleted       boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate, aggregate_id)
);
