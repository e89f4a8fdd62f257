-- A uniform random sample of the predictions a run scored, for review whatever their confidence: their
-- answers measure the model's accuracy without the bias of reviewing only doubtful predictions. A sampled
-- trace already queued as low-confidence becomes an audit item (one question per trace).
WITH sample AS (
    SELECT p.trace_id, p.model_name, p.model_version
    FROM predictions p
    WHERE p.model_name = %(model_name)s
      AND p.source_run_id = %(run_id)s
      AND NOT EXISTS (
          SELECT 1 FROM review_items ri
          WHERE ri.trace_id = p.trace_id AND (ri.status <> 'queued' OR ri.reason <> 'low_confidence')
      )
    ORDER BY md5(p.trace_id::text || %(seed)s::text)
    LIMIT %(limit)s
),
relabelled AS (
    UPDATE review_items ri
    SET reason = 'audit', priority = 0
    FROM sample s
    WHERE ri.trace_id = s.trace_id AND ri.status = 'queued' AND ri.reason = 'low_confidence'
    RETURNING ri.id, ri.trace_id
),
inserted AS (
    INSERT INTO review_items (trace_id, model_name, model_version, reason, priority)
    SELECT s.trace_id, s.model_name, s.model_version, 'audit', 0
    FROM sample s
    WHERE NOT EXISTS (SELECT 1 FROM relabelled r WHERE r.trace_id = s.trace_id)
    ON CONFLICT (trace_id, reason) WHERE status IN ('queued', 'open') DO NOTHING
    RETURNING id
)
SELECT id FROM relabelled
UNION ALL
SELECT id FROM inserted
