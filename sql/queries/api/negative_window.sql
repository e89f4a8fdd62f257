-- The last N feedback items for one model version, newest first (served by feedback_model_time_idx).
SELECT id, trace_id, is_negative
FROM feedback
WHERE model_name = %(model_name)s AND model_version = %(model_version)s
ORDER BY created_at DESC, id DESC
LIMIT %(window)s
