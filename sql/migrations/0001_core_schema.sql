-- Core schema: model registry, predictions, review items, feedback, rollups, eval cases, training runs.
-- Idempotent: every statement can run on a database that already has it.

CREATE TABLE IF NOT EXISTS model_versions (
    model_name        text        NOT NULL CHECK (model_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    version           integer     NOT NULL CHECK (version > 0),
    artifact_uri      text        NOT NULL,
    sha256            char(64)    NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    format            text        NOT NULL DEFAULT 'skops' CHECK (format IN ('skops')),
    status            text        NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'rejected')),
    classes           jsonb       NOT NULL DEFAULT '[]',
    feature_columns   jsonb       NOT NULL DEFAULT '[]',
    metrics           jsonb       NOT NULL DEFAULT '{}',
    data_snapshot     jsonb       NOT NULL DEFAULT '{}',
    reference_profile jsonb       NOT NULL DEFAULT '{}',
    parent_version    integer,
    created_by        text        NOT NULL,
    note              text        NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version),
    FOREIGN KEY (model_name, parent_version) REFERENCES model_versions (model_name, version)
);

-- Append-only: the current holder of an alias is the latest event for (model_name, alias).
CREATE TABLE IF NOT EXISTS model_alias_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name       text        NOT NULL,
    alias            text        NOT NULL DEFAULT 'champion' CHECK (alias ~ '^[a-z][a-z0-9_]{0,39}$'),
    version          integer     NOT NULL,
    previous_version integer,
    action           text        NOT NULL CHECK (action IN ('promote', 'rollback')),
    actor            text        NOT NULL CHECK (length(actor) > 0),
    reason           text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (model_name, version) REFERENCES model_versions (model_name, version),
    FOREIGN KEY (model_name, previous_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX IF NOT EXISTS model_alias_events_current_idx ON model_alias_events (model_name, alias, id DESC);

CREATE OR REPLACE VIEW model_aliases AS
SELECT DISTINCT ON (model_name, alias) model_name, alias, version, actor, reason, created_at AS since
FROM model_alias_events
ORDER BY model_name, alias, id DESC;

CREATE TABLE IF NOT EXISTS predictions (
    trace_id      uuid             PRIMARY KEY,
    model_name    text             NOT NULL,
    model_version integer          NOT NULL,
    input         jsonb            NOT NULL,
    output_label  text             NOT NULL,
    confidence    double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    probabilities jsonb            NOT NULL DEFAULT '{}',
    slice         jsonb            NOT NULL DEFAULT '{}',
    source_run_id text,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    FOREIGN KEY (model_name, model_version) REFERENCES model_versions (model_name, version)
);
CREATE INDEX IF NOT EXISTS predictions_model_time_idx ON predictions (model_name, model_version, created_at);
CREATE INDEX IF NOT EXISTS predictions_time_idx ON predictions (created_at);

CREATE TABLE IF NOT EXISTS review_items (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id           uuid             NOT NULL REFERENCES predictions (trace_id),
    model_name         text             NOT NULL,
    model_version      integer          NOT NULL,
    reason             text             NOT NULL
                       CHECK (reason IN ('low_confidence', 'negative_feedback', 'drift', 'sample')),
    priority           double precision NOT NULL DEFAULT 0,
    status             text             NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'open', 'answered', 'expired')),
    assigned_reviewers text[]           NOT NULL DEFAULT '{}',
    hitl_ref           jsonb,
    created_at         timestamptz      NOT NULL DEFAULT now(),
    opened_at          timestamptz,
    answered_at        timestamptz,
    CHECK (status <> 'answered' OR answered_at IS NOT NULL)
);
-- One active review per trace and reason, so queueing is idempotent.
CREATE UNIQUE INDEX IF NOT EXISTS review_items_active_uq
    ON review_items (trace_id, reason) WHERE status IN ('queued', 'open');
CREATE INDEX IF NOT EXISTS review_items_queue_idx ON review_items (model_name, status, priority DESC, id);

