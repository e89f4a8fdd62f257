-- The interval's metrics per model version and value of each configured slice attribute (bias audit).
-- Slice values come from the prediction's `slice` jsonb; feedback inherits the slice of its prediction.
WITH p AS (
    SELECT model_version, slice, confidence
    FROM predictions
    WHERE created_at >= %(start)s AND created_at < %(end)s AND model_name = %(model_name)s
),
prediction_slices AS (
    SELECT p.model_version, s.key AS slice_column, coalesce(s.value, 'null') AS slice_value,
           count(*) AS n_predictions, avg(p.confidence) AS mean_confidence
    FROM p, jsonb_each_text(p.slice) AS s
    WHERE s.key = ANY(%(slice_columns)s)
    GROUP BY 1, 2, 3
),
f AS (
    SELECT f.model_version, f.kind, f.label, f.is_negative, pr.output_label, pr.slice
    FROM feedback f
    -- A primary-key lookup per feedback row (LIMIT 1 stops the planner from turning it into a hash join
    -- over the whole predictions table, whose cost would grow with the history).
    CROSS JOIN LATERAL (
        SELECT output_label, slice FROM predictions WHERE trace_id = f.trace_id LIMIT 1
    ) AS pr
    WHERE f.created_at >= %(start)s AND f.created_at < %(end)s AND f.model_name = %(model_name)s
),
feedback_slices AS (
    SELECT f.model_version, s.key AS slice_column, coalesce(s.value, 'null') AS slice_value,
           count(*) AS n_feedback,
           count(*) FILTER (WHERE f.kind <> 'comment') AS n_signals,
           count(*) FILTER (WHERE f.is_negative) AS n_negative,
           count(*) FILTER (WHERE f.label IS NOT NULL) AS n_labelled,
           count(*) FILTER (WHERE f.label IS NOT NULL AND f.label = f.output_label) AS n_correct
    FROM f, jsonb_each_text(f.slice) AS s
    WHERE s.key = ANY(%(slice_columns)s)
    GROUP BY 1, 2, 3
)
SELECT model_version, slice_column, slice_value,
       coalesce(ps.n_predictions, 0) AS n_predictions,
       ps.mean_confidence,
       coalesce(fs.n_feedback, 0) AS n_feedback,
       coalesce(fs.n_signals, 0) AS n_signals,
       fs.n_negative::double precision / nullif(fs.n_signals, 0) AS negative_rate,
       coalesce(fs.n_labelled, 0) AS n_labelled,
       fs.n_correct::double precision / nullif(fs.n_labelled, 0) AS accuracy
FROM prediction_slices ps
FULL JOIN feedback_slices fs USING (model_version, slice_column, slice_value)
ORDER BY model_version, slice_column, slice_value
