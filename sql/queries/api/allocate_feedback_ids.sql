-- Reserve ids for a batch before it is copied in, so the response can list them in item order
-- (COPY returns no rows). Ids of a rolled-back batch are simply never used.
SELECT coalesce(array_agg(nextval(pg_get_serial_sequence('feedback', 'id'))), '{}') AS ids
FROM generate_series(1, %(n)s)
