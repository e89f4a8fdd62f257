-- transaction_lock for each of %(keys)s (a text array), in the array's order (WITH ORDINALITY; the plan is
-- a plain scan of the array): callers sort the keys, so two transactions that take some of the same locks
-- take them in the same order and cannot deadlock over them.
SELECT pg_advisory_xact_lock(hashtext(t.key))
FROM unnest(%(keys)s::text[]) WITH ORDINALITY AS t(key, n)
ORDER BY t.n
