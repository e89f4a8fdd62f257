-- Review items with their predictions, locked for the caller's transaction: used to build the review
-- tasks and to record answers.
SELECT ri.id, ri.status, ri.reason, ri.excluded_reviewers, ri.trace_id, ri.model_name, ri.model_version,
       ri.opened_at, ri.answered_at, ri.hitl_ref, ri.assigned_reviewers,
       p.input, p.output_label, p.confidence, p.probabilities, p.slice
FROM review_items ri
JOIN predictions p ON p.trace_id = ri.trace_id
WHERE ri.id = ANY(%(ids)s::bigint[])
ORDER BY p.confidence, ri.created_at, ri.id
FOR UPDATE OF ri
