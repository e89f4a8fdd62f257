-- Queue a second-opinion or gold question about one trace; never for the people in `excluded`, who
-- answered it before. An item already queued or open for the trace and reason is left alone.
INSERT INTO review_items (trace_id, model_name, model_version, reason, priority, excluded_reviewers)
SELECT p.trace_id, p.model_name, p.model_version, %(reason)s, %(priority)s, %(excluded)s::text[]
FROM predictions p
WHERE p.trace_id = %(trace_id)s::uuid
ON CONFLICT (trace_id, reason) WHERE status IN ('queued', 'open') DO NOTHING
RETURNING id
