-- Mark a whole batch scored in one statement, with the trace id each request got.
UPDATE inference_requests r
SET status = 'scored', trace_id = s.trace_id, scored_at = now(), error = NULL
FROM unnest(%(ids)s::bigint[], %(trace_ids)s::uuid[]) AS s (id, trace_id)
WHERE r.id = s.id AND r.status = 'pending'
