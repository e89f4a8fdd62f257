SELECT id, trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
       priority, failure_mode, review_item_id, latency_seconds, idempotency_key, is_negative, created_at
FROM feedback
WHERE trace_id = %(trace_id)s
ORDER BY created_at, id
