INSERT INTO model_alias_events (model_name, alias, version, previous_version, action, actor, reason)
VALUES (%(model_name)s, %(alias)s, %(version)s, %(previous_version)s, %(action)s, %(actor)s, %(reason)s)
RETURNING id, model_name, alias, version, previous_version, action, actor, reason, created_at
