-- One row per reviewer of a model, replaced by each refresh.
INSERT INTO reviewer_accuracy AS r (model_name, reviewer, accuracy, accuracy_lower, accuracy_upper, answers,
                                    gold_answers, gold_correct, compared, agreed, updated_at)
SELECT %(model_name)s, s.reviewer, s.accuracy, s.accuracy_lower, s.accuracy_upper, s.answers, s.gold_answers,
       s.gold_correct, s.compared, s.agreed, now()
FROM unnest(%(reviewers)s::text[], %(accuracy)s::float8[], %(accuracy_lower)s::float8[],
            %(accuracy_upper)s::float8[], %(answers)s::int[], %(gold_answers)s::int[], %(gold_correct)s::int[],
            %(compared)s::int[], %(agreed)s::int[])
     AS s (reviewer, accuracy, accuracy_lower, accuracy_upper, answers, gold_answers, gold_correct, compared,
           agreed)
ON CONFLICT (model_name, reviewer) DO UPDATE
SET accuracy = EXCLUDED.accuracy, accuracy_lower = EXCLUDED.accuracy_lower,
    accuracy_upper = EXCLUDED.accuracy_upper, answers = EXCLUDED.answers,
    gold_answers = EXCLUDED.gold_answers, gold_correct = EXCLUDED.gold_correct, compared = EXCLUDED.compared,
    agreed = EXCLUDED.agreed, updated_at = now()
