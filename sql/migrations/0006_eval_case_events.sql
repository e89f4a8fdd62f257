-- Who took an eval case out of the must-pass set, or put it back, when and why. Append-only; the case's
-- must_pass column is the current state and changes in the same transaction as its event
-- (feedback-loop eval-cases demote | restore). Idempotent.

CREATE TABLE IF NOT EXISTS eval_case_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    eval_case_id bigint      NOT NULL REFERENCES eval_cases (id),
    must_pass    boolean     NOT NULL,
    actor        text        NOT NULL,
    reason       text        NOT NULL CHECK (length(btrim(reason)) > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS eval_case_events_case_idx ON eval_case_events (eval_case_id, id DESC);
