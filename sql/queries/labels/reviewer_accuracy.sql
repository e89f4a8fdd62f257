-- The stored reliability of a model's reviewers (refreshed by labels.store.refresh).
SELECT reviewer, accuracy, accuracy_lower, accuracy_upper, answers, gold_answers, gold_correct, compared, agreed, updated_at
FROM reviewer_accuracy
WHERE model_name = %(model_name)s
ORDER BY reviewer
