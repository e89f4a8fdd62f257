SELECT *
FROM feedback_rollups
WHERE model_name = %(model_name)s AND interval_start = %(start)s AND interval_end = %(end)s
ORDER BY model_version
