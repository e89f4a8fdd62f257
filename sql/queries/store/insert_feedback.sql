-- One feedback event; model name and version are copied from the prediction it is about.
-- With an idempotency key, a retry inserts nothing (ON CONFLICT) and the caller reads the original. With
-- refuse_batch_key (the API's single events), neither does a key that names a stored batch (the caller
-- reports it), so the insert can be committed in the same round trip as the key's lock and look-up.
INSERT INTO feedback (trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
                      priority, failure_mode, review_item_id, latency_seconds, idempotency_key, request_hash)
SELECT p.trace_id, p.model_name, p.model_version,
       %(kind)s, %(rating)s, %(label)s, %(signal)s, %(comment)s, %(user_id)s, %(source)s, %(priority)s,
       %(failure_mode)s, %(review_item_id)s, %(latency_seconds)s, %(idempotency_key)s, %(request_hash)s
FROM predictions p
WHERE p.trace_id = %(trace_id)s
  AND NOT (%(refuse_batch_key)s
           AND EXISTS (SELECT 1 FROM feedback_batches b WHERE b.idempotency_key = %(idempotency_key)s))
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
          priority, failure_mode, review_item_id, latency_seconds, idempotency_key, is_negative, created_at
