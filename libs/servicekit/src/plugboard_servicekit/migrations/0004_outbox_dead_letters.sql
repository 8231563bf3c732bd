-- Outbox rows the broker can never accept (larger than the producer's or broker's
-- size limit, an invalid topic name, ...). The relay parks such a row here with the
-- reason and keeps publishing the rows behind it; rows with the same topic and key
-- wait in the outbox (per-key order) until the dead letter is requeued or discarded
-- (outbox.requeue_dead_letter / outbox.discard_dead_letter). `id` is the outbox id,
-- so a requeued row goes back to its place in the order.
CREATE TABLE outbox_dead_letters (
    id          bigint      PRIMARY KEY,
    event_id    uuid        NOT NULL,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    reason      text        NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX outbox_dead_letters_key ON outbox_dead_letters (topic, key);
