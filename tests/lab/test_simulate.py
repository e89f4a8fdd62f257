"""`feedback-loop simulate` end to end on real PostgreSQL (its own throwaway database)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from feedback_loop import cli
from feedback_loop.core import db
from feedback_loop.lab import simulate

pytestmark = pytest.mark.integration


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "feedback_loop.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_uncertainty_routing_on_digits_ends_with_a_more_accurate_champion(db_url):
    result = run_cli(
        "simulate",
        "--data",
        "digits",
        "--strategy",
        "uncertainty",
        "--initial-labels",
        "50",
        "--cycles",
        "4",
        "--batch-size",
        "150",
        "--review-budget",
        "25",
        "--seed",
        "0",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)  # stdout holds the JSON alone; progress went to stderr
    assert "cycle 0" in result.stderr
    cycles = report["cycles"]
    assert cycles[0] == {
        "cycle": 0,
        "answers": 0,
        "labelled": 50,
        "accuracy": cycles[0]["accuracy"],
        "champion_version": 1,
        "gate": "initial",
        "reviewed": 0,
        "corrected": 0,
    }
    # Every cycle spends the whole budget: gold, audit and second opinions come out of it.
    assert [c["answers"] for c in cycles] == [0, 25, 50, 75, 100]
    assert all(sum(c["by_reason"].values()) == 25 for c in cycles[1:])
    assert sum(c["by_reason"].get("audit", 0) for c in cycles[1:]) == 4 * 1  # review.audit_share 0.05
    assert all(c["gate"] in ("promoted", "rejected") for c in cycles[1:])
    assert report["final"]["champion_version"] > 1
    assert report["final"]["accuracy"] > cycles[0]["accuracy"]
    assert report["holdout_rows"] == 540  # 30% of 1,797 rows, stratified


def test_the_simulation_leaves_no_database_behind(db_url, monkeypatch):
    # The databases this run creates are the ones to look for: other simulations may run on the same server
    # (a benchmark beside the tests), and theirs come and go meanwhile.
    created: list[str] = []
    ensure = simulate.db.ensure_database

    def recorded(server: str, name: str) -> str:
        created.append(name)
        return ensure(server, name)

    monkeypatch.setattr(simulate.db, "ensure_database", recorded)
    assert (
        cli.main(
            [
                "simulate",
                "--data",
                "digits",
                "--initial-labels",
                "40",
                "--cycles",
                "1",
                "--batch-size",
                "50",
                "--review-budget",
                "5",
                "--json",
            ]
        )
        == 0
    )
    assert created and all(name.startswith("fl_simulate_") for name in created)
    with db.connect(db_url) as conn:
        after = {r["datname"] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert set(created) & after == set()


def test_a_csv_with_categorical_features_and_missing_values(tmp_path, db_url, capsys):
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    frame = pd.DataFrame(
        {
            "id": range(n),
            "x": x,
            "colour": colour,
            "region": rng.choice(["n", "s"], size=n),
            "y": np.where(x + (colour == "red") > 0.3, "yes", "no"),
        }
    )
    frame.loc[::13, "x"] = np.nan
    frame.loc[::17, "colour"] = None
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    code = cli.main(
        [
            "simulate",
            "--data",
            str(path),
            "--label-column",
            "y",
            "--slice-column",
            "region",
            "--drop-columns",
            "id",
            "--initial-labels",
            "30",
            "--cycles",
            "2",
            "--batch-size",
            "60",
            "--review-budget",
            "10",
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [c["answers"] for c in report["cycles"]] == [0, 10, 20]
    assert 0.5 < report["final"]["accuracy"] <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label-column", "nope"], "--label-column 'nope' is not a column"),
        (["--label-column", "constant"], "has 1 class"),
        (["--drop-columns", "ghost", "--label-column", "y"], "column 'ghost'"),
        (["--label-column", "y", "--reviewer-noise", "2"], "expected a number between 0 and 1"),
        (["--label-column", "y", "--initial-labels", "3"], "must be at least 10"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(tmp_path, db_url, args, message):
    path = tmp_path / "d.csv"
    pd.DataFrame({"x": range(40), "y": ["a", "b"] * 20, "constant": ["k"] * 40}).to_csv(path, index=False)
    result = run_cli("simulate", "--data", str(path), *args)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or "usage:" in result.stderr
