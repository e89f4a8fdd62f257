-- Reviewed traces whose consensus still needs another opinion and have none queued or open: contested
-- ones, and single answers from reviewers credibly below the model's accuracy floor (their
-- labels count only once someone agrees).
SELECT c.trace_id::text AS trace_id, c.reviewers,
       coalesce(c.point_probability, c.probability) AS point_probability
FROM consensus_labels c
WHERE c.model_name = %(model_name)s
  AND c.answers < %(max_reviews)s
  AND (
      c.status = 'contested'
      OR (c.status = 'single' AND NOT EXISTS (
              SELECT 1 FROM unnest(c.reviewers) AS r (name)
              WHERE coalesce((SELECT coalesce(a.accuracy_upper, a.accuracy) FROM reviewer_accuracy a
                              WHERE a.model_name = c.model_name AND a.reviewer = r.name), 1) >= %(floor)s))
  )
  AND NOT EXISTS (
      SELECT 1 FROM review_items ri
      WHERE ri.trace_id = c.trace_id AND ri.reason = 'second_opinion' AND ri.status IN ('queued', 'open')
  )
ORDER BY coalesce(c.point_probability, c.probability), c.trace_id
LIMIT %(limit)s
