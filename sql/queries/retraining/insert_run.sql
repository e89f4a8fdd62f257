-- A retraining attempt starts: its parameters and who triggered it.
INSERT INTO training_runs (model_name, status, triggered_by, reason, params, airflow_run_id)
VALUES (%(model_name)s, 'running', %(triggered_by)s, %(reason)s, %(params)s, %(airflow_run_id)s)
RETURNING id, model_name, status, started_at
