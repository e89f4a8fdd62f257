-- The lower end of each reviewer's one-sided credible interval of accuracy (labels.consensus.CREDIBLE).
-- A trace only one person answered takes its consensus probability, and so its training weight, from this
-- cautious reading of them: a reviewer whose record is a handful of compared answers is not trusted at
-- the prior's mode. NULL until the next refresh, which every retraining and aggregation run does (the
-- consensus rules' version changed with it); until then a lone answer is trusted no more than a
-- newcomer's, nor more than the reviewer's point estimate. Idempotent.

ALTER TABLE reviewer_accuracy ADD COLUMN IF NOT EXISTS accuracy_lower double precision;
