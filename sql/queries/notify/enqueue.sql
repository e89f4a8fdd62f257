-- Store a notification in the outbox, in the caller's transaction; delivery happens after the commit.
INSERT INTO notifications (topic, payload)
VALUES (%(topic)s, %(payload)s)
RETURNING id
