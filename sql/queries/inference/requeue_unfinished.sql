-- Items of this run whose review task ended without recording an answer go back to the queue.
UPDATE review_items
SET status = 'queued', opened_at = NULL, hitl_ref = NULL
WHERE status = 'open' AND hitl_ref ->> 'dag_id' = %(dag_id)s AND hitl_ref ->> 'run_id' = %(run_id)s
RETURNING id
