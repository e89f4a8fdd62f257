-- Hand the chosen items to reviewers: one statement for the whole round, each with its HITL task and the
-- reviewers who may answer it (empty: anyone).
UPDATE review_items ri
SET status = 'open', opened_at = now(), hitl_ref = s.hitl_ref,
    assigned_reviewers = ARRAY(SELECT jsonb_array_elements_text(s.reviewers))
FROM unnest(%(ids)s::bigint[], %(hitl_refs)s::jsonb[], %(reviewers)s::jsonb[]) AS s (id, hitl_ref, reviewers)
WHERE ri.id = s.id AND ri.status = 'queued'
RETURNING ri.id
