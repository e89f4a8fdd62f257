-- Consensus labels and reviewer reliability: second opinions, gold and audit reviews, one consensus label
-- per reviewed trace with its probability, each reviewer's estimated accuracy, corroborated eval cases, and
-- the audited and estimated accuracy of every rollup. Idempotent.

ALTER TABLE review_items DROP CONSTRAINT IF EXISTS review_items_reason_check;
ALTER TABLE review_items ADD CONSTRAINT review_items_reason_check
    CHECK (reason IN ('low_confidence', 'negative_feedback', 'drift', 'sample',
                      'second_opinion', 'audit', 'gold'));
-- Who answered this trace before: a second opinion or a gold question never goes to them again.
ALTER TABLE review_items ADD COLUMN IF NOT EXISTS excluded_reviewers text[] NOT NULL DEFAULT '{}';

CREATE TABLE IF NOT EXISTS consensus_labels (
    trace_id      uuid             PRIMARY KEY REFERENCES predictions (trace_id) ON DELETE CASCADE,
    model_name    text             NOT NULL,
    model_version integer          NOT NULL,
    label         text             NOT NULL,
    probability   double precision NOT NULL CHECK (probability >= 0 AND probability <= 1),
    answers       integer          NOT NULL CHECK (answers >= 0),
    reviewers     text[]           NOT NULL DEFAULT '{}',
    agreeing      integer          NOT NULL DEFAULT 0,
    -- single: one answer; corroborated: two or more independent reviewers agree on the label;
    -- contested: they disagree and the consensus is not settled yet; settled: they disagree, yet the
    -- probability reached review.consensus_confidence or no more reviews are allowed
    status        text             NOT NULL CHECK (status IN ('single', 'corroborated', 'contested', 'settled')),
    audited       boolean          NOT NULL DEFAULT false,
    updated_at    timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consensus_labels_model_idx ON consensus_labels (model_name, model_version);

CREATE TABLE IF NOT EXISTS reviewer_accuracy (
    model_name    text             NOT NULL,
    reviewer      text             NOT NULL,
    accuracy      double precision NOT NULL CHECK (accuracy >= 0 AND accuracy <= 1),
    answers       integer          NOT NULL DEFAULT 0,
    gold_answers  integer          NOT NULL DEFAULT 0,
    gold_correct  integer          NOT NULL DEFAULT 0,
    compared      integer          NOT NULL DEFAULT 0,  -- answers on traces others answered too
    agreed        integer          NOT NULL DEFAULT 0,  -- ... equal to the consensus without them
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, reviewer)
);

ALTER TABLE eval_cases ADD COLUMN IF NOT EXISTS corroborated boolean NOT NULL DEFAULT true;

ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS audited_n integer NOT NULL DEFAULT 0;
ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS audited_correct integer NOT NULL DEFAULT 0;
ALTER TABLE feedback_rollups ADD COLUMN IF NOT EXISTS estimated_accuracy double precision;
