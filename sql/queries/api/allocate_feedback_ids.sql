-- Reserve ids for a batch before it is copied in, so the response can list them in item order
-- (COPY returns no rows). Ids of a rolled-back batch are simply never used. The sequence is resolved
-- once: pg_get_serial_sequence() per row would cost ten times the nextval() calls themselves.
WITH s AS (SELECT pg_get_serial_sequence('feedback', 'id')::regclass AS seq)
SELECT coalesce(array_agg(nextval(s.seq)), '{}') AS ids
FROM s, generate_series(1, %(n)s)
