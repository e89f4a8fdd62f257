-- The oldest pending requests of one model; rows locked so two runs never score the same request.
SELECT id, input, slice
FROM inference_requests
WHERE model_name = %(model_name)s AND status = 'pending'
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
