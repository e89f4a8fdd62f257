-- A candidate a human (or a late check) turned down is marked rejected so it can never be promoted.
-- Never touches a version that currently serves.
UPDATE model_versions mv
SET status = 'rejected', note = %(note)s
WHERE mv.model_name = %(model_name)s AND mv.version = %(version)s AND mv.status = 'registered'
  AND NOT EXISTS (
      SELECT 1 FROM model_aliases a
      WHERE a.model_name = mv.model_name AND a.version = mv.version
  )
RETURNING version
