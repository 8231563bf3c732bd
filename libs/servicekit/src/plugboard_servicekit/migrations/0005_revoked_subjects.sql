-- Token subjects this service refuses (plugboard_servicekit.revocations): a platform
-- token whose `sub` is here and whose `iat` is not after `revoked_at` gets 401. Written
-- by the built-in `api_key.revoked` consumer (inbox: once per event), announced with
-- NOTIFY so every replica's in-memory set follows; a row is useless once `not_after`
-- (the latest `exp` of any such token) has passed, and is purged then.
CREATE TABLE revoked_subjects (
    subject      text        PRIMARY KEY,
    revoked_at   timestamptz NOT NULL,
    not_after    timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX revoked_subjects_not_after ON revoked_subjects (not_after);
