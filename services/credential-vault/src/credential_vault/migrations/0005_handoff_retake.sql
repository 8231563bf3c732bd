-- A take with an Idempotency-Key keeps the hand-off, marked taken under that key, so the
-- same caller's retry (its first answer lost to a timeout) gets the tokens again for
-- RETAKE_SECONDS; the purge then destroys it. A take without a key still deletes the
-- row in the statement that reads it.
ALTER TABLE revocation_handoffs ADD COLUMN taken_at timestamptz;
ALTER TABLE revocation_handoffs ADD COLUMN take_key text;
CREATE INDEX revocation_handoffs_taken_at ON revocation_handoffs (taken_at)
    WHERE taken_at IS NOT NULL;
