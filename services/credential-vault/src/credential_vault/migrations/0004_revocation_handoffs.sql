-- Revocation hand-offs: when an oauth2-token credential is deleted on request, its
-- sealed data is kept here, still encrypted under the same data key (never decrypted
-- by the move), so the OAuth broker can revoke its tokens at the provider (RFC 7009)
-- after the credential is gone. POST /v1/credentials/{id}:take-revocation answers it
-- once and deletes the row in the same statement; rows older than
-- VAULT_REVOCATION_HANDOFF_SECONDS are destroyed by the purge. The foreign key keeps
-- the data key alive while a hand-off uses it (drop_unused_data_keys counts these rows).
CREATE TABLE revocation_handoffs (
    credential_id uuid        PRIMARY KEY,
    org_id        text        NOT NULL,
    version       integer     NOT NULL CHECK (version >= 1),
    dek_version   integer     NOT NULL,
    kek_version   integer     NOT NULL,
    ciphertext    bytea       NOT NULL,
    deleted_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, dek_version) REFERENCES data_keys (org_id, version)
);

CREATE INDEX revocation_handoffs_deleted_at ON revocation_handoffs (deleted_at);
CREATE INDEX revocation_handoffs_data_key ON revocation_handoffs (org_id, dek_version);

ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN
    ('create', 'read', 'list', 'reveal', 'update', 'refresh', 'delete', 'expire',
     'take_revocation'));
