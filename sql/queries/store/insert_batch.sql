-- A batch sent with an Idempotency-Key header, in the transaction that stored its items.
INSERT INTO feedback_batches (idempotency_key, request_hash, feedback_ids)
VALUES (%(idempotency_key)s, %(request_hash)s, %(feedback_ids)s)
