-- transaction_lock for each of %(keys)s (a text array), taken in the array's order: callers sort the keys,
-- so two transactions that take some of the same locks take them in the same order and cannot deadlock
-- over them. The function is volatile, so PostgreSQL calls it after the sort, in this order.
SELECT pg_advisory_xact_lock(hashtext(t.key))
FROM unnest(%(keys)s::text[]) WITH ORDINALITY AS t(key, n)
ORDER BY t.n
