-- Move staged items into feedback in item order; a key stored before (a retry) inserts nothing.
INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
                      priority, failure_mode, idempotency_key, request_hash)
SELECT s.trace_id, p.model_name, p.model_version, s.kind, s.rating, s.label, s.signal, s.comment, s.user_id,
       s.source, s.priority, s.failure_mode, s.idempotency_key, s.request_hash
FROM feedback_staging s
JOIN predictions p ON p.trace_id = s.trace_id
ORDER BY s.ord
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, idempotency_key, trace_id, model_name, model_version, kind, rating, priority, failure_mode, comment,
          is_negative
