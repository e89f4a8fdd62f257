-- Apps name their inference requests with their own ids, so they can read back the trace id, prediction
-- and confidence of a request they enqueued and attach feedback to it. An id is unique per model; rows
-- enqueued before this migration, or without an id, keep NULL (the partial index ignores them). A retry
-- with the same id inserts nothing: the writer compares the stored input with the one it sent.
-- The length check mirrors core.inference_requests.REQUEST_ID_MAX_LENGTH. Idempotent.

ALTER TABLE inference_requests ADD COLUMN IF NOT EXISTS request_id text;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'inference_requests'::regclass AND conname = 'inference_requests_request_id_length'
    ) THEN
        ALTER TABLE inference_requests ADD CONSTRAINT inference_requests_request_id_length
            CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 200);
    END IF;
END
$$;

CREATE UNIQUE INDEX IF NOT EXISTS inference_requests_request_id_idx
    ON inference_requests (model_name, request_id) WHERE request_id IS NOT NULL;
