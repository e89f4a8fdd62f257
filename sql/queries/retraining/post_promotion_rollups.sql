-- Accuracy on labelled feedback, weighted by labels: the new champion in its first rollups after it was
-- promoted, and the version it replaced in its last rollups before.
WITH after_promotion AS (
    SELECT accuracy, n_labelled
    FROM feedback_rollups
    WHERE model_name = %(model_name)s AND model_version = %(version)s
      AND interval_end > %(since)s AND accuracy IS NOT NULL AND n_labelled > 0
    ORDER BY interval_start
    LIMIT %(intervals)s
), before_promotion AS (
    SELECT accuracy, n_labelled
    FROM feedback_rollups
    WHERE model_name = %(model_name)s AND model_version = %(previous)s
      AND interval_start < %(since)s AND accuracy IS NOT NULL AND n_labelled > 0
    ORDER BY interval_start DESC
    LIMIT %(intervals)s
)
SELECT
    (SELECT sum(accuracy * n_labelled) / nullif(sum(n_labelled), 0) FROM after_promotion)  AS accuracy_after,
    (SELECT coalesce(sum(n_labelled), 0) FROM after_promotion)                             AS labelled_after,
    (SELECT count(*) FROM after_promotion)                                                 AS intervals_after,
    (SELECT sum(accuracy * n_labelled) / nullif(sum(n_labelled), 0) FROM before_promotion) AS accuracy_before,
    (SELECT coalesce(sum(n_labelled), 0) FROM before_promotion)                            AS labelled_before
