-- The answer a review item was closed with, as it was given: chosen options, form fields, who and when,
-- and through which door (Airflow's own HITL response, or the feedback API's answer route). A review
-- task that (re)starts finds it here and finishes with it instead of asking again; a retried answer is
-- compared with it. NULL for items closed before this migration and for expired ones. Idempotent.

ALTER TABLE review_items ADD COLUMN IF NOT EXISTS answer jsonb;

-- An answer arriving for a review task finds its item by the task's run and map index.
CREATE INDEX IF NOT EXISTS review_items_hitl_task_idx
    ON review_items ((hitl_ref ->> 'run_id'), ((hitl_ref ->> 'map_index')::int))
    WHERE hitl_ref IS NOT NULL;
