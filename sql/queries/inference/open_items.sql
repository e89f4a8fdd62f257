-- Hand the chosen items to reviewers: one statement for the whole round, each with its HITL task.
UPDATE review_items ri
SET status = 'open', opened_at = now(), hitl_ref = s.hitl_ref, assigned_reviewers = %(reviewers)s
FROM unnest(%(ids)s::bigint[], %(hitl_refs)s::jsonb[]) AS s (id, hitl_ref)
WHERE ri.id = s.id AND ri.status = 'queued'
RETURNING ri.id
