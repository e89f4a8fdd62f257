"""Hostile input at the command line (issue 14): each is one line on stderr and a non-zero exit."""

from __future__ import annotations

import pytest

from ..support.helpers import run_cli

pytestmark = pytest.mark.integration


def one_line(result) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_config_file_of_non_utf8_bytes_is_one_line_naming_the_file(conn, tmp_path, monkeypatch):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(b"models:\n  - name: \xff\xfe\n")
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(path))
    result = run_cli("model", "register", "--model", "digits", "--train")
    assert result.returncode == 2
    assert f"{path}: not UTF-8 text" in one_line(result)


def test_an_estimator_from_the_standard_library_is_refused_when_the_config_loads(conn, tmp_path, monkeypatch):
    from feedback_loop.core import config

    text = config.default_path().read_text(encoding="utf-8")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(
        text.replace("feedback_loop.retrain.training:default_pipeline", "os:system"), encoding="utf-8"
    )
    monkeypatch.setenv("FEEDBACK_LOOP_CONFIG", str(hostile))
    result = run_cli("model", "register", "--model", "digits", "--train")
    assert result.returncode == 2
    assert "estimator: 'os:system' comes from the Python standard library" in one_line(result)


def test_a_csv_with_a_nul_cell_names_the_file_row_and_column(conn, digits_champion, tmp_path):
    path = tmp_path / "inputs.csv"
    path.write_bytes(b"f0,f1\n1.0,2.0\n3.0,a\x00b\n")
    result = run_cli("predict", "--model", "digits", "--input", str(path))
    assert result.returncode == 2
    assert f"--input {path}: column 'f1', row 2: contains a NUL character" in one_line(result)
