-- Retraining: a run can end as 'skipped' (nothing new to learn from), and runs are found per model and
-- status quickly. Idempotent: the status check is dropped and re-created with the full list.

ALTER TABLE training_runs DROP CONSTRAINT IF EXISTS training_runs_status_check;
ALTER TABLE training_runs ADD CONSTRAINT training_runs_status_check
    CHECK (status IN ('running', 'dry_run', 'promoted', 'rejected', 'awaiting_approval', 'registered',
                      'failed', 'skipped'));

ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS airflow_run_id text;

CREATE INDEX IF NOT EXISTS training_runs_status_idx ON training_runs (model_name, status);
CREATE INDEX IF NOT EXISTS eval_cases_model_idx ON eval_cases (model_name, id);
