-- The registry's own tables. Every row carries org_id: the tenant predicate of every query.

CREATE TABLE connectors (
    id uuid PRIMARY KEY,
    org_id text NOT NULL,
    name text NOT NULL,
    protocol text NOT NULL CHECK (protocol IN ('http', 'bigquery')),
    base_url text,
    dataset_id text,
    documentation_url text,
    icon_url text,
    tags text[] NOT NULL DEFAULT '{}',
    categories text[] NOT NULL DEFAULT '{}',
    connection_variables jsonb NOT NULL DEFAULT '[]',
    provider text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connectors_name_per_org UNIQUE (org_id, name)
);
CREATE INDEX connectors_org_page ON connectors (org_id, id);

CREATE TABLE connector_versions (
    id uuid PRIMARY KEY,
    connector_id uuid NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    org_id text NOT NULL,
    name text NOT NULL,
    description text,
    is_default boolean NOT NULL DEFAULT false,
    published_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connector_versions_name UNIQUE (connector_id, name)
);
CREATE UNIQUE INDEX connector_versions_one_default
    ON connector_versions (connector_id) WHERE is_default;

-- Deleted configs stay as tombstones (deleted_at) so a re-created config continues
-- the version sequence its consumers have seen.
CREATE TABLE auth_scheme_configs (
    connector_id uuid NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    id text NOT NULL,
    org_id text NOT NULL,
    scheme_type text NOT NULL,
    config jsonb NOT NULL,
    client_secret_credential_id uuid,
    version integer NOT NULL DEFAULT 1,
    position integer NOT NULL DEFAULT 0,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connector_id, id)
);

-- An org's own catalogue entries (POST /v1/providers, Nango imports); they shadow
-- built-in entries of the same name for that org.
CREATE TABLE providers (
    org_id text NOT NULL,
    name text NOT NULL,
    display_name text NOT NULL,
    auth_types text[] NOT NULL,
    entry jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, name)
);

CREATE TABLE provider_apps (
    id uuid PRIMARY KEY,
    org_id text NOT NULL,
    provider text NOT NULL,
    client_id text NOT NULL,
    client_secret_credential_id uuid,
    scopes text[] NOT NULL DEFAULT '{}',
    external_ref text,
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_apps_org_page ON provider_apps (org_id, id);

-- Which connections use which connector, learned from connection.* events.
CREATE TABLE connector_usages (
    connection_id uuid PRIMARY KEY,
    org_id text NOT NULL,
    connector_id uuid NOT NULL
);
CREATE INDEX connector_usages_connector ON connector_usages (org_id, connector_id);
