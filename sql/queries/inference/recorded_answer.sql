-- A closed review item's recorded answer and the feedback it became (none for a skip without comment, an
-- expired item or an answer not counted).
SELECT ri.id, ri.status, ri.answer, ri.answered_at, ri.hitl_ref,
       f.id AS feedback_id, f.kind AS feedback_kind, f.label
FROM review_items ri
LEFT JOIN LATERAL (
    SELECT id, kind, label FROM feedback WHERE review_item_id = ri.id ORDER BY id LIMIT 1
) f ON true
WHERE ri.id = %(id)s
