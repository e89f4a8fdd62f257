-- The run ended (task failed or the process died) without recording an outcome: mark it failed.
UPDATE training_runs
SET status = 'failed', decision = %(decision)s, finished_at = now()
WHERE id = %(id)s AND status = 'running'
RETURNING id
