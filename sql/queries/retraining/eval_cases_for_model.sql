-- The regression set a candidate must pass: failures users reported, with the corrected label.
SELECT id, trace_id::text AS trace_id, input, expected_label, wrong_label, feedback_id, must_pass
FROM eval_cases
WHERE model_name = %(model_name)s
ORDER BY id
