-- Transaction-scoped lock per model and purpose (register, alias moves), released at commit/rollback.
SELECT pg_advisory_xact_lock(hashtext(%(key)s))
