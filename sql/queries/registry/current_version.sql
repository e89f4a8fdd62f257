-- The holder of an alias is the latest event for it (model_alias_events is append-only).
SELECT version FROM model_alias_events
WHERE model_name = %(model_name)s AND alias = %(alias)s
ORDER BY id DESC
LIMIT 1
