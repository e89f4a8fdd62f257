-- Feedback that can label a prediction, one row per trace: the prediction once, its votes oldest first.
-- Read through a server-side cursor (training_data.stream_feedback), so the result is never held whole.
-- A vote is a thumbs up/down, a rating, or any feedback carrying a label (corrections, review answers).
-- Reviewed traces carry their consensus label (labels.store), which stands for the reviewers' votes.
SELECT p.trace_id::text AS trace_id,
       p.model_version,
       p.input,
       p.slice,
       p.output_label,
       v.ids, v.kinds, v.ratings, v.labels, v.sources, v.user_ids,
       c.label AS consensus_label, c.probability AS consensus_probability, c.status AS consensus_status,
       c.reviewers AS consensus_reviewers, c.audited
FROM (
    SELECT f.trace_id,
           array_agg(f.id ORDER BY f.created_at, f.id)      AS ids,
           array_agg(f.kind ORDER BY f.created_at, f.id)    AS kinds,
           array_agg(f.rating ORDER BY f.created_at, f.id)  AS ratings,
           array_agg(f.label ORDER BY f.created_at, f.id)   AS labels,
           array_agg(f.source ORDER BY f.created_at, f.id)  AS sources,
           array_agg(f.user_id ORDER BY f.created_at, f.id) AS user_ids
    FROM feedback f
    WHERE f.model_name = %(model_name)s
      AND f.created_at >= %(start)s
      AND f.created_at < %(end)s
      AND (f.kind IN ('thumbs_up', 'thumbs_down', 'rating') OR f.label IS NOT NULL)
    GROUP BY f.trace_id
) v
JOIN predictions p ON p.trace_id = v.trace_id
LEFT JOIN consensus_labels c ON c.trace_id = v.trace_id
ORDER BY p.trace_id
