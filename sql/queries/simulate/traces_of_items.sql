SELECT id, trace_id
FROM review_items
WHERE id = ANY(%(ids)s)
