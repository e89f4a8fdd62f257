-- Per-connection staging table for batch ingest: created once per pooled connection, emptied at commit
-- (and dropped with the rows on rollback), so a batch never sees another batch's rows.
CREATE TEMP TABLE IF NOT EXISTS feedback_staging (
    ord             integer  NOT NULL,
    trace_id        uuid     NOT NULL,
    kind            text     NOT NULL,
    rating          smallint,
    label           text,
    signal          text,
    comment         text,
    user_id         text,
    source          text     NOT NULL,
    priority        text     NOT NULL,
    failure_mode    text,
    idempotency_key text,
    request_hash    char(64)
) ON COMMIT DELETE ROWS
