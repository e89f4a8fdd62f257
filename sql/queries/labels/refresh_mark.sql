-- What the model's last refresh was made from (labels/answers_mark and the review settings), and whether
-- it is younger than %(max_age)s.
SELECT answers, last_answer, settings, refreshed_at, refreshed_at > now() - %(max_age)s::interval AS recent
FROM consensus_refreshes
WHERE model_name = %(model_name)s
