-- A named lock held until the current transaction commits or rolls back (waits while another holds it).
-- Keys name what they serialise, e.g. 'registry:register:<model>', 'rollup:<model>:<start>:<end>',
-- 'eval_cases:<model>'.
SELECT pg_advisory_xact_lock(hashtext(%(key)s))
