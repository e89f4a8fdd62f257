SELECT 1 AS found FROM model_versions WHERE model_name = %(model_name)s LIMIT 1
