-- Close one review item with the answer it got; only an open item changes, so a repeated answer is a no-op.
UPDATE review_items
SET status = %(status)s,
    answered_at = CASE WHEN %(status)s::text = 'answered' THEN %(answered_at)s::timestamptz END,
    answer = %(answer)s
WHERE id = %(id)s AND status = 'open'
RETURNING id, status
