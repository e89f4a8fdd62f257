-- The keys' transaction locks of a group write (store.record_feedback_group), each taken only if it is
-- free at once: a group never waits for a key. The places (ords) of the entries whose key was busy are
-- kept for the rest of the transaction in the setting feedback_loop.busy_entries, which
-- insert_feedback_group reads: those entries are left out, and each is then written alone, where it waits
-- for its key. (An aggregate without GROUP BY: one row, so the setting is made also when none was busy.)
SELECT set_config('feedback_loop.busy_entries', coalesce(string_agg(t.ord::text, ','), ''), true)
FROM unnest(%(keys)s::text[], %(ords)s::int[]) AS t(key, ord)
WHERE NOT pg_try_advisory_xact_lock(hashtext(t.key))
