-- Questions waiting for a reviewer (low-confidence predictions, second opinions, ...), for the branch that
-- decides whether a run opens review tasks.
SELECT count(*) AS n
FROM review_items
WHERE model_name = %(model_name)s AND status = 'queued'
