-- Change the must-pass state of these cases and record who did it and why, in one statement.
WITH changed AS (
    UPDATE eval_cases
    SET must_pass = %(must_pass)s
    WHERE model_name = %(model_name)s AND id = ANY(%(ids)s::bigint[])
    RETURNING id
)
INSERT INTO eval_case_events (eval_case_id, must_pass, actor, reason)
SELECT id, %(must_pass)s, %(actor)s, %(reason)s
FROM changed
RETURNING eval_case_id
