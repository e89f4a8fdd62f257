-- Staged items whose trace_id has no logged prediction (the first few, in item order).
SELECT s.ord, s.trace_id
FROM feedback_staging s
WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.trace_id = s.trace_id)
ORDER BY s.ord
LIMIT %(limit)s
