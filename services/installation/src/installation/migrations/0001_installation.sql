-- The installation service's model: orgs, projects, builders and their roles, API keys,
-- integrations with immutable revisions, groups, consumers, connections, installations
-- with versioned configs, and the health each credential last reported.
-- Every tenant row carries org_id; every statement filters on it (repository.TENANT).

CREATE TABLE orgs (
    id          text        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id          uuid        PRIMARY KEY,
    org_id      text        NOT NULL REFERENCES orgs (id),
    name        text        NOT NULL,
    app_name    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE builders (
    id          text        NOT NULL,             -- the token subject (idpRef)
    org_id      text        NOT NULL REFERENCES orgs (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)                      -- one subject may build in several orgs
);

-- project_id NULL: the org role. principal_type builder | team.
CREATE TABLE role_bindings (
    org_id          text        NOT NULL REFERENCES orgs (id),
    project_id      uuid        REFERENCES projects (id) ON DELETE CASCADE,
    principal_type  text        NOT NULL CHECK (principal_type IN ('builder', 'team')),
    principal_id    text        NOT NULL,
    role            text        NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX role_bindings_unique
    ON role_bindings (org_id, COALESCE(project_id, '00000000-0000-0000-0000-000000000000'),
                      principal_type, principal_id);

-- The key itself is never stored: sha256 of 256 random bits is as strong as the key.
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    org_id      text        NOT NULL,
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    label       text        NOT NULL,
    scopes      text[]      NOT NULL,
    key_hash    bytea       NOT NULL UNIQUE,
    active      boolean     NOT NULL DEFAULT true,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id, created_at);

CREATE TABLE integrations (
    id                  uuid        PRIMARY KEY,
    org_id              text        NOT NULL,
    project_id          uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                text        NOT NULL,
    provider            text,
    connector_id        uuid,
    latest_revision_id  uuid,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name),
    CHECK ((provider IS NULL) <> (connector_id IS NULL))
);

-- Immutable: no statement updates or deletes a revision row.
CREATE TABLE revisions (
    id              uuid        PRIMARY KEY,
    org_id          text        NOT NULL,
    integration_id  uuid        NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    spec_version    text        NOT NULL,
    content         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revisions_integration ON revisions (integration_id, created_at);

CREATE TABLE groups (
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    group_ref   text        NOT NULL,
    org_id      text        NOT NULL,
    group_name  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, group_ref)
);

CREATE TABLE consumers (
    project_id     uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    consumer_ref   text        NOT NULL,
    org_id         text        NOT NULL,
    consumer_name  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, consumer_ref)
);

CREATE TABLE connections (
    id                      uuid        PRIMARY KEY,
    org_id                  text        NOT NULL,
    project_id              uuid        NOT NULL REFERENCES projects (id),
    provider                text        NOT NULL,
    connector_id            uuid,
    provider_app_id         uuid,
    group_ref               text        NOT NULL,
    consumer_ref            text        NOT NULL,
    provider_workspace_ref  text,
    provider_consumer_ref   text,
    provider_metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    auth_type               text        NOT NULL,
    status                  text        NOT NULL
        CHECK (status IN ('created', 'working', 'bad_credentials')),
    credential_id           uuid        NOT NULL,
    source_credential_id    uuid,                  -- what a password grant was run with
    session_id              uuid        UNIQUE,    -- the OAuth session that made it, once
    version                 bigint      NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (project_id, group_ref) REFERENCES groups (project_id, group_ref),
    FOREIGN KEY (project_id, consumer_ref) REFERENCES consumers (project_id, consumer_ref)
);
CREATE INDEX connections_project ON connections (project_id, created_at, id);
CREATE INDEX connections_credential ON connections (credential_id);

CREATE TABLE installations (
    id              uuid        PRIMARY KEY,
    org_id          text        NOT NULL,
    project_id      uuid        NOT NULL REFERENCES projects (id),
    integration_id  uuid        NOT NULL REFERENCES integrations (id),
    connection_id   uuid        NOT NULL REFERENCES connections (id),
    group_ref       text        NOT NULL,
    consumer_ref    text,
    health_status   text        NOT NULL DEFAULT 'healthy'
        CHECK (health_status IN ('healthy', 'unhealthy', 'unknown')),
    health_reason   text,
    created_by      text        NOT NULL,
    version         bigint      NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (project_id, group_ref) REFERENCES groups (project_id, group_ref),
    UNIQUE (integration_id, group_ref)
);
CREATE INDEX installations_connection ON installations (connection_id);
CREATE INDEX installations_integration ON installations (integration_id, created_at, id);

-- Each update of an installation's config is a new row; the newest is current.
CREATE TABLE installation_configs (
    id               uuid        PRIMARY KEY,
    installation_id  uuid        NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
    revision_id      uuid        NOT NULL REFERENCES revisions (id),
    content          jsonb       NOT NULL,
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX installation_configs_current ON installation_configs (installation_id, created_at DESC);

-- The newest health fact per credential: refresh_failed carries no version, so the
-- occurred_at of the event that set it orders the facts.
CREATE TABLE credential_health (
    credential_id  uuid        PRIMARY KEY,
    bad            boolean     NOT NULL,
    reason         text        NOT NULL,
    occurred_at    timestamptz NOT NULL
);

-- Event envelopes built in SQL for set-based health changes (one statement, many rows).
CREATE FUNCTION event_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

CREATE FUNCTION utc_json(ts timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
