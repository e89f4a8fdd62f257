-- Inputs and confidences of one model version's predictions in [start, end), for drift tests.
-- Capped at max_rows; ordering by the random trace_id makes the capped sample deterministic across reruns
-- and unbiased in time. Served by predictions_model_time_idx.
SELECT input, confidence
FROM predictions
WHERE model_name = %(model_name)s AND model_version = %(model_version)s
  AND created_at >= %(start)s AND created_at < %(end)s
ORDER BY trace_id
LIMIT %(max_rows)s
