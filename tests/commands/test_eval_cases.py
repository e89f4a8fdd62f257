"""`feedback-loop eval-cases`: a reviewer's slip becomes a must-pass case and blocks a good candidate; on-call
finds it from the gate's verdict, demotes it, and the next run passes with the case still reported."""

from __future__ import annotations

import json

import pytest

from feedback_loop import cli
from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases, pipeline, planning

from ..support.helpers import run_cli
from ..support.retraining import (
    champion_v1,
    digits_model,
    honest_feedback,
    log_scored,
    production_rows,
)

pytestmark = pytest.mark.integration


def cli_json(capsys, *args: str):
    assert cli.main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_wrong_must_pass_case_is_an_open_failure_not_a_block_and_can_be_demoted(conn, capsys):
    model = digits_model()
    champion_v1(conn, model)
    scored = log_scored(conn, model, production_rows(model, 400))
    # Last month a reviewer "corrected" a prediction that was right (v1's most confident right one), and that
    # month's run made the slip a must-pass case. It is outside this week's window, so no candidate trains
    # on the wrong label: every candidate that gets the input right fails the case, as in production.
    slip, slip_label = _last_months_slip(conn, scored)
    this_week = [s for s in scored if str(s["trace_id"]) != slip["trace_id"]]
    assert honest_feedback(conn, this_week) > 5  # this week: real failures, corrected with the true label
    week = {"triggered_by": "test", "window_days": 7}

    first = pipeline.run(conn, model, planning.resolve_params(model, **week))

    # Neither the champion nor the candidate passes the slip: an open failure, reported, never a block.
    assert first.status == "promoted", first.decision
    must = next(c for c in first.gate["checks"] if c["name"] == "eval cases (must pass)")
    assert must["passed"] and "open failure(s) neither passes" in must["detail"]
    assert f"failing case ids [{slip['id']}]" in must["detail"]

    listed = cli_json(capsys, "eval-cases", "list", "--model", "digits", "--id", str(slip["id"]))
    assert [(c["id"], c["must_pass"], c["expected_label"]) for c in listed] == [
        (slip["id"], True, slip_label)
    ]
    assert (listed[0]["feedback_source"], listed[0]["feedback_by"]) == ("review", "reviewer-slip")

    demoted = cli_json(
        capsys,
        "eval-cases",
        "demote",
        "--model",
        "digits",
        "--id",
        str(slip["id"]),
        "--reason",
        "reviewer slip",
    )
    assert demoted["changed"] == [slip["id"]] and demoted["unchanged"] == []
    watched = cli_json(capsys, "eval-cases", "list", "--model", "digits", "--watched")
    assert [c for c in watched if c["id"] == slip["id"]] == [
        {**listed[0], "must_pass": False, **_change_of(conn, slip["id"])}
    ]
    # The others are one user's corrections: watched until someone agrees, with no person's change.
    assert all(c["changed_by"] is None for c in watched if c["id"] != slip["id"])

    # New feedback arrives (without it the next run would learn nothing new and register nothing).
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 100, offset=400)))
    passed = pipeline.run(conn, model, planning.resolve_params(model, **week))

    assert passed.status == "promoted", passed.decision
    gate = conn.execute("SELECT gate FROM training_runs ORDER BY id DESC LIMIT 1").fetchone()["gate"]
    watched = next(c for c in gate["checks"] if c["name"] == "eval cases (watched)")
    assert watched["passed"] and watched["detail"].endswith(
        f"reported, not gated; missed case ids [{slip['id']}]"
    )
    assert registry.champion(conn, "digits").version == 3

    # Undo: the case gates again, and both changes are in the audit trail.
    restored = cli_json(
        capsys, "eval-cases", "restore", "--model", "digits", "--id", str(slip["id"]), "--reason", "undo"
    )
    assert restored["changed"] == [slip["id"]]
    events = conn.execute(
        "SELECT must_pass, reason FROM eval_case_events WHERE eval_case_id = %s ORDER BY id", (slip["id"],)
    ).fetchall()
    assert [(e["must_pass"], e["reason"]) for e in events] == [(False, "reviewer slip"), (True, "undo")]
    again = cli_json(
        capsys, "eval-cases", "restore", "--model", "digits", "--id", str(slip["id"]), "--reason", "again"
    )
    assert again == {"model": "digits", "must_pass": True, "changed": [], "unchanged": [slip["id"]]}


