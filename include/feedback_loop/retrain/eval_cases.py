"""Eval cases from failures: corrected feedback on a wrong prediction joins the regression set.

The label is the trace's consensus (reviewed traces) or resolved label (end-user feedback), so a correction
that others overruled never becomes a case; the provenance is the feedback row that carried it. Only a
corroborated correction (two people agree) is must-pass: a single person's correction is a *watched* case,
scored and reported by the gate but never gating, and becomes must-pass when someone agrees. Promotion is
idempotent: running it twice stores nothing new, and a trace whose label or corroboration changed is
updated.

A must-pass case whose label still turns out wrong is demoted by a person: it stays in the set as a
watched case, and the demotion is audited in eval_case_events. A person's decision (demote or restore)
stands: promotion from new feedback never undoes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from feedback_loop.core import db, queries
from feedback_loop.core.errors import InvalidInputError, NotFoundError
from feedback_loop.registry import versions as registry

log = logging.getLogger(__name__)


def _lock(conn: psycopg.Connection, model_name: str) -> None:
    """Promotion and demotion of one model's cases take turns: they lock rows in different orders."""
    db.transaction_lock(conn, f"eval_cases:{model_name}")


def promote_failures(conn: psycopg.Connection, model_name: str, corrected: Sequence[dict[str, Any]]) -> dict:
    """Upsert `corrected` traces (trace_id, expected_label, wrong_label, feedback_id, corroborated) into
    eval_cases: corroborated ones as must-pass, the others watched.

    Returns {"inserted": n, "updated": n, "unchanged": n}; commits.
    """
    failures = [c for c in corrected if c["expected_label"] != c["wrong_label"]]
    if not failures:
        return {"inserted": 0, "updated": 0, "unchanged": 0}
    params = {
        "model_name": model_name,
        "trace_ids": [str(c["trace_id"]) for c in failures],
        "expected": [c["expected_label"] for c in failures],
        "wrong": [c["wrong_label"] for c in failures],
        "feedback_ids": [c["feedback_id"] for c in failures],
        "corroborated": [bool(c.get("corroborated", True)) for c in failures],
    }
    conn.commit()  # end any implicit transaction so the block below commits on its own
    with conn.transaction():
        _lock(conn, model_name)
        rows = conn.execute(queries.sql("retraining/upsert_eval_cases"), params).fetchall()
    inserted = sum(1 for r in rows if r["inserted"])
    result = {"inserted": inserted, "updated": len(rows) - inserted, "unchanged": len(failures) - len(rows)}
    log.info("%s: eval cases from reported failures: %s", model_name, result)
    return result


def load(conn: psycopg.Connection, model_name: str) -> list[dict[str, Any]]:
    """Every eval case of the model, oldest first."""
    return conn.execute(queries.sql("retraining/eval_cases_for_model"), {"model_name": model_name}).fetchall()


def list_cases(conn: psycopg.Connection, model_name: str, ids: Sequence[int] | None = None) -> list[dict]:
    """The model's eval cases (or those with these ids) with provenance and their last must-pass change."""
    params = {"model_name": model_name, "ids": list(ids) if ids else None}
    return conn.execute(queries.sql("eval_cases/list"), params).fetchall()


def set_must_pass(
    conn: psycopg.Connection,
    model_name: str,
    ids: Sequence[int],
    *,
    must_pass: bool,
    actor: str,
    reason: str,
) -> dict[str, list[int]]:
    """Demote (must_pass=False) or restore cases, all of them or none, with an audit event for each change.

    Returns {"changed": [...], "unchanged": [...]} (unchanged: already in that state). Commits."""
    if not reason.strip():
        raise InvalidInputError("reason: must not be empty; say why, for the audit trail")
    wanted = sorted(set(ids))
    if not wanted:
        raise InvalidInputError("ids: give at least one eval case id")
    registry.list_versions(conn, model_name)  # an unknown model says so, not "no case with id ..."
    conn.commit()  # end any implicit transaction so the block below commits on its own
    with conn.transaction():
        _lock(conn, model_name)
        found = conn.execute(
            queries.sql("eval_cases/lock_cases"), {"model_name": model_name, "ids": wanted}
        ).fetchall()
        missing = sorted(set(wanted) - {r["id"] for r in found})
        if missing:
            raise NotFoundError(
                f"model {model_name!r} has no eval case with id {', '.join(map(str, missing))}; "
                f"nothing was changed (see: feedback-loop eval-cases list --model {model_name})"
            )
        to_change = [r["id"] for r in found if r["must_pass"] != must_pass]
        changed = []
        if to_change:
            rows = conn.execute(
                queries.sql("eval_cases/set_must_pass"),
                {
                    "model_name": model_name,
                    "ids": to_change,
                    "must_pass": must_pass,
                    "actor": actor,
                    "reason": reason.strip(),
                },
            ).fetchall()
            changed = sorted(r["eval_case_id"] for r in rows)
    state = "must-pass" if must_pass else "watched (not gating)"
    if changed:
        log.info("%s: eval case(s) %s now %s by %s: %s", model_name, changed, state, actor, reason.strip())
    return {"changed": changed, "unchanged": sorted(set(wanted) - set(changed))}


def change_report(model_name: str, must_pass: bool, result: dict, cases: Sequence[dict[str, Any]]) -> str:
    """What a demotion or restore changed, case by case, for a task log or a terminal."""
    state = "must-pass" if must_pass else "watched (reported, not gating)"
    lines = [
        f"{model_name}: changed {result['changed'] or 'none'}, already {state}: {result['unchanged'] or 'none'}"
    ]
    for case in cases:
        lines.append(
            f"  case {case['id']}: now {'must-pass' if case['must_pass'] else 'watched'}; expected "
            f"{case['expected_label']!r}, the model said {case['wrong_label']!r}; from feedback "
            f"{case['feedback_id']} ({case['feedback_source']}, {case['feedback_by'] or 'anonymous'})"
        )
    return "\n".join(lines)
