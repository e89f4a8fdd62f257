-- Versions that no longer have activity in a recomputed interval lose their row, so a rerun leaves
-- exactly what a first run would have written.
DELETE FROM feedback_rollups
WHERE model_name = %(model_name)s AND interval_start = %(start)s AND interval_end = %(end)s
  AND NOT (model_version = ANY(%(versions)s))
