-- Queued review items nobody got to within the configured age expire, so the backlog stays current.
UPDATE review_items
SET status = 'expired'
WHERE model_name = %(model_name)s AND status = 'queued'
  AND created_at < now() - make_interval(hours => %(max_age_hours)s)
RETURNING id
