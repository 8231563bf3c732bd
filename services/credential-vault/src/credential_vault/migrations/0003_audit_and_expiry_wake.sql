-- Audit trail, hardened (issue 8 #13): every row names the request and trace it came
-- from, and denied or failed attempts are recorded too (outcome). Such attempts may
-- carry no credential id (a malformed id, a list), so (credential_id, id) cannot stay
-- the primary key. It stays the one B-tree (lookups by credential, NULLs included):
-- the log is written on every reveal, and ids are unique by their identity sequence.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey;
CREATE INDEX audit_log_credential ON audit_log (credential_id, id);
ALTER TABLE audit_log ALTER COLUMN credential_id DROP NOT NULL;
ALTER TABLE audit_log ALTER COLUMN version DROP NOT NULL;
ALTER TABLE audit_log ADD COLUMN request_id text;
ALTER TABLE audit_log ADD COLUMN trace_id text;
ALTER TABLE audit_log ADD COLUMN outcome text NOT NULL DEFAULT 'ok'
    CHECK (outcome IN ('ok', 'denied', 'not_found', 'failed'));
ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN
    ('create', 'read', 'list', 'reveal', 'update', 'refresh', 'delete', 'expire'));

-- Append-only, even for the service's own role (which owns the table): a trigger
-- refuses UPDATE, DELETE and TRUNCATE, so a compromised or buggy process cannot
-- rewrite what happened. Dropping the trigger needs a migration, which is reviewed.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Sweeper wake-up (issue 11): a write that sets an expiry tells the sweepers when
-- (epoch seconds), so one asleep until a later time wakes for it. NOTIFY is sent on
-- commit only; the channel name carries the schema so schemas sharing a database
-- (tests, several vaults) do not wake each other.
CREATE FUNCTION notify_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.credential_expiry',
                      extract(epoch FROM NEW.expires_at)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_expiry_set AFTER INSERT ON credentials
    FOR EACH ROW WHEN (NEW.expires_at IS NOT NULL) EXECUTE FUNCTION notify_expiry();
CREATE TRIGGER credentials_expiry_changed AFTER UPDATE OF expires_at ON credentials
    FOR EACH ROW WHEN (NEW.expires_at IS NOT NULL AND NEW.expires_at IS DISTINCT FROM OLD.expires_at)
    EXECUTE FUNCTION notify_expiry();
