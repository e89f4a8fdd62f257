-- A trace only one person answered takes its consensus probability, and so its training weight, from a
-- cautious reading of that person: the lower end of their one-sided credible interval of accuracy
-- (labels.consensus.CREDIBLE), so a reviewer whose record is a handful of compared answers is not trusted
-- at the prior's mode. reviewer_accuracy.accuracy_lower is that lower end; until the next refresh (every
-- retraining and aggregation run does one; the consensus rules' version changed with it) it is NULL and
-- a lone answer is trusted no more than a newcomer's, nor more than the reviewer's point estimate.
-- consensus_labels.point_probability is the consensus probability with every reviewer at their point
-- estimate: second opinions are decided and ranked on it (NULL until the refresh: probability stands
-- in). Idempotent.

ALTER TABLE reviewer_accuracy ADD COLUMN IF NOT EXISTS accuracy_lower double precision;
ALTER TABLE consensus_labels ADD COLUMN IF NOT EXISTS point_probability double precision;
