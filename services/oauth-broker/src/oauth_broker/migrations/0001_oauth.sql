-- The broker's own state. No secret lives here: tokens and client secrets stay in the
-- vault; the only short-lived secret is a pending session's PKCE verifier, cleared
-- when the session ends. State values are stored as SHA-256 digests.

-- Non-secret OAuth settings copied from registry events (auth scheme configs and
-- provider apps), so refreshes work while the registry is down. config_key is
-- 'config:<connectorId>:<authSchemeConfigId>' or 'app:<providerAppId>'; version
-- guards out-of-order events; a deleted row stays as a tombstone.
CREATE TABLE oauth_configs (
    config_key text PRIMARY KEY,
    org_id     text NOT NULL,
    provider   text,
    version    bigint NOT NULL,
    deleted    boolean NOT NULL DEFAULT false,
    settings   jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE redirect_settings (
    org_id                text PRIMARY KEY,
    allowed_redirect_urls text[] NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    org_id          text NOT NULL,
    state_hash      bytea NOT NULL UNIQUE,
    config_key      text NOT NULL,
    grant_type      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed')),
    consumed        boolean NOT NULL DEFAULT false,
    code_verifier   text,
    expected_issuer text,
    redirect_url    text,
    scopes          text[] NOT NULL,
    context         jsonb NOT NULL,
    credential_id   uuid,
    error           text,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX sessions_pending_expiry ON sessions (expires_at) WHERE status = 'pending';

-- One row per oauth2-token credential the broker keeps fresh: the refresh schedule,
-- the failure state and the cross-replica lease (owner + fencing token).
CREATE TABLE tokens (
    credential_id     uuid PRIMARY KEY,
    org_id            text NOT NULL,
    config_key        text,
    vault_version     bigint NOT NULL,
    deleted           boolean NOT NULL DEFAULT false,
    has_refresh_token boolean NOT NULL DEFAULT false,
    access_expires_at timestamptz,
    issued_at         timestamptz NOT NULL DEFAULT now(),
    due_at            timestamptz,
    status            text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    retry_at          timestamptz,
    last_error        text,
    lease_owner       text,
    lease_until       timestamptz,
    grant_type        text,
    source_credential_id uuid,
    fencing           bigint NOT NULL DEFAULT 0,
    refreshes         bigint NOT NULL DEFAULT 0
);
CREATE INDEX tokens_due ON tokens (due_at) WHERE status = 'active' AND NOT deleted;
