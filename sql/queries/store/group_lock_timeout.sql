-- For the rest of a group write's transaction (store.record_feedback_group): a lock not granted within
-- 100 ms fails the statement (lock_not_available), and the group's events are written one by one.
SET LOCAL lock_timeout = '100ms'
