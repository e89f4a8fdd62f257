-- Feedback already stored under any of these idempotency keys (retries), served by the unique index.
-- The keys come as one JSON array: far cheaper to send than a 10,000-element array parameter.
SELECT f.idempotency_key, f.id, f.request_hash
FROM feedback f
WHERE f.idempotency_key IN (SELECT k FROM json_array_elements_text(%(keys)s::json) AS k)
