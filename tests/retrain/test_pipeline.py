"""Retraining end to end on real PostgreSQL: feedback -> training set -> candidate -> gate -> registry."""

from __future__ import annotations

import pytest

from feedback_loop.registry import versions as registry
from feedback_loop.retrain import eval_cases, pipeline, planning

from ..support.retraining import (
    champion_v1,
    digits_model,
    flipped_feedback,
    honest_feedback,
    log_scored,
    production_rows,
    runs,
)

pytestmark = pytest.mark.integration


def params(model, **overrides):
    return planning.resolve_params(model, triggered_by="test", **overrides)


def test_retrain_on_feedback_that_fixes_known_failures_is_promoted(conn):
    model = digits_model()
    champion_v1(conn, model)
    scored = log_scored(conn, model, production_rows(model, 400))
    wrong = honest_feedback(conn, scored)
    assert wrong > 5, "v1 must have known weaknesses for this test to mean anything"

    outcome = pipeline.run(conn, model, params(model, reason="weekly"))

    assert outcome.status == "promoted", outcome.decision
    assert registry.champion(conn, "digits").version == 2
    run = runs(conn)[-1]
    assert run["status"] == "promoted" and run["candidate_version"] == 2 and run["champion_version"] == 1
    assert run["gate"]["passed"] is True
    # the failures users reported became eval cases; v1 fails every one of them, v2 passes them. Each is
    # one user's correction, so it is watched (reported, not gating) until someone agrees.
    cases = eval_cases.load(conn, "digits")
    assert len(cases) == wrong and not any(c["must_pass"] for c in cases)
    watched = next(c for c in run["gate"]["checks"] if c["name"] == "eval cases (watched)")
    assert (watched["champion"], watched["candidate"]) == (0.0, 1.0)
    v2 = registry.get_version(conn, "digits", 2)
    assert v2.status == "registered" and v2.parent_version == 1
    assert v2.data_snapshot["feedback"]["corrected"] == wrong
    assert v2.data_snapshot["feedback"]["rows"] > 0 and v2.data_snapshot["training_run_id"] == run["id"]
    assert v2.reference_profile["features"]


def test_gate_blocks_a_candidate_trained_on_flipped_labels_and_says_why(conn):
    model = digits_model()
    champion_v1(conn, model)
    flipped_feedback(conn, log_scored(conn, model, production_rows(model, 300)))

    outcome = pipeline.run(conn, model, params(model))

    assert outcome.status == "rejected"
    assert registry.champion(conn, "digits").version == 1
    v2 = registry.get_version(conn, "digits", 2)
    assert v2.status == "rejected" and "rejected by the gate" in v2.note
    run = runs(conn)[-1]
    assert run["status"] == "rejected" and run["gate"]["passed"] is False
    primary = next(c for c in run["gate"]["checks"] if c["name"] == "holdout accuracy")
    assert primary["passed"] is False and primary["candidate"] < primary["champion"] - 0.01
    assert any("holdout accuracy" in reason for reason in run["gate"]["reasons"])
    assert "holdout accuracy" in run["decision"]
    with pytest.raises(Exception, match="rejected"):
        registry.promote(conn, "digits", 2, actor="someone")


def test_a_sql_base_source_is_streamed_with_the_label_as_text(conn):
    from feedback_loop.core import config
    from feedback_loop.retrain import training_data

    model = config.parse(
        """
models:
  - name: parity
    label_column: y
    training_data:
      query: "SELECT g::float AS x, (g % 7)::float AS z, g % 2 AS y FROM generate_series(1, 2500) g"
""",
        "q.yaml",
    ).model("parity")
    frame = training_data.load_base(conn, model)
    assert len(frame) == 2500 and list(frame.columns) == ["x", "z", "y"]
    assert set(frame["y"]) == {"0", "1"} and frame["x"].dtype.kind == "f"


def test_the_gate_compares_the_champion_on_its_stored_holdout_predictions(conn, monkeypatch):
    """v1 is served refitted with the holdout rows; the gate must not score that artifact on rows it has
    seen, but use what v1's recipe predicted there without them (stored at registration)."""
    from feedback_loop.retrain import gate

    model = digits_model()
    v1 = champion_v1(conn, model)
    stored = registry.get_version(conn, "digits", v1.version).holdout_predictions
    assert len(stored["predicted"]) == v1.metrics["rows"] and stored["rows_sha256"]
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 200)))
    seen = []
    real_score = gate.score

    def spy(*args, **kwargs):
        seen.append((kwargs["version"], kwargs.get("holdout_predicted")))
        return real_score(*args, **kwargs)

    monkeypatch.setattr(gate, "score", spy)
    outcome = pipeline.run(conn, model, params(model))
    assert outcome.status in ("promoted", "rejected"), outcome.decision
    candidate, champion = seen
    assert (
        candidate[0] is None
        and candidate[1] == registry.get_version(conn, "digits", 2).holdout_predictions["predicted"]
    )
    assert champion == (1, stored["predicted"])
    # The verdict's champion accuracy is v1's measured accuracy, not the refitted artifact's on seen rows.
    primary = next(c for c in runs(conn)[-1]["gate"]["checks"] if c["name"] == "holdout accuracy")
    assert primary["champion"] == pytest.approx(v1.metrics["accuracy"])


def test_a_retrain_with_nothing_new_since_the_champion_registers_nothing_and_says_why(conn):
    """Two alerts of one interval, or a manual run right after a scheduled one: the second run would train
    on exactly the champion's data and register a twin."""
    model = digits_model()
    champion_v1(conn, model)
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 200)))
    first = pipeline.run(conn, model, params(model, reason="alert"))
    assert first.status == "promoted", first.decision
    versions = len(registry.list_versions(conn, "digits"))

    again = pipeline.run(conn, model, params(model, reason="the same alert again"))
    assert again.status == "skipped"
    assert "no new training data since the champion v2" in again.decision
    assert len(registry.list_versions(conn, "digits")) == versions
    assert runs(conn)[-1]["status"] == "skipped"

    # One new label is new training data.
    honest_feedback(conn, log_scored(conn, model, production_rows(model, 40, offset=300)))
    assert pipeline.run(conn, model, params(model, reason="new feedback")).status in ("promoted", "rejected")
