SELECT pg_advisory_unlock(%(lock_class)s, hashtext(%(model_name)s))
