-- Negative feedback rate per rollup interval and model version, for the demo's plot.
SELECT model_version, interval_start, negative_rate
FROM feedback_rollups
WHERE model_name = %(model_name)s AND negative_rate IS NOT NULL
ORDER BY model_version, interval_start
