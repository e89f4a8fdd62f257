-- Second opinions waiting for a reviewer, least settled consensus first.
SELECT ri.id, ri.excluded_reviewers, p.confidence, ri.created_at
FROM review_items ri
JOIN predictions p ON p.trace_id = ri.trace_id
WHERE ri.model_name = %(model_name)s AND ri.status = 'queued' AND ri.reason = 'second_opinion'
ORDER BY ri.priority DESC, ri.created_at, ri.id
LIMIT %(limit)s
FOR UPDATE OF ri SKIP LOCKED
