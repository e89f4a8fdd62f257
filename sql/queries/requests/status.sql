-- What became of requests an app named, in the order asked: status, failure reason, and once scored the
-- trace id with the prediction's label, confidence and model version. Unknown ids come back with no row
-- (id NULL). One index probe per id (inference_requests_request_id_idx, predictions' primary key).
SELECT q.request_id, r.id, r.status, r.error, r.trace_id, r.created_at, r.scored_at,
       p.output_label AS prediction, p.confidence, p.model_version
FROM unnest(%(request_ids)s::text[]) WITH ORDINALITY AS q (request_id, n)
LEFT JOIN inference_requests r ON r.model_name = %(model_name)s AND r.request_id = q.request_id
LEFT JOIN predictions p ON p.trace_id = r.trace_id
ORDER BY q.n
