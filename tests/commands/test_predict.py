"""`feedback-loop predict`: a file of inputs checked against the champion and enqueued (one COPY without
request ids; with them, idempotent per id), and `feedback-loop predict status`, which reads them back."""

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
        "already_enqueued": 0,
        "request_id_column": None,
        "requests": [
            {"request_id": None, "id": i, "status": "pending", "created": True, "trace_id": None}
            for i in (1, 2, 3)
        ],
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


# ---- request ids -------------------------------------------------------------------------------------

NAMED = "order,f0,f1,writer_group\n007,0.5,1.5,a\nNA,-1.0,2.0,b\nx-3,2.0,0.25,c\n"


def predict_json(capsys, *args: str) -> dict:
    assert cli.main(["predict", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def request_rows(conn) -> list[dict]:
    conn.commit()
    return conn.execute("SELECT id, request_id, input, status FROM inference_requests ORDER BY id").fetchall()


def test_request_id_column_names_every_row_and_running_the_file_again_stores_nothing(
    conn, champion, tmp_path, capsys
):
    source = write_csv(tmp_path / "named.csv", NAMED)
    args = ("--model", "digits", "--input", str(source), "--request-id-column", "order")
    first = predict_json(capsys, *args)
    # The ids are the file's text: '007' keeps its zeros and 'NA' is an id, not a missing value.
    assert first["requests"] == [
        {"request_id": "007", "id": 1, "status": "pending", "created": True, "trace_id": None},
        {"request_id": "NA", "id": 2, "status": "pending", "created": True, "trace_id": None},
        {"request_id": "x-3", "id": 3, "status": "pending", "created": True, "trace_id": None},
    ]
    assert (first["queued"], first["already_enqueued"], first["request_id_column"]) == (3, 0, "order")
    assert first["ignored_columns"] == [] and first["slice_columns"] == ["writer_group"]
    assert [(r["request_id"], r["input"]) for r in request_rows(conn)] == [
        ("007", {"f0": 0.5, "f1": 1.5}),
        ("NA", {"f0": -1.0, "f1": 2.0}),
        ("x-3", {"f0": 2.0, "f1": 0.25}),
    ]
    again = predict_json(capsys, *args)
    assert (again["queued"], again["already_enqueued"]) == (0, 3)
    assert [(r["request_id"], r["id"], r["created"]) for r in again["requests"]] == [
        ("007", 1, False),
        ("NA", 2, False),
        ("x-3", 3, False),
    ]
    assert len(request_rows(conn)) == 3
    assert cli.main(["predict", *args]) == 0
    assert "queued 0 request(s) for digits (champion v1); 3 already enqueued with the same input" in (
        capsys.readouterr().out
    )


def test_a_known_request_id_with_another_input_exits_2_naming_it_and_stores_nothing(conn, champion, tmp_path):
    args = ["--model", "digits", "--request-id-column", "order"]
    assert cli.main(["predict", "--input", str(write_csv(tmp_path / "a.csv", NAMED)), *args]) == 0
    changed = NAMED.replace("NA,-1.0,2.0,b", "NA,-1.5,2.0,b") + "new-1,0.1,0.1,a\n"
    result = run_cli("predict", "--input", str(write_csv(tmp_path / "b.csv", changed)), *args)
    assert result.returncode == 2, result
    *progress_lines, error = result.stderr.strip().splitlines()  # progress goes to stderr first
    assert progress_lines == ["enqueueing 4 row(s) of b.csv for digits ..."]
    assert error.startswith("feedback-loop: error: --input ")
    assert "row 2: request id 'NA' was already enqueued for 'digits' with a different input" in error
    assert [r["request_id"] for r in request_rows(conn)] == ["007", "NA", "x-3"]  # not even new-1


@pytest.mark.parametrize(
    ("content", "column", "message"),
    [
        ("id,f0,f1\na,1,2\n", "order", "--request-id-column 'order': "),
        ("order,f0,f1\na,1,2\n,3,4\n", "order", "--request-id-column 'order': row 2 has no request id"),
        (
            "order,f0,f1\na,1,2\nb,3,4\na,5,6\n",
            "order",
            "request id 'a' is on rows 1 and 3; ids must be unique",
        ),
        ('order,f0,f1\n"tab\there",1,2\n', "order", "row 1: request id 'tab\\there' must be printable"),
        ("order,f0,f1\n" + "x" * 201 + ",1,2\n", "order", "must be at most 200 characters (got 201)"),
        ("order,f0,f1\n padded,1,2\n", "order", "must not start or end with spaces"),
    ],
)
def test_bad_request_id_columns_exit_2_naming_the_column_and_enqueue_nothing(
    conn, champion, tmp_path, capsys, content, column, message
):
    source = write_csv(tmp_path / "ids.csv", content)
    code = cli.main(["predict", "--model", "digits", "--input", str(source), "--request-id-column", column])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("feedback-loop: error: ") and err.strip().count("\n") == 0
    assert message in err
    assert request_rows(conn) == []


def test_predict_without_its_file_exits_2_with_one_line(conn):
    result = run_cli("predict", "--model", "digits")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "feedback-loop: error: predict needs --input (to read requests back: feedback-loop predict status)"
    )


def status_json(capsys, *args: str) -> dict:
    assert cli.main(["predict", "status", "--model", "digits", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_reads_back_trace_id_prediction_and_confidence_by_request_id(conn, champion, tmp_path, capsys):
    from feedback_loop.core import config
    from feedback_loop.core import inference_requests as requests
    from feedback_loop.inference import scoring

    source = write_csv(tmp_path / "named.csv", NAMED)
    assert (
        cli.main(["predict", "--model", "digits", "--input", str(source), "--request-id-column", "order"])
        == 0
    )
    requests.enqueue(conn, "digits", [requests.NewRequest({"f0": "lots", "f1": 1.0}, {}, "unreadable")])
    conn.commit()
    # Scored with the library code the DAG runs: the two oldest requests.
    scoring.score_batch(conn, config.load().model("digits"), threshold=0.8, batch_size=2)
    conn.commit()
    capsys.readouterr()

    report = status_json(capsys, "--request-id", "NA", "--request-id", "ghost", "--request-id", "x-3")
    assert (report["model_name"], report["known"], report["unknown"]) == ("digits", 2, 1)
    scored, ghost, pending = report["requests"]
    prediction = conn.execute(
        "SELECT p.* FROM predictions p JOIN inference_requests r ON r.trace_id = p.trace_id "
        "WHERE r.request_id = 'NA'"
    ).fetchone()
    assert scored["status"] == "scored" and scored["trace_id"] == str(prediction["trace_id"])
    assert (scored["prediction"], scored["model_version"]) == (prediction["output_label"], champion.version)
    assert scored["confidence"] == pytest.approx(prediction["confidence"])
    assert scored["scored_at"] is not None and scored["error"] is None
    assert ghost == {
        "request_id": "ghost",
        "status": "unknown",
        "id": None,
        "error": None,
        "trace_id": None,
        "prediction": None,
        "confidence": None,
        "model_version": None,
        "created_at": None,
        "scored_at": None,
    }
    assert (pending["status"], pending["trace_id"], pending["prediction"]) == ("pending", None, None)

    # The same file names the requests it enqueued; options may also come before `status`.
    assert cli.main(["predict", "--model", "digits", "status", "--input", str(source), "--request-id-column", "order", "--json"]) == 0  # fmt: skip
    from_file = json.loads(capsys.readouterr().out)
    assert [(r["request_id"], r["status"]) for r in from_file["requests"]] == [
        ("007", "scored"),
        ("NA", "scored"),
        ("x-3", "pending"),
    ]

    # A request the model could not read is failed, with the reason; the text form is a table.
    scoring.score_batch(conn, config.load().model("digits"), threshold=0.8, batch_size=10)
    conn.commit()
    assert cli.main(["predict", "status", "--model", "digits", "--request-id", "unreadable", "--request-id", "007"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["request_id", "status", "prediction", "confidence", "model_version", "trace_id", "scored_at"]  # fmt: skip
    assert lines[1].startswith("unreadable  failed: model could not read the input")
    assert lines[2].startswith("007") and str(from_file["requests"][0]["trace_id"]) in lines[2]
    assert lines[-1] == "2 known, 0 unknown request id(s) for digits"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--request-id", "ghost"], "none of the 1 request id(s) was enqueued for 'digits' (first: 'ghost')"),
        (["--request-id", "bad\tid"], "--request-id 'bad\\tid': must be printable"),
        ([], "give --request-id ID (repeatable) or --input FILE --request-id-column COL"),
        (["--request-id", "a", "--request-id-column", "order"], "not both"),
        (["--request-id-column", "order"], "--input and --request-id-column go together"),
    ],
)
def test_status_exits_2_with_one_line_when_nothing_can_be_read(conn, champion, capsys, args, message):
    assert cli.main(["predict", "status", "--model", "digits", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().count("\n") == 0


def test_status_needs_a_configured_model_and_has_help(conn):
    unknown = run_cli("predict", "status", "--model", "ghost", "--request-id", "a")
    assert unknown.returncode == 2 and "unknown model 'ghost'" in unknown.stderr
    no_model = run_cli("predict", "status", "--request-id", "a")
    assert (
        no_model.returncode == 2
        and no_model.stderr.strip() == "feedback-loop: error: predict status needs --model"
    )
    helped = run_cli("predict", "status", "--help")
    assert helped.returncode == 0
    assert "--request-id" in helped.stdout and "--json" in helped.stdout and "unknown" in helped.stdout