def _last_months_slip(conn, scored: list[dict]) -> tuple[dict, str]:
    """A wrong correction, 30 days old, on v1's most confident right prediction, made a must-pass case."""
    right = {str(s["trace_id"]): s["truth"] for s in scored if s["predicted"] == s["truth"]}
    confident = conn.execute(
        "SELECT trace_id::text AS trace_id FROM predictions WHERE trace_id::text = ANY(%s) "
        "ORDER BY confidence DESC, trace_id LIMIT 1",
        (list(right),),
    ).fetchone()["trace_id"]
    truth = right[confident]
    slip_label = "0" if truth != "0" else "1"
    feedback_id = conn.execute(
        """
        INSERT INTO feedback (trace_id, model_name, model_version, kind, label, source, user_id, created_at)
        SELECT trace_id, model_name, model_version, 'correction', %s, 'review', 'reviewer-slip',
               now() - interval '30 days'
        FROM predictions WHERE trace_id = %s::uuid
        RETURNING id
        """,
        (slip_label, confident),
    ).fetchone()["id"]
    conn.commit()
    promoted = eval_cases.promote_failures(
        conn,
        "digits",
        [
            {
                "trace_id": confident,
                "expected_label": slip_label,
                "wrong_label": truth,
                "feedback_id": feedback_id,
                "corroborated": True,  # as if a second reviewer had made the same slip
            }
        ],
    )
    assert promoted["inserted"] == 1
    (case,) = [c for c in eval_cases.load(conn, "digits") if c["trace_id"] == confident]
    return case, slip_label


def _change_of(conn, case_id: int) -> dict:
    row = conn.execute(
        "SELECT actor, reason, created_at FROM eval_case_events WHERE eval_case_id = %s ORDER BY id DESC LIMIT 1",
        (case_id,),
    ).fetchone()
    return {
        "changed_by": row["actor"],
        "change_reason": row["reason"],
        "changed_at": row["created_at"].isoformat(),
    }


def test_an_unknown_case_id_changes_nothing_and_says_which(conn):
    model = digits_model()
    champion_v1(conn, model)
    scored = log_scored(conn, model, production_rows(model, 200))
    assert honest_feedback(conn, scored) > 0
    pipeline.run(conn, model, planning.resolve_params(model, triggered_by="test"))
    before = eval_cases.load(conn, "digits")
    real = before[0]["id"]

    result = run_cli(
        "eval-cases", "demote", "--model", "digits", "--id", str(real), "--id", "999999", "--reason", "x"
    )

    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result
    assert "no eval case with id 999999; nothing was changed" in result.stderr
    assert eval_cases.load(conn, "digits") == before
    assert conn.execute("SELECT count(*) AS n FROM eval_case_events").fetchone()["n"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval-cases", "list", "--model", "ghost"], "unknown model 'ghost'"),
        (["eval-cases", "demote", "--model", "ghost", "--id", "1", "--reason", "r"], "unknown model 'ghost'"),
        (["eval-cases", "demote", "--model", "digits", "--id", "1"], "--reason"),
        (
            ["eval-cases", "demote", "--model", "digits", "--id", "1", "--reason", "  "],
            "reason: must not be empty",
        ),
        (["eval-cases", "demote", "--model", "digits", "--reason", "r"], "--id"),
        (
            ["eval-cases", "restore", "--model", "digits", "--id", "0", "--reason", "r"],
            "expected a positive integer",
        ),
    ],
)
def test_bad_input_exits_2_with_a_reason(conn, args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr
