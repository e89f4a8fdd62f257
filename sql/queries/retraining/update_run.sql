-- Record what a step learned; a NULL argument keeps the stored value, so steps can write independently.
UPDATE training_runs SET
    status            = coalesce(%(status)s, status),
    data_snapshot     = coalesce(%(data_snapshot)s, data_snapshot),
    metrics           = coalesce(%(metrics)s, metrics),
    champion_version  = coalesce(%(champion_version)s, champion_version),
    candidate_version = coalesce(%(candidate_version)s, candidate_version),
    gate              = coalesce(%(gate)s, gate),
    decision          = coalesce(%(decision)s, decision),
    finished_at       = CASE WHEN %(finished)s THEN now() ELSE finished_at END
WHERE id = %(id)s
RETURNING id, model_name, status, champion_version, candidate_version, decision
