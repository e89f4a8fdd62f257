SELECT id, model_name, alias, version, previous_version, action, actor, reason, created_at
FROM model_alias_events
WHERE model_name = %(model_name)s AND alias = %(alias)s
ORDER BY id
