-- Requests that cannot be scored (e.g. a feature is missing) are set aside with the reason.
UPDATE inference_requests r
SET status = 'failed', error = s.error, scored_at = now()
FROM unnest(%(ids)s::bigint[], %(errors)s::text[]) AS s (id, error)
WHERE r.id = s.id AND r.status = 'pending'
