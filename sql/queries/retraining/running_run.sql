-- The run that holds the model's retraining lock, to name it in the log while waiting.
SELECT id, started_at
FROM training_runs
WHERE model_name = %(model_name)s AND status = 'running'
ORDER BY id
LIMIT 1
