-- Metrics per model version for feedback, predictions and reviews of one interval [start, end).
-- Every source is read by created_at range through its time index, so the cost follows the interval's
-- rows, not the table's history. Rates count every kind except comments (a comment carries no verdict).
-- Backlog is "as of end": review items created in [backlog_since, end) not answered before end; items
-- older than the queue's max age would have expired by then.
WITH fb AS (
    SELECT f.model_version, f.kind, f.rating, f.label, f.signal, f.source, f.is_negative,
           p.output_label,
           CASE WHEN f.source = 'review'
                THEN coalesce(f.latency_seconds, extract(epoch FROM f.created_at - ri.created_at))
           END AS review_latency
    FROM feedback f
    -- LATERAL ... LIMIT 1 keeps these as primary-key lookups per feedback row: a plain join lets the
    -- planner hash-join against a scan of the whole table, whose cost grows with the history.
    CROSS JOIN LATERAL (
        SELECT output_label FROM predictions WHERE trace_id = f.trace_id LIMIT 1
    ) AS p
    LEFT JOIN LATERAL (
        SELECT created_at FROM review_items WHERE id = f.review_item_id LIMIT 1
    ) AS ri ON true
    WHERE f.created_at >= %(start)s AND f.created_at < %(end)s AND f.model_name = %(model_name)s
),
feedback_metrics AS (
    SELECT model_version,
           count(*) AS n_feedback,
           count(*) FILTER (WHERE kind <> 'comment') AS n_signals,
           jsonb_build_object(
               'thumbs_up', count(*) FILTER (WHERE kind = 'thumbs_up'),
               'thumbs_down', count(*) FILTER (WHERE kind = 'thumbs_down'),
               'rating', count(*) FILTER (WHERE kind = 'rating'),
               'correction', count(*) FILTER (WHERE kind = 'correction'),
               'comment', count(*) FILTER (WHERE kind = 'comment'),
               'implicit', count(*) FILTER (WHERE kind = 'implicit')
           ) AS counts_by_kind,
           avg(rating) FILTER (WHERE kind = 'rating') AS mean_rating,
           count(*) FILTER (
               WHERE kind = 'thumbs_up' OR (kind = 'rating' AND rating >= 4)
                  OR (kind = 'implicit' AND signal = 'accepted')
           ) AS n_positive,
           count(*) FILTER (WHERE is_negative) AS n_negative,
           count(*) FILTER (WHERE kind = 'correction') AS n_corrections,
           count(*) FILTER (WHERE label IS NOT NULL) AS n_labelled,
           count(*) FILTER (WHERE label IS NOT NULL AND label = output_label) AS n_correct,
           count(*) FILTER (WHERE source = 'review' AND label IS NOT NULL) AS labels_from_reviews,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY review_latency)
               FILTER (WHERE review_latency IS NOT NULL) AS review_latency_p50_s,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY review_latency)
               FILTER (WHERE review_latency IS NOT NULL) AS review_latency_p95_s
    FROM fb
    GROUP BY model_version
),
prediction_metrics AS (
    SELECT model_version, count(*) AS n_predictions
    FROM predictions
    WHERE created_at >= %(start)s AND created_at < %(end)s AND model_name = %(model_name)s
    GROUP BY model_version
),
review_metrics AS (
    SELECT model_version,
           count(*) FILTER (WHERE created_at >= %(start)s) AS reviews_asked,
           count(*) FILTER (WHERE answered_at IS NULL OR answered_at >= %(end)s) AS backlog_size,
           extract(epoch FROM %(end)s - min(created_at) FILTER (WHERE answered_at IS NULL OR answered_at >= %(end)s))
               AS backlog_oldest_age_s
    FROM review_items
    WHERE model_name = %(model_name)s AND created_at >= %(backlog_since)s AND created_at < %(end)s
    GROUP BY model_version
),
versions AS (
    SELECT model_version FROM feedback_metrics
    UNION SELECT model_version FROM prediction_metrics
    UNION SELECT model_version FROM review_metrics
    WHERE reviews_asked > 0 OR backlog_size > 0
)
SELECT v.model_version,
       coalesce(p.n_predictions, 0) AS n_predictions,
       coalesce(f.n_feedback, 0) AS n_feedback,
       coalesce(f.n_signals, 0) AS n_signals,
       coalesce(f.counts_by_kind, '{}'::jsonb) AS counts_by_kind,
       f.mean_rating::double precision AS mean_rating,
       f.n_positive::double precision / nullif(f.n_signals, 0) AS positive_rate,
       f.n_negative::double precision / nullif(f.n_signals, 0) AS negative_rate,
       f.n_corrections::double precision / nullif(f.n_signals, 0) AS correction_rate,
       f.n_correct::double precision / nullif(f.n_labelled, 0) AS accuracy,
       coalesce(f.n_labelled, 0) AS n_labelled,
       f.review_latency_p50_s,
       f.review_latency_p95_s,
       coalesce(r.backlog_size, 0) AS backlog_size,
       r.backlog_oldest_age_s::double precision AS backlog_oldest_age_s,
       coalesce(r.reviews_asked, 0) AS reviews_asked,
       coalesce(f.labels_from_reviews, 0) AS labels_from_reviews,
       f.labels_from_reviews::double precision / nullif(r.reviews_asked, 0) AS label_yield
FROM versions v
LEFT JOIN feedback_metrics f USING (model_version)
LEFT JOIN prediction_metrics p USING (model_version)
LEFT JOIN review_metrics r USING (model_version)
ORDER BY v.model_version
