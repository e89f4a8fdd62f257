-- The trace a HITL review task shows (review_items.hitl_ref names its DAG run and map index).
SELECT trace_id
FROM review_items
WHERE hitl_ref->>'run_id' = %(run_id)s
  AND (hitl_ref->>'map_index')::int = %(map_index)s
