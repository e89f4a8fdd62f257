-- Notifications still waiting for a successful delivery, oldest first.
SELECT id
FROM notifications
WHERE status <> 'delivered'
ORDER BY id
LIMIT %(limit)s
