SELECT id, trace_id, model_name, model_version, reason, priority, status, assigned_reviewers, hitl_ref,
       created_at, opened_at, answered_at
FROM review_items
WHERE model_name = %(model_name)s AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY priority DESC, id
