-- Promote corrected failures into the regression set. Idempotent: re-running stores nothing new; a trace
-- whose resolved label changed since (a later correction won) is updated with its new provenance.
INSERT INTO eval_cases (model_name, trace_id, input, expected_label, wrong_label, feedback_id)
SELECT %(model_name)s, p.trace_id, p.input, c.expected_label, c.wrong_label, c.feedback_id
FROM unnest(%(trace_ids)s::uuid[], %(expected)s::text[], %(wrong)s::text[], %(feedback_ids)s::bigint[])
     AS c(trace_id, expected_label, wrong_label, feedback_id)
JOIN predictions p ON p.trace_id = c.trace_id AND p.model_name = %(model_name)s
ON CONFLICT (model_name, trace_id) DO UPDATE
SET expected_label = EXCLUDED.expected_label,
    wrong_label    = EXCLUDED.wrong_label,
    feedback_id    = EXCLUDED.feedback_id
WHERE eval_cases.expected_label IS DISTINCT FROM EXCLUDED.expected_label
RETURNING id, (xmax = 0) AS inserted
