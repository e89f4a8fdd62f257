"""`feedback-loop predict`: a file of inputs checked against the champion and enqueued with one COPY."""

from __future__ import annotations

import json

import pytest

from feedback_loop import cli

from ..support.helpers import run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def champion(digits_champion):
    return digits_champion


def write_csv(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_predict_enqueues_features_and_slices_and_reports_ignored_columns(conn, champion, tmp_path, capsys):
    source = write_csv(
        tmp_path / "batch.csv",
        "f0,f1,writer_group,label,note\n0.5,1.5,a,b,x\n-1.0,,b,a,y\n2.0,0.25,c,b,z\n",
    )
    assert cli.main(["predict", "--model", "digits", "--input", str(source), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "model_name": "digits",
        "champion_version": champion.version,
        "queued": 3,
        "slice_columns": ["writer_group"],
        "ignored_columns": ["label", "note"],
    }
    rows = conn.execute(
        "SELECT model_name, input, slice, status FROM inference_requests ORDER BY id"
    ).fetchall()
    assert [r["input"] for r in rows] == [
        {"f0": 0.5, "f1": 1.5},
        {"f0": -1.0, "f1": None},  # empty cell -> null, imputed by the model
        {"f0": 2.0, "f1": 0.25},
    ]
    assert [r["slice"] for r in rows] == [{"writer_group": "a"}, {"writer_group": "b"}, {"writer_group": "c"}]
    assert {(r["model_name"], r["status"]) for r in rows} == {("digits", "pending")}


def test_predict_text_output_says_what_happens_next(conn, champion, tmp_path, capsys):
    source = write_csv(tmp_path / "one.csv", "f0,f1\n0.1,0.2\n")
    assert cli.main(["predict", "--model", "digits", "--input", str(source)]) == 0
    out = capsys.readouterr()
    assert "queued 1 request(s) for digits (champion v1)" in out.out
    assert "enqueueing 1 row(s) of one.csv" in out.err  # progress goes to stderr


def test_parquet_input_is_read_and_a_broken_file_refused_with_a_clear_reason(
    conn, champion, tmp_path, capsys
):
    import pandas as pd

    target = tmp_path / "batch.parquet"
    pd.DataFrame({"f0": [0.1, 0.2], "f1": [1.0, 2.0]}).to_parquet(target)
    assert cli.main(["predict", "--model", "digits", "--input", str(target), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queued"] == 2
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really parquet")
    result = run_cli("predict", "--model", "digits", "--input", str(broken))
    assert result.returncode == 2
    assert f"data file {broken}: cannot be read" in result.stderr
    assert conn.execute("SELECT count(*) AS n FROM inference_requests").fetchone()["n"] == 2


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("f0,writer_group\n1.0,a\n", "missing.csv", "missing 1 feature column(s) that digits v1 needs: f1"),
        ("f0,f1\n", "empty.csv", "the file has no rows"),
        ("f0,f1\n1.0,inf\n", "inf.csv", "column 'f1', row 1: infinite value"),
        ("f0,f1\n1,2\n", "batch.txt", "expected .csv or .parquet"),
    ],
)
def test_bad_files_exit_2_with_one_line_and_enqueue_nothing(conn, champion, tmp_path, content, name, message):
    source = write_csv(tmp_path / name, content)
    result = run_cli("predict", "--model", "digits", "--input", str(source))
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr
    assert conn.execute("SELECT count(*) AS n FROM inference_requests").fetchone()["n"] == 0


def test_unknown_model_missing_file_and_no_champion_exit_2(conn, tmp_path):
    source = write_csv(tmp_path / "batch.csv", "f0,f1\n1,2\n")
    unknown = run_cli("predict", "--model", "ghost", "--input", str(source))
    assert unknown.returncode == 2 and "unknown model 'ghost'" in unknown.stderr
    missing = run_cli("predict", "--model", "digits", "--input", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "not found" in missing.stderr
    no_champion = run_cli("predict", "--model", "digits", "--input", str(source))
    assert no_champion.returncode == 2 and "digits" in no_champion.stderr


def test_predict_has_help():
    result = run_cli("predict", "--help")
    assert result.returncode == 0
    assert "--input" in result.stdout and "--json" in result.stdout
