-- One rollup row per (model, version, interval); a rerun overwrites it with the same values.
INSERT INTO feedback_rollups (
    model_name, model_version, interval_start, interval_end, n_predictions, n_feedback, n_signals,
    counts_by_kind, mean_rating, positive_rate, negative_rate, correction_rate, accuracy, n_labelled,
    review_latency_p50_s, review_latency_p95_s, backlog_size, backlog_oldest_age_s, reviews_asked,
    labels_from_reviews, label_yield, drift, slices, audited_n, audited_correct, estimated_accuracy, computed_at
) VALUES (
    %(model_name)s, %(model_version)s, %(start)s, %(end)s, %(n_predictions)s, %(n_feedback)s, %(n_signals)s,
    %(counts_by_kind)s, %(mean_rating)s, %(positive_rate)s, %(negative_rate)s, %(correction_rate)s,
    %(accuracy)s, %(n_labelled)s, %(review_latency_p50_s)s, %(review_latency_p95_s)s, %(backlog_size)s,
    %(backlog_oldest_age_s)s, %(reviews_asked)s, %(labels_from_reviews)s, %(label_yield)s, %(drift)s,
    %(slices)s, %(audited_n)s, %(audited_correct)s, %(estimated_accuracy)s, now()
)
ON CONFLICT (model_name, model_version, interval_start, interval_end) DO UPDATE SET
    n_predictions = EXCLUDED.n_predictions,
    n_feedback = EXCLUDED.n_feedback,
    n_signals = EXCLUDED.n_signals,
    counts_by_kind = EXCLUDED.counts_by_kind,
    mean_rating = EXCLUDED.mean_rating,
    positive_rate = EXCLUDED.positive_rate,
    negative_rate = EXCLUDED.negative_rate,
    correction_rate = EXCLUDED.correction_rate,
    accuracy = EXCLUDED.accuracy,
    n_labelled = EXCLUDED.n_labelled,
    review_latency_p50_s = EXCLUDED.review_latency_p50_s,
    review_latency_p95_s = EXCLUDED.review_latency_p95_s,
    backlog_size = EXCLUDED.backlog_size,
    backlog_oldest_age_s = EXCLUDED.backlog_oldest_age_s,
    reviews_asked = EXCLUDED.reviews_asked,
    labels_from_reviews = EXCLUDED.labels_from_reviews,
    label_yield = EXCLUDED.label_yield,
    drift = EXCLUDED.drift,
    slices = EXCLUDED.slices,
    audited_n = EXCLUDED.audited_n,
    audited_correct = EXCLUDED.audited_correct,
    estimated_accuracy = EXCLUDED.estimated_accuracy,
    computed_at = EXCLUDED.computed_at
