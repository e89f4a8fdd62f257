-- Single events written together (api/group_commit.py): insert_feedback for each row of %(rows)s, a JSON
-- array of objects with the parameters of insert_feedback and an "ord" (the row's place), in one statement.
-- Ids are drawn in the CTE, so each stored row can be matched to its input; ids of rows not stored
-- (unknown trace, key stored before, key of a batch, key busy) are never used. The caller takes the keys'
-- locks in an earlier statement of the same transaction (store/try_key_locks), so this one's snapshot sees
-- a batch committed before a lock was granted; rows whose key was busy there are left out. Rows with the
-- same key must not be in one group (the caller keeps the first).
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('feedback', 'id')::regclass AS seq),
input AS MATERIALIZED (
    SELECT r.*, nextval(s.seq) AS id
    FROM s, jsonb_to_recordset(%(rows)s::jsonb) AS r(
        ord integer, trace_id uuid, kind text, rating smallint, label text, signal text, comment text,
        user_id text, source text, priority text, failure_mode text, review_item_id bigint,
        latency_seconds double precision, idempotency_key text, request_hash text)
),
inserted AS (
    INSERT INTO feedback (id, trace_id, model_name, model_version, kind, rating, label, signal, comment,
                          user_id, source, priority, failure_mode, review_item_id, latency_seconds,
                          idempotency_key, request_hash) OVERRIDING SYSTEM VALUE
    SELECT i.id, p.trace_id, p.model_name, p.model_version, i.kind, i.rating, i.label, i.signal, i.comment,
           i.user_id, i.source, i.priority, i.failure_mode, i.review_item_id, i.latency_seconds,
           i.idempotency_key, i.request_hash
    FROM input i
    JOIN predictions p ON p.trace_id = i.trace_id
    WHERE NOT EXISTS (SELECT 1 FROM feedback_batches b WHERE b.idempotency_key = i.idempotency_key)
      AND NOT coalesce(i.ord = ANY (string_to_array(
              nullif(current_setting('feedback_loop.busy_entries', true), ''), ',')::integer[]), false)
    ORDER BY i.ord
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, trace_id, model_name, model_version, kind, rating, label, signal, comment, user_id, source,
              priority, failure_mode, review_item_id, latency_seconds, idempotency_key, is_negative,
              created_at
)
SELECT i.ord, ins.*
FROM inserted ins
JOIN input i ON i.id = ins.id
