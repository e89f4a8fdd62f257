-- Traces whose label is settled beyond doubt by agreeing reviewers, that have not been asked as a gold
-- question yet: each can measure a reviewer who has not answered it.
SELECT c.trace_id::text AS trace_id, c.reviewers, c.probability
FROM consensus_labels c
WHERE c.model_name = %(model_name)s
  AND c.status = 'corroborated'
  AND c.probability >= %(min_probability)s
  AND NOT EXISTS (SELECT 1 FROM review_items ri WHERE ri.trace_id = c.trace_id AND ri.reason = 'gold')
ORDER BY md5(c.trace_id::text || %(seed)s::text)
LIMIT %(limit)s
