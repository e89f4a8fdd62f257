-- The consensus labels of a model's traces (training, eval cases, the dashboard).
SELECT c.trace_id::text AS trace_id, c.model_version, c.label, c.probability, c.answers, c.reviewers,
       c.agreeing, c.status, c.audited, p.output_label
FROM consensus_labels c
JOIN predictions p ON p.trace_id = c.trace_id
WHERE c.model_name = %(model_name)s
