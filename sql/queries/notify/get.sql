-- One stored notification, to deliver it.
SELECT payload, attempts, status
FROM notifications
WHERE id = %(id)s
