-- The training runs one Airflow DAG run started, one per model.
SELECT id, model_name, status
FROM training_runs
WHERE airflow_run_id = %(airflow_run_id)s
ORDER BY id
