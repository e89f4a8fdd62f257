-- The last N feedback items for one model version, newest first. The N newest timestamps come from
-- feedback_model_time_idx in its own order, and only rows from the oldest of them on are sorted (the
-- window and the rows tied with its oldest: a batch's items share one timestamp): asked
-- for in one step, the tie-break on id needs a sort, and with the version's rows underestimated (a new
-- version before the next ANALYZE) PostgreSQL sorted every row of the version (1.5 ms at 3,300 rows, a
-- third of PostgreSQL's time per single event; growing with the version).
WITH newest AS (
    SELECT created_at
    FROM feedback
    WHERE model_name = %(model_name)s AND model_version = %(model_version)s
    ORDER BY created_at DESC
    LIMIT %(window)s
)
SELECT id, trace_id, is_negative
FROM feedback
WHERE model_name = %(model_name)s AND model_version = %(model_version)s
  AND created_at >= (SELECT min(created_at) FROM newest)
ORDER BY created_at DESC, id DESC
LIMIT %(window)s
