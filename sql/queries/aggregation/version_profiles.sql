-- Training-time metrics and reference distributions of the versions seen in an interval.
SELECT version, metrics, reference_profile
FROM model_versions
WHERE model_name = %(model_name)s AND version = ANY(%(versions)s)
