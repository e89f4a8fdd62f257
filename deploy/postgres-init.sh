#!/usr/bin/env bash
# Runs once when the PostgreSQL volume is created: a database and role for the feedback data, separate
# from Airflow's metadata database so each can be backed up, sized and restored on its own.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set=feedback_password="$FEEDBACK_DB_PASSWORD" <<'SQL'
CREATE ROLE feedback LOGIN PASSWORD :'feedback_password';
CREATE DATABASE feedback OWNER feedback;
SQL
