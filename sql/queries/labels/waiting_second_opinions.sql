-- Second opinions asked for and not answered yet, and consensus labels by status, for one model.
SELECT
    (SELECT count(*) FROM review_items
     WHERE model_name = %(model_name)s AND reason = 'second_opinion' AND status IN ('queued', 'open'))
        AS waiting,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)
     FROM (SELECT status, count(*) AS n FROM consensus_labels WHERE model_name = %(model_name)s GROUP BY status) s)
        AS by_status
