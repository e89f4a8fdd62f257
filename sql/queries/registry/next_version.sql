SELECT coalesce(max(version), 0) + 1 AS next FROM model_versions WHERE model_name = %(model_name)s
