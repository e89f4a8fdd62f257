-- How many reviewer answers a refresh would read for the model (labels/review_answers), and the highest
-- feedback id among them: with the review settings, what tells whether a refresh could change anything.
SELECT count(*) AS answers, coalesce(max(f.id), 0) AS last_answer
FROM feedback f
WHERE f.model_name = %(model_name)s
  AND f.source = 'review'
  AND f.kind IN ('thumbs_up', 'correction', 'thumbs_down')
