-- What the model's last refresh was made from (labels/answers_mark and the review settings).
SELECT answers, last_answer, settings, refreshed_at
FROM consensus_refreshes
WHERE model_name = %(model_name)s
