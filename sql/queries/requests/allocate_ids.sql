-- Reserve ids for requests before they are written, so the writer can report each row's id in input order
-- (COPY returns no rows). Ids of a rolled-back batch, or of a request that was already stored, are never
-- used. MATERIALIZED looks the sequence up once rather than once per row (see store/allocate_feedback_ids).
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('inference_requests', 'id')::regclass AS seq)
SELECT coalesce(array_agg(nextval(s.seq)), '{}') AS ids
FROM s, generate_series(1, %(n)s)
