INSERT INTO model_versions (model_name, version, artifact_uri, sha256, format, status, classes, feature_columns,
                            metrics, data_snapshot, reference_profile, holdout_predictions, parent_version,
                            created_by, note)
VALUES (%(model_name)s, %(version)s, %(artifact_uri)s, %(sha256)s, 'skops', %(status)s, %(classes)s,
        %(feature_columns)s, %(metrics)s, %(data_snapshot)s, %(reference_profile)s, %(holdout_predictions)s,
        %(parent_version)s,
        %(created_by)s, %(note)s)
