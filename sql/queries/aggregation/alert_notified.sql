-- Whether this alert was already stored for notification (a retried or re-run interval notifies once).
SELECT id FROM notifications WHERE topic = %(topic)s AND payload = %(payload)s LIMIT 1
