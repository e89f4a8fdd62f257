-- Promote corrected failures into the regression set. Only corroborated corrections (two people agree on
-- the label) are must-pass; a single person's correction is watched: scored and reported, never gating.
-- Idempotent: re-running stores nothing new; a trace whose resolved label or corroboration changed since is
-- updated, and its must-pass state follows the corroboration unless a person demoted or restored it
-- (eval_case_events), whose decision stands.
INSERT INTO eval_cases (model_name, trace_id, input, expected_label, wrong_label, feedback_id, corroborated,
                        must_pass)
SELECT %(model_name)s, p.trace_id, p.input, c.expected_label, c.wrong_label, c.feedback_id, c.corroborated,
       c.corroborated
FROM unnest(%(trace_ids)s::uuid[], %(expected)s::text[], %(wrong)s::text[], %(feedback_ids)s::bigint[],
            %(corroborated)s::boolean[])
     AS c(trace_id, expected_label, wrong_label, feedback_id, corroborated)
JOIN predictions p ON p.trace_id = c.trace_id AND p.model_name = %(model_name)s
ON CONFLICT (model_name, trace_id) DO UPDATE
SET expected_label = EXCLUDED.expected_label,
    wrong_label    = EXCLUDED.wrong_label,
    feedback_id    = EXCLUDED.feedback_id,
    corroborated   = EXCLUDED.corroborated,
    must_pass      = CASE
                         WHEN EXISTS (SELECT 1 FROM eval_case_events e WHERE e.eval_case_id = eval_cases.id)
                         THEN eval_cases.must_pass
                         ELSE EXCLUDED.corroborated
                     END
WHERE eval_cases.expected_label IS DISTINCT FROM EXCLUDED.expected_label
   OR eval_cases.corroborated IS DISTINCT FROM EXCLUDED.corroborated
RETURNING id, (xmax = 0) AS inserted
