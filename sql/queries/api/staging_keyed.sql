-- For every staged item with a key: the stored row's id and whether its body matches (after the insert,
-- so rows committed meanwhile by concurrent retries are seen too).
SELECT s.ord, f.id, f.request_hash = s.request_hash AS same_body
FROM feedback_staging s
JOIN feedback f ON f.idempotency_key = s.idempotency_key
WHERE s.idempotency_key IS NOT NULL
ORDER BY s.ord
