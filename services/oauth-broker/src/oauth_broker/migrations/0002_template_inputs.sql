-- The inputs ({"workspace": "acme"}) that filled a provider app's URL templates when the
-- credential was made; its refreshes fill the same templates with them.
ALTER TABLE tokens ADD COLUMN template_inputs jsonb;
