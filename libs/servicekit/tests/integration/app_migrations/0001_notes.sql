-- State of the demo service used to test the app factory end to end.
CREATE TABLE notes (
    id     uuid PRIMARY KEY,
    org_id text NOT NULL,
    text   text NOT NULL
);

-- What the demo service's own consumer did with the events it published.
CREATE TABLE note_effects (
    note_id uuid PRIMARY KEY
);
