-- Aggregation: the backlog of one interval is read by (model, created_at) range, so its cost follows the
-- review window rather than the whole review history.
CREATE INDEX IF NOT EXISTS review_items_model_time_idx ON review_items (model_name, created_at);

-- Denominators behind the rates, so readers (alerts, dashboard) can tell 1 of 2 from 500 of 1000.
ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS n_signals integer NOT NULL DEFAULT 0;
ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS reviews_asked integer NOT NULL DEFAULT 0;
ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS labels_from_reviews integer NOT NULL DEFAULT 0;
