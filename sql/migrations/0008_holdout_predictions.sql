-- What the version's recipe predicted for each row of the gate's holdout, fitted without those rows:
-- {"rows_sha256": <hash of the holdout rows>, "predicted": [label per holdout row, in holdout order]}.
-- The artifact itself is refitted with the holdout rows added, so the gate compares a candidate with its
-- champion on these stored predictions, never on rows the served model has seen. Empty for versions
-- registered before this migration or from a given artifact: the gate then scores the artifact. Idempotent.

ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS holdout_predictions jsonb NOT NULL DEFAULT '{}'::jsonb;
