-- The per-model retraining lock: a session advisory lock, so it is released if the process dies.
SELECT pg_try_advisory_lock(%(lock_class)s, hashtext(%(model_name)s)) AS ok
