-- For the rest of a group write's transaction (store.record_feedback_group): each lock not granted within
-- 100 ms fails its statement (lock_not_available), and the group's events are written one by one. (Keys'
-- locks are never waited for; this bounds the other waits, e.g. on a row a batch's COPY has not committed.)
SET LOCAL lock_timeout = '100ms'
