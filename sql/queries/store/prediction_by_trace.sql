SELECT trace_id, model_name, model_version, input, output_label, confidence, probabilities, slice,
       source_run_id, created_at
FROM predictions
WHERE trace_id = %(trace_id)s
