-- What an idempotency key names when a single event's insert stored nothing under it: a stored batch
-- (names_batch), and the feedback row stored under it before, if any (id is NULL when none). One row.
SELECT EXISTS (SELECT 1 FROM feedback_batches b WHERE b.idempotency_key = %(idempotency_key)s) AS names_batch,
       f.id, f.trace_id, f.model_name, f.model_version, f.kind, f.rating, f.label, f.signal, f.comment,
       f.user_id, f.source, f.priority, f.failure_mode, f.review_item_id, f.latency_seconds, f.idempotency_key,
       f.is_negative, f.created_at, f.request_hash
FROM (SELECT 1) AS one
LEFT JOIN feedback f ON f.idempotency_key = %(idempotency_key)s
