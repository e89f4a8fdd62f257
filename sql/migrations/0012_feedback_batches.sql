-- Batches sent with an Idempotency-Key header (issue 14): the key, a hash of the whole request (every
-- item's own client_event_id and request hash, in order) and the feedback ids it answered with. One key
-- names one request: the same batch again is answered from here (200, replayed), another batch under the
-- key is 409. The items themselves are stored under their own client_event_id or under no key, so a
-- batch's key can never meet a single event's key in feedback.idempotency_key. Idempotent.

CREATE TABLE IF NOT EXISTS feedback_batches (
    idempotency_key  text        PRIMARY KEY,
    request_hash     char(64)    NOT NULL,
    feedback_ids     bigint[]    NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
