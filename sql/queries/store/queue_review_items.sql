-- Queue review items for many traces at once; an item already queued or open for the same trace and
-- reason is left alone (partial unique index review_items_active_uq).
INSERT INTO review_items (trace_id, model_name, model_version, reason, priority, assigned_reviewers)
SELECT p.trace_id, p.model_name, p.model_version, r.reason, r.priority, %(assigned_reviewers)s
FROM unnest(%(trace_ids)s::uuid[], %(reasons)s::text[], %(priorities)s::float8[]) AS r (trace_id, reason, priority)
JOIN predictions p ON p.trace_id = r.trace_id
ON CONFLICT (trace_id, reason) WHERE status IN ('queued', 'open') DO NOTHING
RETURNING id
