-- Audit answers on the interval's predictions (a uniform sample, labels.store consensus): how many, and
-- how many the version got right. Driven by the audited consensus labels, a small set, each joined to its
-- prediction by primary key.
SELECT c.model_version,
       count(*) AS audited_n,
       count(*) FILTER (WHERE c.label = p.output_label) AS audited_correct
FROM consensus_labels c
CROSS JOIN LATERAL (
    SELECT output_label, created_at FROM predictions WHERE trace_id = c.trace_id LIMIT 1
) AS p
WHERE c.model_name = %(model_name)s AND c.audited
  AND p.created_at >= %(start)s AND p.created_at < %(end)s
GROUP BY c.model_version
