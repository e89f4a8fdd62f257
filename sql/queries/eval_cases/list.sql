-- A model's eval cases with where they came from (the feedback that carried the label) and the latest
-- change to their must-pass state; all of them, or the ids asked for.
SELECT c.id, c.trace_id::text AS trace_id, c.expected_label, c.wrong_label, c.must_pass, c.feedback_id,
       f.source AS feedback_source, f.user_id AS feedback_by, c.created_at,
       e.actor AS changed_by, e.reason AS change_reason, e.created_at AS changed_at
FROM eval_cases c
LEFT JOIN feedback f ON f.id = c.feedback_id
LEFT JOIN LATERAL (
    SELECT actor, reason, created_at
    FROM eval_case_events
    WHERE eval_case_id = c.id
    ORDER BY id DESC
    LIMIT 1
) e ON true
WHERE c.model_name = %(model_name)s
  AND (%(ids)s::bigint[] IS NULL OR c.id = ANY(%(ids)s::bigint[]))
ORDER BY c.id
