-- The model's cases among these ids, locked until commit so a concurrent change waits.
SELECT id, must_pass
FROM eval_cases
WHERE model_name = %(model_name)s AND id = ANY(%(ids)s::bigint[])
ORDER BY id
FOR UPDATE
