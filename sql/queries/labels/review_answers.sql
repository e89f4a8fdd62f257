-- Every reviewer answer that says something about a trace's label, for one model (or one trace of it),
-- with the model's probabilities when it scored the trace and the kind of review that asked.
SELECT f.id, f.trace_id::text AS trace_id, f.user_id, f.kind, f.label, p.output_label, p.probabilities,
       p.model_version, ri.reason
FROM feedback f
JOIN predictions p ON p.trace_id = f.trace_id
LEFT JOIN review_items ri ON ri.id = f.review_item_id
WHERE f.model_name = %(model_name)s
  AND f.source = 'review'
  AND f.kind IN ('thumbs_up', 'correction', 'thumbs_down')
  AND (%(trace_id)s::uuid IS NULL OR f.trace_id = %(trace_id)s::uuid)
ORDER BY f.id
