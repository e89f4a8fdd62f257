SELECT trace_id, output_label
FROM predictions
WHERE trace_id = ANY(%(trace_ids)s::uuid[])
