-- End of the newest rollup of a model: the dashboard's window ends there, not at "now", so a model whose
-- aggregation paused still shows its last days.
SELECT max(interval_end) AS latest FROM feedback_rollups WHERE model_name = %(model_name)s
