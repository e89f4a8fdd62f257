-- Low-confidence review items still waiting for a reviewer, with the confidence routing orders them by.
SELECT ri.id, p.confidence, ri.created_at
FROM review_items ri
JOIN predictions p ON p.trace_id = ri.trace_id
WHERE ri.model_name = %(model_name)s AND ri.status = 'queued' AND ri.reason = 'low_confidence'
ORDER BY p.confidence, ri.created_at, ri.id
LIMIT %(limit)s
FOR UPDATE OF ri SKIP LOCKED
