-- The upper end of each reviewer's one-sided credible interval of accuracy (labels.consensus.CREDIBLE).
-- A reviewer counts as below the accuracy floor only when this is below it: a point estimate from a dozen
-- compared answers falls below the floor by chance too often to act on. NULL until the next refresh, which
-- every retraining and aggregation run does; until then the point estimate stands in. Idempotent.

ALTER TABLE reviewer_accuracy ADD COLUMN IF NOT EXISTS accuracy_upper double precision;
