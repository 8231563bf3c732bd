-- A table the test handler writes its effects to; `id` records the order applied.
CREATE TABLE effects (
    id        bigserial PRIMARY KEY,
    event_id  uuid   NOT NULL,
    key       text   NOT NULL,
    seq       int    NOT NULL
);
