-- When each model's consensus labels and reviewer estimates were last refreshed, from how many reviewer
-- answers (and the highest feedback id among them), under which review settings: aggregation skips the
-- refresh, an EM over every answer the model ever got, when none came or went since. Idempotent.

CREATE TABLE IF NOT EXISTS consensus_refreshes (
    model_name   text        PRIMARY KEY,
    answers      bigint      NOT NULL,
    last_answer  bigint      NOT NULL,
    settings     text        NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);

-- The answers a refresh reads (labels/review_answers), counted from this index alone.
CREATE INDEX IF NOT EXISTS feedback_review_answers_idx ON feedback (model_name, id)
    WHERE source = 'review' AND kind IN ('thumbs_up', 'correction', 'thumbs_down');
