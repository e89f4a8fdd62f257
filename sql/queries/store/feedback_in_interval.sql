-- Feedback created in [start, end), oldest first; served by feedback_time_idx / feedback_model_time_idx.
SELECT id, trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
       priority, failure_mode, review_item_id, latency_seconds, idempotency_key, is_negative, created_at
FROM feedback
WHERE created_at >= %(start)s AND created_at < %(end)s
  AND (%(model_name)s::text IS NULL OR model_name = %(model_name)s)
ORDER BY created_at, id
