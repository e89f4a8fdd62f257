-- The reviewers who answered a review of the model in the interval, with their stored reliability.
SELECT f.user_id AS reviewer, count(*) AS answers, a.accuracy, a.accuracy_upper, a.compared, a.gold_answers
FROM feedback f
LEFT JOIN reviewer_accuracy a ON a.model_name = f.model_name AND a.reviewer = f.user_id
WHERE f.model_name = %(model_name)s AND f.source = 'review' AND f.user_id IS NOT NULL
  AND f.created_at >= %(start)s AND f.created_at < %(end)s
GROUP BY f.user_id, a.accuracy, a.accuracy_upper, a.compared, a.gold_answers
ORDER BY f.user_id
