-- The stored rows of request ids that were enqueued before, with whether each was sent with the same
-- input and slice (jsonb equality: key order and 1 vs 1.0 do not matter). A separate statement from the
-- insert, so it sees a row a concurrent writer committed while the insert waited for it.
SELECT e.n, r.id, r.status, r.trace_id,
       r.input = e.item -> 'input' AND r.slice = e.item -> 'slice' AS same_input
FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS e (item, n)
JOIN inference_requests r ON r.model_name = %(model_name)s AND r.request_id = e.item ->> 'request_id'
ORDER BY e.n
