SELECT model_name, version, artifact_uri, sha256, format, status, classes, feature_columns, metrics,
       data_snapshot, reference_profile, holdout_predictions, parent_version, created_by, note, created_at
FROM model_versions
WHERE model_name = %(model_name)s
ORDER BY version
