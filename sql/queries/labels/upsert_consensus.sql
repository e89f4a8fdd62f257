-- The consensus label of many traces at once; a later computation replaces an earlier one.
INSERT INTO consensus_labels AS c (trace_id, model_name, model_version, label, probability, point_probability,
                                   answers, reviewers, agreeing, status, audited, updated_at)
SELECT s.trace_id, %(model_name)s, p.model_version, s.label, s.probability, s.point_probability, s.answers,
       ARRAY(SELECT jsonb_array_elements_text(s.reviewers)), s.agreeing, s.status,
       EXISTS (SELECT 1 FROM review_items ri WHERE ri.trace_id = s.trace_id AND ri.reason = 'audit'),
       now()
FROM unnest(%(trace_ids)s::uuid[], %(labels)s::text[], %(probabilities)s::float8[],
            %(point_probabilities)s::float8[], %(answers)s::int[], %(reviewers)s::jsonb[], %(agreeing)s::int[],
            %(statuses)s::text[])
     AS s (trace_id, label, probability, point_probability, answers, reviewers, agreeing, status)
JOIN predictions p ON p.trace_id = s.trace_id
ON CONFLICT (trace_id) DO UPDATE
SET label = EXCLUDED.label, probability = EXCLUDED.probability, point_probability = EXCLUDED.point_probability,
    answers = EXCLUDED.answers, reviewers = EXCLUDED.reviewers, agreeing = EXCLUDED.agreeing,
    status = EXCLUDED.status, audited = EXCLUDED.audited, updated_at = now()
