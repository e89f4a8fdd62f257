SELECT id, trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
       priority, failure_mode, review_item_id, latency_seconds, idempotency_key, is_negative, created_at,
       request_hash
FROM feedback
WHERE idempotency_key = %(idempotency_key)s
