-- How confident each version's predictions of the interval were, in ten bins of width 0.1 (bin 1 holds
-- [0, 0.1), bin 10 holds [0.9, 1]): with the version's calibration it estimates accuracy without labels.
SELECT model_version, width_bucket(confidence, 0, 1.0000001, 10) AS bin, count(*) AS n
FROM predictions
WHERE created_at >= %(start)s AND created_at < %(end)s AND model_name = %(model_name)s
GROUP BY model_version, bin
