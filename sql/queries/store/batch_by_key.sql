-- The batch stored before under an Idempotency-Key header, if any.
SELECT request_hash, feedback_ids
FROM feedback_batches
WHERE idempotency_key = %(idempotency_key)s
