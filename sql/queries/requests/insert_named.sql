-- Requests an app named: the unique index on (model_name, request_id) turns a retry into no insert at
-- all, waiting for a concurrent writer of the same id to finish first. Returns the ids actually inserted;
-- the writer then reads the other items' stored rows (existing.sql) and compares their inputs.
INSERT INTO inference_requests (id, model_name, request_id, input, slice) OVERRIDING SYSTEM VALUE
SELECT (e.item ->> 'id')::bigint, %(model_name)s, e.item ->> 'request_id', e.item -> 'input', e.item -> 'slice'
FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS e (item, n)
ORDER BY e.n
ON CONFLICT (model_name, request_id) WHERE request_id IS NOT NULL DO NOTHING
RETURNING id