CREATE TABLE IF NOT EXISTS feedback (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id         uuid             NOT NULL REFERENCES predictions (trace_id),
    model_name       text             NOT NULL,
    model_version    integer          NOT NULL,
    kind             text             NOT NULL
                     CHECK (kind IN ('thumbs_up', 'thumbs_down', 'rating', 'correction', 'comment', 'implicit')),
    rating           smallint         CHECK (rating BETWEEN 1 AND 5),
    label            text,
    signal           text             CHECK (signal IN ('accepted', 'abandoned', 'retried', 'escalated')),
    comment          text,
    user_id          text,
    source           text             NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'review', 'implicit')),
    priority         text             NOT NULL DEFAULT 'normal'
                     CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    failure_mode     text,
    review_item_id   bigint           REFERENCES review_items (id),
    latency_seconds  double precision CHECK (latency_seconds >= 0),
    idempotency_key  text             UNIQUE,
    request_hash     char(64),
    created_at       timestamptz      NOT NULL DEFAULT now(),
    is_negative      boolean GENERATED ALWAYS AS (
        kind IN ('thumbs_down', 'correction')
        OR (kind = 'rating' AND rating <= 2)
        OR (kind = 'implicit' AND signal IN ('abandoned', 'retried', 'escalated'))
    ) STORED,
    CHECK (kind <> 'rating' OR rating IS NOT NULL),
    CHECK (kind <> 'correction' OR label IS NOT NULL),
    CHECK (kind <> 'implicit' OR signal IS NOT NULL),
    CHECK (kind <> 'comment' OR comment IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS feedback_time_idx ON feedback (created_at);
CREATE INDEX IF NOT EXISTS feedback_model_time_idx ON feedback (model_name, model_version, created_at);
CREATE INDEX IF NOT EXISTS feedback_trace_idx ON feedback (trace_id);

CREATE TABLE IF NOT EXISTS feedback_rollups (
    model_name           text             NOT NULL,
    model_version        integer          NOT NULL,
    interval_start       timestamptz      NOT NULL,
    interval_end         timestamptz      NOT NULL,
    n_predictions        integer          NOT NULL DEFAULT 0,
    n_feedback           integer          NOT NULL DEFAULT 0,
    counts_by_kind       jsonb            NOT NULL DEFAULT '{}',
    mean_rating          double precision,
    positive_rate        double precision,
    negative_rate        double precision,
    correction_rate      double precision,
    accuracy             double precision,
    n_labelled           integer          NOT NULL DEFAULT 0,
    review_latency_p50_s double precision,
    review_latency_p95_s double precision,
    backlog_size         integer          NOT NULL DEFAULT 0,
    backlog_oldest_age_s double precision,
    label_yield          double precision,
    drift                jsonb            NOT NULL DEFAULT '{}',
    slices               jsonb            NOT NULL DEFAULT '{}',
    computed_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, model_version, interval_start, interval_end),
    CHECK (interval_end > interval_start)
);

CREATE TABLE IF NOT EXISTS eval_cases (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name     text        NOT NULL,
    trace_id       uuid        NOT NULL REFERENCES predictions (trace_id),
    input          jsonb       NOT NULL,
    expected_label text        NOT NULL,
    wrong_label    text,
    feedback_id    bigint      REFERENCES feedback (id),
    must_pass      boolean     NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model_name, trace_id)
);

CREATE TABLE IF NOT EXISTS training_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name        text        NOT NULL,
    status            text        NOT NULL DEFAULT 'running'
                      CHECK (status IN ('running', 'dry_run', 'promoted', 'rejected', 'awaiting_approval',
                                        'registered', 'failed')),
    triggered_by      text        NOT NULL DEFAULT '',
    reason            text        NOT NULL DEFAULT '',
    params            jsonb       NOT NULL DEFAULT '{}',
    data_snapshot     jsonb       NOT NULL DEFAULT '{}',
    metrics           jsonb       NOT NULL DEFAULT '{}',
    champion_version  integer,
    candidate_version integer,
    gate              jsonb       NOT NULL DEFAULT '{}',
    decision          text        NOT NULL DEFAULT '',
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX IF NOT EXISTS training_runs_model_idx ON training_runs (model_name, id DESC);

CREATE TABLE IF NOT EXISTS inference_requests (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name   text        NOT NULL,
    input        jsonb       NOT NULL,
    slice        jsonb       NOT NULL DEFAULT '{}',
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'scored', 'failed')),
    trace_id     uuid,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    scored_at    timestamptz
);
CREATE INDEX IF NOT EXISTS inference_requests_pending_idx ON inference_requests (model_name, id)
    WHERE status = 'pending';

-- Outbox for webhook notifications: a failed delivery stays here for retry, never lost.
CREATE TABLE IF NOT EXISTS notifications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        text        NOT NULL,
    payload      jsonb       NOT NULL,
    status       text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX IF NOT EXISTS notifications_pending_idx ON notifications (id) WHERE status <> 'delivered';
