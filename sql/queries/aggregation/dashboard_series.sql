-- The dashboard's time series: one row per model version and interval in the window, oldest first.
-- drift_rows lets the page hide PSI computed on too few predictions to mean anything.
SELECT model_version, interval_start, interval_end, n_predictions, n_feedback, n_signals, negative_rate,
       accuracy, n_labelled, review_latency_p50_s, review_latency_p95_s, backlog_size, backlog_oldest_age_s,
       label_yield, (drift ->> 'n')::integer AS drift_rows,
       (drift -> 'max_psi' ->> 'psi')::double precision AS max_psi,
       drift -> 'max_psi' ->> 'feature' AS max_psi_feature, slices, audited_n, audited_correct,
       estimated_accuracy
FROM feedback_rollups
WHERE model_name = %(model_name)s AND interval_start >= %(since)s AND interval_end <= %(until)s
ORDER BY interval_start, model_version
