import json
import os

import pytest

from feedback_loop import cli
from feedback_loop.registry import versions as registry

from ..support.helpers import run_cli

pytestmark = pytest.mark.integration


def test_register_promote_list_rollback_history_through_the_cli(conn, capsys):
    assert cli.main(["model", "register", "--model", "digits", "--train", "--promote", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["version"] == 1 and first["promoted"] is True and first["accuracy"] > 0.8
    assert cli.main(["model", "register", "--model", "digits", "--train"]) == 0
    assert "registered digits v2" in capsys.readouterr().out
    assert cli.main(["model", "promote", "--model", "digits", "--version", "2", "--reason", "better"]) == 0
    capsys.readouterr()
    assert cli.main(["model", "list", "--model", "digits", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["champion"]) for v in listed] == [(1, False), (2, True)]
    assert cli.main(["model", "rollback", "--model", "digits", "--reason", "regression", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert registry.champion(conn, "digits").version == 1
    assert cli.main(["model", "history", "--model", "digits", "--json"]) == 0
    actions = [e["action"] for e in json.loads(capsys.readouterr().out)]
    assert actions == ["promote", "promote", "rollback"]


def test_rollback_with_no_earlier_version_exits_non_zero_with_one_line(conn):
    assert cli.main(["model", "register", "--model", "digits", "--train", "--promote"]) == 0
    result = run_cli("model", "rollback", "--model", "digits")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nothing earlier to roll back to" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "rollback", "--model", "ghost"], "unknown model 'ghost'"),
        (["model", "promote", "--model", "ghost", "--version", "1"], "unknown model 'ghost'"),
        (["model", "register", "--model", "ghost", "--train"], "unknown model 'ghost'; configured models"),
        (["model", "promote", "--model", "digits", "--version", "0"], "expected a positive integer"),
        (["model", "promote", "--model", "digits"], "--version"),
    ],
)
def test_bad_input_exits_2_with_a_reason(conn, args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_unknown_version_exits_2(conn):
    assert cli.main(["model", "register", "--model", "digits", "--train"]) == 0
    result = run_cli("model", "promote", "--model", "digits", "--version", "7")
    assert result.returncode == 2
    assert "has no version 7" in result.stderr


def test_every_command_has_help():
    for args in (
        ["--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["model", "--help"],
        ["model", "list", "--help"],
        ["model", "register", "--help"],
        ["model", "promote", "--help"],
        ["model", "rollback", "--help"],
        ["model", "history", "--help"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(args)
        assert exit_info.value.code == 0


def test_register_an_existing_skops_artifact_and_refuse_untrusted_types(conn, tmp_path, capsys):

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from ..support.helpers import toy_estimator

    good = tmp_path / "mine.skops"
    sio.dump(toy_estimator(), good)
    assert cli.main(["model", "register", "--model", "digits", "--artifact", str(good), "--json"]) == 0
    registered = json.loads(capsys.readouterr().out)
    assert registered["version"] == 1
    estimator, entry = registry.load(conn, "digits", 1)  # re-serialised into the registry, checksum verified
    assert entry.data_snapshot == {"source": "artifact:mine.skops"}
    assert hasattr(estimator, "predict_proba")

    evil = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=os.system), evil)
    result = run_cli("model", "register", "--model", "digits", "--artifact", str(evil))
    assert result.returncode == 4
    assert f"--artifact {evil}: artifact contains untrusted types" in result.stderr
    assert len(registry.list_versions(conn, "digits")) == 1


def test_model_runs_lists_retraining_runs_and_shows_one_with_its_gate_checks(conn, capsys):
    from feedback_loop.retrain import pipeline, planning, run_records

    from ..support.retraining import champion_v1, digits_model, honest_feedback, log_scored, production_rows

    model = digits_model()
    champion_v1(conn, model)
    assert honest_feedback(conn, log_scored(conn, model, production_rows(model, 300))) > 0
    outcome = pipeline.run(
        conn, model, planning.resolve_params(model, triggered_by="on-call", reason="weekly")
    )

    assert cli.main(["model", "runs", "--model", "digits", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    stored = run_records.get_run(conn, outcome.run_id)
    assert (listed["id"], listed["status"], listed["decision"]) == (
        outcome.run_id,
        outcome.status,
        stored["decision"],
    )
    assert listed["triggered_by"] == "on-call" and listed["candidate_version"] == 2

    assert cli.main(["model", "runs", "--model", "digits"]) == 0
    text = capsys.readouterr().out
    assert "v1 -> v2" in text and f"feedback-loop model runs --id {outcome.run_id}" in text

    assert cli.main(["model", "runs", "--id", str(outcome.run_id)]) == 0
    detail = capsys.readouterr().out
    assert f"training run #{outcome.run_id} of digits: {outcome.status}" in detail
    assert (
        "eval cases (watched)" in detail  # one user's corrections: reported until someone agrees
        and "accuracy" in detail
        and "feedback-derived training data" in detail
    )

    assert cli.main(["model", "runs", "--id", str(outcome.run_id), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gate"]["checks"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model", "runs", "--id", "987654"], "unknown training run #987654"),
        (["model", "runs", "--model", "ghost"], "unknown model 'ghost'"),
        (["model", "runs"], "one of the arguments --model --id is required"),
        (["model", "runs", "--model", "digits", "--limit", "0"], "expected a positive integer"),
    ],
)
def test_model_runs_bad_input_exits_2_with_a_reason(conn, args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr


def test_model_runs_shows_runs_of_a_model_that_has_no_version_yet(conn, capsys):
    # Every run can end skipped or failed before anything is registered: those runs are what on-call needs.
    assert cli.main(["model", "runs", "--model", "digits"]) == 0
    assert capsys.readouterr().out.strip() == "digits: no training runs yet"
    conn.execute(
        "INSERT INTO training_runs (model_name, status, triggered_by, decision) "
        "VALUES ('digits', 'failed', 'test', 'stopped before registering a candidate')"
    )
    conn.commit()
    assert cli.main(["model", "runs", "--model", "digits", "--json"]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    assert (run["status"], run["decision"]) == ("failed", "stopped before registering a candidate")


def test_a_reader_that_stops_early_ends_the_command_quietly(conn):
    """`feedback-loop model list | head -1`: no BrokenPipeError traceback."""
    import subprocess
    import sys

    from ..support.helpers import register_toy

    for _ in range(40):
        register_toy(conn, model_name="digits")
    conn.commit()
    pipeline = subprocess.run(
        f"{sys.executable} -m feedback_loop.cli model list | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert pipeline.stdout.startswith("model_name")
    assert "Traceback" not in pipeline.stderr and "BrokenPipe" not in pipeline.stderr, pipeline.stderr


def test_a_rollback_never_moves_the_champion_forward(conn):
    from ..support.helpers import register_toy

    for _ in range(3):
        register_toy(conn, model_name="digits")
    registry.promote(conn, "digits", 1, actor="test")
    registry.promote(conn, "digits", 2, actor="test")
    conn.commit()
    result = run_cli("model", "rollback", "--model", "digits", "--to-version", "3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert "promote it (feedback-loop model promote --model digits --version 3)" in result.stderr
    assert registry.current_version(conn, "digits") == 2


def test_long_creators_are_shortened_in_the_table_and_whole_in_json(conn, capsys):
    from ..support.helpers import toy_estimator

    long = "airflow-run:asset_triggered__2026-12-01T10:00:00.123456+00:00_abcdefgh"
    registry.register(conn, "digits", toy_estimator(), created_by=long)
    conn.commit()
    assert cli.main(["model", "list"]) == 0
    shown = capsys.readouterr().out
    assert long not in shown and long[:31] + "…" in shown
    assert cli.main(["model", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["created_by"] == long


def test_promote_and_rollback_of_a_tampered_artifact_exit_non_zero_with_one_line(conn):
    from ..support.artifacts import flip_byte
    from ..support.helpers import register_toy

    for _ in range(3):
        register_toy(conn, model_name="digits")
    registry.promote(conn, "digits", 1, actor="test")
    registry.promote(conn, "digits", 2, actor="test")
    conn.commit()
    flip_byte(registry.get_version(conn, "digits", 1).artifact_path)
    flip_byte(registry.get_version(conn, "digits", 3).artifact_path)

    for args, verb in (
        (("model", "rollback", "--model", "digits"), "not rolled back"),
        (("model", "promote", "--model", "digits", "--version", "3"), "not promoted"),
    ):
        result = run_cli(*args)
        assert result.returncode == 4 and result.stderr.count("\n") == 1, result
        assert "artifact checksum mismatch" in result.stderr and f"{verb}: champion stays v2" in result.stderr
        assert result.stdout == ""
    assert registry.current_version(conn, "digits") == 2
    assert len(registry.alias_history(conn, "digits")) == 2


def test_register_refuses_an_artifact_that_does_not_fit_before_storing_anything(conn, tmp_path):
    import skops.io as sio

    from feedback_loop.core import paths

    from ..support.artifacts import fitted
    from ..support.helpers import register_toy

    register_toy(conn, model_name="digits")  # reads f0, f1
    registry.promote(conn, "digits", 1, actor="test")
    conn.commit()
    stored = paths.artifact_dir() / "digits"
    before = {p.name: p.stat().st_mtime_ns for p in stored.iterdir()}  # earlier tests leave files too
    for estimator, message in (
        (fitted(3), "n_features_in_ 3 but the model has 2 features (champion v1)"),
        (fitted(["f0", "f1"], ["0", "1"]), "classes differ from champion v1's"),
    ):
        unfit = tmp_path / "unfit.skops"
        sio.dump(estimator, unfit)
        result = run_cli("model", "register", "--model", "digits", "--artifact", str(unfit), "--promote")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result
        assert f"--artifact {unfit}: {message}" in result.stderr
    assert [v.version for v in registry.list_versions(conn, "digits")] == [1]
    assert {p.name: p.stat().st_mtime_ns for p in stored.iterdir()} == before
    assert registry.current_version(conn, "digits") == 1
