-- The model's training runs, oldest first, for the demo's summary.
SELECT id, status, triggered_by, reason, candidate_version, decision, gate
FROM training_runs
WHERE model_name = %(model_name)s
ORDER BY id
