-- The outcome of a delivery attempt: delivered (with the time), or failed with the reason.
UPDATE notifications
SET status = %(status)s,
    attempts = %(attempts)s,
    last_error = %(error)s,
    delivered_at = CASE WHEN %(status)s = 'delivered' THEN now() END
WHERE id = %(id)s
