-- Inbox: the ids of events this service has already applied. A consumer records the
-- id in the same transaction as the effect, so a redelivered event has no second effect.
CREATE TABLE inbox (
    event_id      uuid        PRIMARY KEY,
    topic         text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX inbox_processed_at ON inbox (processed_at);
