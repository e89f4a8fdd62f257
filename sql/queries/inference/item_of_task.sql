-- The review item a review task asks about (its hitl_ref), whatever its status.
SELECT id
FROM review_items
WHERE hitl_ref ->> 'dag_id' = %(dag_id)s AND hitl_ref ->> 'run_id' = %(run_id)s
  AND hitl_ref ->> 'task_id' = %(task_id)s AND (hitl_ref ->> 'map_index')::int = %(map_index)s
ORDER BY id DESC
LIMIT 1
