SELECT id, model_name, status, triggered_by, reason, params, data_snapshot, metrics, champion_version,
       candidate_version, gate, decision, airflow_run_id, started_at, finished_at
FROM training_runs
WHERE id = %(id)s
