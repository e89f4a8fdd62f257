SELECT count(*) AS n
FROM review_items
WHERE model_name = %(model_name)s AND status = 'queued' AND reason = 'low_confidence'
