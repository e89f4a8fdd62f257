-- Serialises concurrent runs for one model and interval (a scheduled run and a backfill), until commit.
SELECT pg_advisory_xact_lock(hashtext(%(key)s))
