-- Model and version for each item of a batch, grouped: few rows however large the batch.
-- The trace ids come as one JSON array in item order (cheaper to send than a 10,000-element array);
-- items whose trace id has no prediction are missing from every group.
SELECT p.model_name, p.model_version, array_agg(t.ord) AS ords
FROM json_array_elements_text(%(trace_ids)s::json) WITH ORDINALITY AS t (trace_id, ord)
JOIN predictions p ON p.trace_id = t.trace_id::uuid
GROUP BY p.model_name, p.model_version
