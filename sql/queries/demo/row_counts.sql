SELECT (SELECT count(*) FROM feedback)         AS feedback,
       (SELECT count(*) FROM feedback_rollups) AS rollups
