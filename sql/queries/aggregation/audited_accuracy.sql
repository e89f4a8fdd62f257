-- Audit answers on the interval's predictions (a uniform sample, labels.store consensus): how many, and
-- how many the version got right. Driven by the interval's predictions, each looked up among the consensus
-- labels by primary key (the LIMIT keeps PostgreSQL from turning the look-up into a scan of every
-- consensus label of the model): the cost follows the interval, where starting from the audited labels
-- grew with every audit ever answered (33,000 of them: 440 ms per run instead of 8 ms).
SELECT c.model_version,
       count(*) AS audited_n,
       count(*) FILTER (WHERE c.label = p.output_label) AS audited_correct
FROM predictions p
CROSS JOIN LATERAL (
    SELECT label, model_version FROM consensus_labels
    WHERE trace_id = p.trace_id AND model_name = %(model_name)s AND audited
    LIMIT 1
) AS c
WHERE p.model_name = %(model_name)s
  AND p.created_at >= %(start)s AND p.created_at < %(end)s
GROUP BY c.model_version
