-- A model's latest training runs, newest first: what on-call asks after "did the retrain work?".
SELECT id, model_name, status, triggered_by, reason, champion_version, candidate_version, decision,
       started_at, finished_at
FROM training_runs
WHERE model_name = %(model_name)s
ORDER BY id DESC
LIMIT %(limit)s
