"""The form every review task shows and its reserved answers: plain constants and one schema, no other
import, because the DAG file builds the review task's Params from it at parse time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NONE_OF_THESE = "None of these"
SKIP = "Skip (cannot tell)"
CORRECTED_LABEL = "corrected_label"
COMMENT = "comment"
MAX_LABEL_LENGTH = 200
MAX_COMMENT_LENGTH = 2000


def review_params_schema(classes: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """The form fields of every review task (Airflow Param keyword arguments, no Airflow import)."""
    label: dict[str, Any] = {
        "default": None,
        "type": ["null", "string"],
        "maxLength": MAX_LABEL_LENGTH,
        "title": "Corrected label",
        "description": f"Only with '{NONE_OF_THESE}': the right label, if you know it.",
    }
    if classes:
        label["examples"] = list(classes)
    return {
        CORRECTED_LABEL: label,
        COMMENT: {
            "default": None,
            "type": ["null", "string"],
            "maxLength": MAX_COMMENT_LENGTH,
            "title": "Comment",
            "description": "Optional: why, or anything the model owners should know.",
        },
    }
