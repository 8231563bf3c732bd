-- Data keys: one current AES-256 key per org (the newest version), stored wrapped by a
-- key-encryption key of the key ring (kek_version). Rotation adds versions; rewrap moves
-- every ciphertext of an org to its newest key and drops the keys nothing uses any more.
CREATE TABLE data_keys (
    org_id      text        NOT NULL,
    version     integer     NOT NULL CHECK (version >= 1),
    kek_version integer     NOT NULL CHECK (kek_version >= 1),
    wrapped     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, version)
);

CREATE INDEX data_keys_kek_version ON data_keys (kek_version);

-- Credentials: metadata in the clear, secret data only as AES-GCM ciphertext bound to
-- (org_id, id, version). fields_set lists field names (never values) for GET and list.
CREATE TABLE credentials (
    id                      uuid        PRIMARY KEY,
    org_id                  text        NOT NULL,
    name                    text        NOT NULL,
    type                    text        NOT NULL,
    version                 integer     NOT NULL CHECK (version >= 1),
    fields_set              text[]      NOT NULL,
    errors                  text[],
    expires_at              timestamptz,
    access_token_expires_at timestamptz,
    has_refresh_token       boolean     NOT NULL DEFAULT false,
    provider_app_id         uuid,
    dek_version             integer     NOT NULL,
    kek_version             integer     NOT NULL,
    ciphertext              bytea       NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, dek_version) REFERENCES data_keys (org_id, version)
);

CREATE INDEX credentials_org_id ON credentials (org_id, id);
CREATE INDEX credentials_org_type ON credentials (org_id, type, id);
CREATE INDEX credentials_org_name ON credentials (org_id, name, id);
CREATE INDEX credentials_expires_at ON credentials (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX credentials_kek_version ON credentials (kek_version);

-- Usages: connections (installation service) using a credential, from connection.* events.
CREATE TABLE credential_usages (
    credential_id uuid        NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    connection_id uuid        NOT NULL,
    org_id        text        NOT NULL,
    name          text        NOT NULL,
    connector_id  uuid,
    provider      text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (credential_id, connection_id)
);

CREATE INDEX credential_usages_connection ON credential_usages (connection_id);

-- Audit trail: who did what to which credential, when. Never any secret material.
-- Append-only and written on every reveal and expiry, so it has one B-tree (lookups by
-- credential) and a BRIN index for time ranges, which costs almost nothing to maintain.
CREATE TABLE audit_log (
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL DEFAULT now(),
    org_id        text        NOT NULL,
    actor         text        NOT NULL,
    action        text        NOT NULL
        CHECK (action IN ('create', 'reveal', 'update', 'refresh', 'delete', 'expire')),
    credential_id uuid        NOT NULL,
    version       integer     NOT NULL,
    PRIMARY KEY (credential_id, id)
);

CREATE INDEX audit_log_at ON audit_log USING brin (at);

-- For events built in SQL (the expiry sweep stages one per deleted row in the same
-- statement): a UUIDv7 (RFC 9562; gen_random_uuid with the ms timestamp and version 7
-- written over it) and a UTC timestamp as JSON text with a Z suffix.
CREATE FUNCTION event_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

CREATE FUNCTION utc_json(ts timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
