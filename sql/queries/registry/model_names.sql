SELECT DISTINCT model_name FROM model_versions ORDER BY model_name
