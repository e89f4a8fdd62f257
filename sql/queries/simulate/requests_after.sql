-- Requests of a model enqueued after a given id, in enqueue order (trace_id is set once scored).
SELECT id, trace_id
FROM inference_requests
WHERE id > %(after_id)s AND model_name = %(model_name)s
ORDER BY id
